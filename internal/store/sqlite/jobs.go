package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

var _ store.Jobs = (*Store)(nil)

// EnqueueJob adds a job whose stages not in j.Done are pending. While a
// queued or running job has the same non-empty key, that job is returned
// unchanged instead, so a retried request or a restarted watcher does not
// vet the same thing twice at once.
func (s *Store) EnqueueJob(ctx context.Context, nj store.NewJob) (store.Job, error) {
	if len(nj.Stages) == 0 {
		return store.Job{}, errors.New("enqueue job: at least one stage is required")
	}
	seen := make(map[string]bool, len(nj.Stages))
	for _, name := range nj.Stages {
		switch {
		case name == "":
			return store.Job{}, fmt.Errorf("enqueue job: stage names must not be empty (stages %q)", nj.Stages)
		case seen[name]:
			return store.Job{}, fmt.Errorf("enqueue job: stage %q is listed twice; list each stage once", name)
		}
		seen[name] = true
	}
	for name, ev := range nj.Done {
		if !seen[name] {
			return store.Job{}, fmt.Errorf("enqueue job: stage %q is marked done but is not one of the stages %q", name, nj.Stages)
		}
		if len(ev) > 0 && !json.Valid(ev) {
			return store.Job{}, fmt.Errorf("enqueue job: evidence of stage %q is not valid JSON", name)
		}
	}
	if len(nj.Payload) > 0 && !json.Valid(nj.Payload) {
		return store.Job{}, errors.New("enqueue job: payload is not valid JSON")
	}

	now := s.now().UTC()
	runs := make([]store.StageRun, len(nj.Stages))
	state := store.JobDone
	for i, name := range nj.Stages {
		runs[i] = store.StageRun{Name: name, Status: store.StagePending}
		if ev, ok := nj.Done[name]; ok {
			runs[i].Status, runs[i].Evidence, runs[i].FinishedAt = store.StageDone, ev, &now
		} else {
			state = store.JobQueued
		}
	}
	stages, err := json.Marshal(runs)
	if err != nil {
		return store.Job{}, fmt.Errorf("enqueue job: %w", err)
	}
	var payload []byte
	if len(nj.Payload) > 0 {
		if payload, err = json.Marshal(nj.Payload); err != nil { // compacts
			return store.Job{}, fmt.Errorf("enqueue job: payload: %w", err)
		}
	}

	var job store.Job
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if nj.Key != "" {
			// key <> '' lets SQLite use the partial unique index.
			row := tx.QueryRowContext(ctx, jobSelect+` WHERE key = ? AND key <> '' AND state IN ('queued', 'running')`, nj.Key)
			j, _, err := scanJob(row)
			if err == nil {
				job = j
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("enqueue job %s: %w", nj.Key, err)
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO jobs
			(key, digest, repository, state, stages, payload, not_before, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			nj.Key, nj.Digest, nj.Repository, state, string(stages), nullText(payload), nanos(now), nanos(now), nanos(now))
		if err != nil {
			return fmt.Errorf("enqueue job: %w", err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("enqueue job: %w", err)
		}
		detail, err := json.Marshal(struct {
			ID     int64    `json:"id"`
			Stages []string `json:"stages"`
		}{id, nj.Stages})
		if err != nil {
			return fmt.Errorf("enqueue job %d: %w", id, err)
		}
		if _, err := s.appendAudit(ctx, tx, store.AuditEntry{
			Actor: nj.Actor, Action: "job.enqueued", Subject: jobSubject(id, nj.Digest, nj.Key), Detail: detail,
		}); err != nil {
			return err
		}
		job, _, err = loadJob(ctx, tx, id)
		return err
	})
	if err != nil {
		return store.Job{}, err
	}
	return job, nil
}

// leaseQuery finds the oldest leasable job. Two index range scans instead of
// one OR, so that the finished history is never read.
const leaseQuery = `SELECT MIN(id) FROM (
	SELECT id FROM jobs WHERE state = 'queued' AND not_before <= ?1
	UNION ALL
	SELECT id FROM jobs WHERE state = 'running' AND lease_until < ?1)`

// LeaseJob leases the oldest queued job that may run now, or the oldest
// running job whose lease expired (its worker is presumed dead). Choosing
// and leasing happen in one write transaction, so two workers never lease
// the same job at once, in this process or another.
func (s *Store) LeaseJob(ctx context.Context, owner string, ttl time.Duration) (store.Job, bool, error) {
	if owner == "" {
		return store.Job{}, false, errors.New("lease job: an owner name is required")
	}
	if ttl <= 0 {
		return store.Job{}, false, fmt.Errorf("lease job for %s: the lease must last longer than zero (got %s)", owner, ttl)
	}
	now := s.now().UTC()
	var (
		job store.Job
		ok  bool
	)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var id sql.NullInt64
		if err := tx.QueryRowContext(ctx, leaseQuery, nanos(now)).Scan(&id); err != nil {
			return fmt.Errorf("lease job for %s: %w", owner, err)
		}
		if !id.Valid {
			return nil
		}
		j, _, err := loadJob(ctx, tx, id.Int64)
		if err != nil {
			return err
		}
		until := now.Add(ttl)
		j.State, j.LeaseOwner, j.LeaseUntil = store.JobRunning, owner, &until
		startNext(&j, now)
		if err := saveJob(ctx, tx, j, now, sql.NullInt64{}); err != nil {
			return err
		}
		job, _, err = loadJob(ctx, tx, j.ID)
		ok = err == nil
		return err
	})
	if err != nil {
		return store.Job{}, false, err
	}
	return job, ok, nil
}

