package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrLeaseLost means another worker holds the job now (our lease expired).
var ErrLeaseLost = errors.New("job lease lost")

// Import is the documented source of one imported digest: where it came from,
// what the reference resolved to and when, and who asked.
type Import struct {
	ID             int64           `json:"id"`
	Digest         string          `json:"digest"`             // what was imported (index or image), verified in transit
	Reference      string          `json:"reference"`          // exactly as given
	Normalized     string          `json:"normalized"`         // e.g. docker.io/library/nginx:latest
	Registry       string          `json:"registry,omitempty"` // upstream host; empty for files
	Transport      string          `json:"transport"`          // registry, oci-layout, docker-archive, oci-archive
	Repository     string          `json:"repository"`         // private repository it was stored in
	Tags           []string        `json:"tags,omitempty"`
	Platform       string          `json:"platform,omitempty"` // narrowing requested ("" = everything)
	ResolvedAt     time.Time       `json:"resolvedAt"`
	Actor          string          `json:"actor"`
	Facts          json.RawMessage `json:"facts,omitempty"` // upstream config facts, signatures found
	PreviousDigest string          `json:"previousDigest,omitempty"`
	TagMoved       bool            `json:"tagMoved"` // the same normalized tag resolved to another digest before
}

// Stage status values.
const (
	StagePending = "pending"
	StageDone    = "done"
	StageFailed  = "failed"
	StageNotRun  = "not-run" // no step is registered for this stage yet
)

// Job states.
const (
	JobQueued  = "queued"
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

// StageRun is one stage of a vetting job.
type StageRun struct {
	Name       string          `json:"name"`
	Status     string          `json:"status"`
	Attempts   int             `json:"attempts"`
	Error      string          `json:"error,omitempty"`
	StartedAt  *time.Time      `json:"startedAt,omitempty"`
	FinishedAt *time.Time      `json:"finishedAt,omitempty"`
	Evidence   json.RawMessage `json:"evidence,omitempty"`
}

// Job is a durable vetting job for one digest: its stages run in order.
type Job struct {
	ID         int64           `json:"id"`
	Digest     string          `json:"digest"` // empty until an import stage resolves it
	Repository string          `json:"repository"`
	State      string          `json:"state"`
	Stages     []StageRun      `json:"stages"`
	Payload    json.RawMessage `json:"payload,omitempty"` // what the first stage needs (e.g. the import request)
	Error      string          `json:"error,omitempty"`
	LeaseOwner string          `json:"leaseOwner,omitempty"`
	LeaseUntil *time.Time      `json:"leaseUntil,omitempty"`
	CreatedAt  time.Time       `json:"createdAt"`
	UpdatedAt  time.Time       `json:"updatedAt"`
}

// Next returns the index of the first stage that is still pending, or -1.
func (j Job) Next() int {
	for i, s := range j.Stages {
		if s.Status == StagePending {
			return i
		}
	}
	return -1
}

// JobFilter narrows Jobs.
type JobFilter struct {
	Digest string
	State  string
	Limit  int
}

// NewJob describes a job to enqueue. Stages lists stage names in order; the
// ones in Done are recorded as already completed (with their evidence).
type NewJob struct {
	Digest     string
	Repository string
	Stages     []string
	Done       map[string]json.RawMessage
	Payload    json.RawMessage
	// Key makes enqueueing idempotent: while a queued or running job has the
	// same key, EnqueueJob returns it instead of adding another.
	Key   string
	Actor string
}

// Imports and Jobs are the store's side of importing and vetting.
type Imports interface {
	// RecordImport stores the documented source of a digest, sets
	// PreviousDigest/TagMoved by comparing with the last import of the same
	// Normalized reference, copies the record into the image's Source, and
	// audits "image.imported" (and "tag.moved" when it moved).
	RecordImport(ctx context.Context, im Import) (Import, error)
	// ImportsOf lists imports of a digest, oldest first.
	ImportsOf(ctx context.Context, digest string) ([]Import, error)
}

// Jobs is a table-backed queue with leases: a worker leases a job for a
// while, runs its next stage, and records the result; a job whose lease
// expired (its worker crashed) is leased again by anyone.
type Jobs interface {
	EnqueueJob(ctx context.Context, j NewJob) (Job, error)
	// LeaseJob leases the oldest queued job or running job whose lease
	// expired; ok is false when there is none.
	LeaseJob(ctx context.Context, owner string, ttl time.Duration) (job Job, ok bool, err error)
	// ExtendLease keeps a long stage's lease; ErrLeaseLost if it is gone.
	ExtendLease(ctx context.Context, id int64, owner string, ttl time.Duration) error
	// FinishStage records the outcome of a stage the caller holds the lease
	// for: status done or not-run (evidence kept), or failed (err kept). A
	// failure with attempts < maxAttempts leaves the stage pending for a retry
	// and releases the lease; otherwise the job fails. When no stage is pending
	// any more the job is done. SetDigest fills the job's digest (import stage).
	FinishStage(ctx context.Context, id int64, owner string, r StageResult) (Job, error)
	Job(ctx context.Context, id int64) (Job, error)
	Jobs(ctx context.Context, f JobFilter) ([]Job, error)
}

// StageResult is what a worker reports for one stage.
type StageResult struct {
	Stage       string
	Status      string // StageDone, StageNotRun or StageFailed
	Evidence    json.RawMessage
	Error       string
	MaxAttempts int
	SetDigest   string
	// RetryAfter delays the retry of a failed stage (e.g. upstream rate limit).
	RetryAfter time.Duration
}