// ExtendLease moves the lease of a running job that owner still holds to
// now+ttl. A lease that has expired is gone even if nobody took it yet: the
// worker cannot know whether someone is about to.
func (s *Store) ExtendLease(ctx context.Context, id int64, owner string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("extend lease of job %d: the lease must last longer than zero (got %s)", id, ttl)
	}
	now := s.now().UTC()
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET lease_until = ?, updated_at = ?
			WHERE id = ? AND state = 'running' AND lease_owner = ? AND lease_until >= ?`,
			nanos(now.Add(ttl)), nanos(now), id, owner, nanos(now))
		if err != nil {
			return fmt.Errorf("extend lease of job %d: %w", id, err)
		}
		if affected(res) == 1 {
			return nil
		}
		j, _, err := loadJob(ctx, tx, id)
		if err != nil {
			return err
		}
		return leaseLost(j, owner)
	})
}

// FinishStage records the outcome of stage r.Stage for the worker holding
// the job's lease. An expired lease that nobody took over still counts: the
// work was done and nobody else is doing it. A taken-over lease does not, so
// a slow worker cannot overwrite the result of the one that replaced it.
func (s *Store) FinishStage(ctx context.Context, id int64, owner string, r store.StageResult) (store.Job, error) {
	switch r.Status {
	case store.StageDone, store.StageNotRun, store.StageFailed:
	default:
		return store.Job{}, fmt.Errorf("finish stage %s of job %d: %w: status %q is not %s, %s or %s",
			r.Stage, id, store.ErrInvalidTransition, r.Status, store.StageDone, store.StageNotRun, store.StageFailed)
	}
	if len(r.Evidence) > 0 && !json.Valid(r.Evidence) {
		return store.Job{}, fmt.Errorf("finish stage %s of job %d: evidence is not valid JSON", r.Stage, id)
	}
	now := s.now().UTC()
	var job store.Job
	err := s.tx(ctx, func(tx *sql.Tx) error {
		j, key, err := loadJob(ctx, tx, id)
		if err != nil {
			return err
		}
		if j.State != store.JobRunning || j.LeaseOwner != owner {
			return leaseLost(j, owner)
		}
		i := stageIndex(j, r.Stage)
		if i < 0 {
			return fmt.Errorf("job %d has no stage %q (its stages are %q): %w", id, r.Stage, stageNames(j), store.ErrNotFound)
		}
		st := &j.Stages[i]
		if st.Status != store.StagePending {
			return fmt.Errorf("%w: stage %s of job %d is already %s; only a pending stage can finish", store.ErrInvalidTransition, r.Stage, id, st.Status)
		}
		st.Attempts++
		if st.StartedAt == nil {
			st.StartedAt = &now
		}
		if r.SetDigest != "" {
			j.Digest = r.SetDigest
		}

		var (
			notBefore sql.NullInt64
			audit     *store.AuditEntry
		)
		switch r.Status {
		case store.StageDone, store.StageNotRun:
			st.Status, st.Evidence, st.Error, st.FinishedAt = r.Status, r.Evidence, "", &now
		case store.StageFailed:
			st.Error = r.Error
			if st.Error == "" {
				st.Error = "failed without a message"
			}
			if st.Attempts < max(r.MaxAttempts, 1) {
				j.State, j.LeaseOwner, j.LeaseUntil = store.JobQueued, "", nil
				notBefore = sql.NullInt64{Int64: nanos(now.Add(max(r.RetryAfter, 0))), Valid: true}
				break
			}
			st.Status, st.FinishedAt = store.StageFailed, &now
			j.State, j.LeaseOwner, j.LeaseUntil = store.JobFailed, "", nil
			j.Error = fmt.Sprintf("stage %s failed after %d attempts: %s", st.Name, st.Attempts, st.Error)
			detail, err := json.Marshal(struct {
				ID       int64  `json:"id"`
				Stage    string `json:"stage"`
				Attempts int    `json:"attempts"`
				Error    string `json:"error"`
			}{j.ID, st.Name, st.Attempts, st.Error})
			if err != nil {
				return fmt.Errorf("finish stage %s of job %d: %w", r.Stage, id, err)
			}
			audit = &store.AuditEntry{Actor: owner, Action: "job.failed", Subject: jobSubject(j.ID, j.Digest, key), Detail: detail}
		}
		if j.State == store.JobRunning {
			if j.Next() < 0 {
				j.State, j.LeaseOwner, j.LeaseUntil = store.JobDone, "", nil
				detail, err := json.Marshal(struct {
					ID     int64             `json:"id"`
					Stages map[string]string `json:"stages"`
				}{j.ID, stageStatuses(j)})
				if err != nil {
					return fmt.Errorf("finish stage %s of job %d: %w", r.Stage, id, err)
				}
				audit = &store.AuditEntry{Actor: owner, Action: "job.done", Subject: jobSubject(j.ID, j.Digest, key), Detail: detail}
			} else {
				startNext(&j, now) // the same worker goes on with the next stage
			}
		}
		if err := saveJob(ctx, tx, j, now, notBefore); err != nil {
			return err
		}
		if audit != nil {
			if _, err := s.appendAudit(ctx, tx, *audit); err != nil {
				return err
			}
		}
		job, _, err = loadJob(ctx, tx, id)
		return err
	})
	if err != nil {
		return store.Job{}, err
	}
	return job, nil
}

// Job returns one job.
func (s *Store) Job(ctx context.Context, id int64) (store.Job, error) {
	j, _, err := loadJob(ctx, s.read, id)
	return j, err
}

// Jobs lists jobs, newest first.
func (s *Store) Jobs(ctx context.Context, f store.JobFilter) ([]store.Job, error) {
	var (
		where []string
		args  []any
	)
	if f.Digest != "" {
		where, args = append(where, "digest = ?"), append(args, f.Digest)
	}
	if f.State != "" {
		where, args = append(where, "state = ?"), append(args, f.State)
	}
	q := jobSelect
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer rows.Close()
	jobs := []store.Job{}
	for rows.Next() {
		j, _, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, nil
}

const jobSelect = `SELECT id, key, digest, repository, state, stages, payload, error, lease_owner, lease_until, created_at, updated_at FROM jobs`

func scanJob(row interface{ Scan(...any) error }) (store.Job, string, error) {
	var (
		j                    store.Job
		key, stages          string
		payload              sql.NullString
		leaseUntil           sql.NullInt64
		createdAt, updatedAt int64
	)
	if err := row.Scan(&j.ID, &key, &j.Digest, &j.Repository, &j.State, &stages, &payload, &j.Error,
		&j.LeaseOwner, &leaseUntil, &createdAt, &updatedAt); err != nil {
		return store.Job{}, "", err
	}
	if err := json.Unmarshal([]byte(stages), &j.Stages); err != nil {
		return store.Job{}, "", fmt.Errorf("job %d: stages: %w", j.ID, err)
	}
	if payload.Valid {
		j.Payload = json.RawMessage(payload.String)
	}
	j.LeaseUntil = fromNullNanos(leaseUntil)
	j.CreatedAt, j.UpdatedAt = fromNanos(createdAt), fromNanos(updatedAt)
	return j, key, nil
}

// loadJob reads job id and its idempotency key.
func loadJob(ctx context.Context, q querier, id int64) (store.Job, string, error) {
	j, key, err := scanJob(q.QueryRowContext(ctx, jobSelect+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Job{}, "", fmt.Errorf("job %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Job{}, "", fmt.Errorf("job %d: %w", id, err)
	}
	return j, key, nil
}

// saveJob writes the mutable fields of j; notBefore, when valid, delays the
// next lease.
func saveJob(ctx context.Context, tx *sql.Tx, j store.Job, now time.Time, notBefore sql.NullInt64) error {
	stages, err := json.Marshal(j.Stages)
	if err != nil {
		return fmt.Errorf("save job %d: %w", j.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE jobs SET digest = ?, state = ?, stages = ?, error = ?,
		lease_owner = ?, lease_until = ?, not_before = COALESCE(?, not_before), updated_at = ? WHERE id = ?`,
		j.Digest, j.State, string(stages), j.Error, j.LeaseOwner, nullNanos(j.LeaseUntil), notBefore, nanos(now), j.ID); err != nil {
		return fmt.Errorf("save job %d: %w", j.ID, err)
	}
	return nil
}

// leaseLost explains to owner why it no longer holds job j.
func leaseLost(j store.Job, owner string) error {
	switch {
	case j.State == store.JobRunning && j.LeaseOwner != owner:
		return fmt.Errorf("job %d: %w: %s holds it now; stop working on it and drop the result", j.ID, store.ErrLeaseLost, j.LeaseOwner)
	case j.State == store.JobRunning && j.LeaseUntil != nil:
		return fmt.Errorf("job %d: %w: the lease of %s expired at %s; stop working on it, it will be leased again",
			j.ID, store.ErrLeaseLost, owner, j.LeaseUntil.Format(time.RFC3339Nano))
	}
	return fmt.Errorf("job %d: %w: it is %s, not running under %s; stop working on it and drop the result", j.ID, store.ErrLeaseLost, j.State, owner)
}

// startNext stamps the start of the stage about to run.
func startNext(j *store.Job, now time.Time) {
	if i := j.Next(); i >= 0 && j.Stages[i].StartedAt == nil {
		j.Stages[i].StartedAt = &now
	}
}

func stageIndex(j store.Job, name string) int {
	for i, st := range j.Stages {
		if st.Name == name {
			return i
		}
	}
	return -1
}

func stageNames(j store.Job) []string {
	names := make([]string, len(j.Stages))
	for i, st := range j.Stages {
		names[i] = st.Name
	}
	return names
}

func stageStatuses(j store.Job) map[string]string {
	m := make(map[string]string, len(j.Stages))
	for _, st := range j.Stages {
		m[st.Name] = st.Status
	}
	return m
}

// jobSubject is what the audit log files a job under: its digest once known,
// else its idempotency key, else the job itself.
func jobSubject(id int64, digest, key string) string {
	switch {
	case digest != "":
		return digest
	case key != "":
		return key
	}
	return fmt.Sprintf("job:%d", id)
}
