// Package pipeline runs vetting as durable jobs: import → scan → profile →
// harden → decide, each stage a registered Step. Jobs live in the store with
// leases, so a crash or restart resumes every job from its last completed
// stage; a stage without a registered step is recorded as not run, and an
// image with a stage not run is never approved automatically.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// Stages of vetting, in order.
var Stages = []string{"import", "scan", "profile", "harden", "decide"}

// Outcome is what a step produced.
type Outcome struct {
	Evidence  json.RawMessage
	SetDigest string // the import stage names the digest it resolved
}

// Step runs one stage of a job. Steps must be idempotent: a stage may run
// again after a crash before its result was recorded.
type Step interface {
	Stage() string
	Run(ctx context.Context, job store.Job) (Outcome, error)
}

// RetryAfter marks an error worth retrying after a delay (e.g. an upstream 429).
type RetryAfter struct {
	After time.Duration
	Err   error
}

func (e *RetryAfter) Error() string { return e.Err.Error() }
func (e *RetryAfter) Unwrap() error { return e.Err }

// Permanent marks an error that retrying cannot fix (bad input).
type Permanent struct{ Err error }

func (e *Permanent) Error() string { return e.Err.Error() }
func (e *Permanent) Unwrap() error { return e.Err }

// Runner leases jobs from the store and runs their stages.
type Runner struct {
	Store        store.Store
	Steps        map[string]Step
	Workers      int           // concurrent jobs (default 2)
	Lease        time.Duration // lease per job, extended while a stage runs (default 30s)
	StageTimeout time.Duration // hard limit per stage run (default 30m)
	MaxAttempts  int           // attempts per stage before the job fails (default 3)
	Poll         time.Duration // idle poll interval (default 1s)
	Log          *slog.Logger

	owner   string
	wake    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever a stage result is recorded
}

// Changed returns a channel closed at the next recorded stage result, so a
// watcher can wait for a job without polling the store in a tight loop.
func (r *Runner) Changed() <-chan struct{} {
	r.init()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

func (r *Runner) broadcast() {
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// NewRunner returns a runner with the given steps registered by stage.
func NewRunner(st store.Store, steps ...Step) *Runner {
	r := &Runner{Store: st, Steps: map[string]Step{}}
	for _, s := range steps {
		r.Steps[s.Stage()] = s
	}
	return r
}

func (r *Runner) init() {
	r.once.Do(func() {
		if r.Workers <= 0 {
			r.Workers = 2
		}
		if r.Lease <= 0 {
			r.Lease = 30 * time.Second
		}
		if r.StageTimeout <= 0 {
			r.StageTimeout = 30 * time.Minute
		}
		if r.MaxAttempts <= 0 {
			r.MaxAttempts = 3
		}
		if r.Poll <= 0 {
			r.Poll = time.Second
		}
		if r.Log == nil {
			r.Log = slog.Default()
		}
		host, _ := os.Hostname()
		r.owner = fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano())
		r.wake = make(chan struct{}, 1)
		r.changed = make(chan struct{})
	})
}

// Notify wakes an idle worker (a job was enqueued).
func (r *Runner) Notify() {
	r.init()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run works until ctx ends.
func (r *Runner) Run(ctx context.Context) {
	r.init()
	var wg sync.WaitGroup
	for i := 0; i < r.Workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r.worker(ctx, r.owner+"/"+strconv.Itoa(i))
		}(i)
	}
	wg.Wait()
}

func (r *Runner) worker(ctx context.Context, owner string) {
	t := time.NewTicker(r.Poll)
	defer t.Stop()
	for ctx.Err() == nil {
		job, ok, err := r.Store.LeaseJob(ctx, owner, r.Lease)
		if err != nil {
			if ctx.Err() == nil {
				r.Log.Error("lease job", "err", err)
			}
		}
		if ok {
			r.process(ctx, owner, job)
			continue
		}
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-t.C:
		}
	}
}

// process runs the pending stages of a leased job in order until the job is
// done, failed, or handed back for a retry.
func (r *Runner) process(ctx context.Context, owner string, job store.Job) {
	for job.State == store.JobRunning && ctx.Err() == nil {
		i := job.Next()
		if i < 0 {
			return
		}
		stage := job.Stages[i].Name
		res, leaseLost := r.runStage(ctx, owner, job, stage)
		if ctx.Err() != nil {
			return // shutting down: the lease expires and the stage runs again elsewhere
		}
		if leaseLost {
			return // stopped because the lease was lost, not failed: the stage runs again, its attempts untouched
		}
		next, err := r.Store.FinishStage(ctx, job.ID, owner, res)
		if err != nil {
			if !errors.Is(err, store.ErrLeaseLost) {
				r.Log.Error("finish stage", "job", job.ID, "stage", stage, "err", err)
			}
			return
		}
		r.broadcast()
		r.Log.Info("stage finished", "job", job.ID, "digest", next.Digest, "stage", stage, "status", res.Status, "err", res.Error)
		job = next
	}
}

// runStage runs one stage; leaseLost reports a stage that failed because it
// was stopped when the lease could not be kept, whose result must be dropped.
func (r *Runner) runStage(ctx context.Context, owner string, job store.Job, stage string) (res store.StageResult, leaseLost bool) {
	res = store.StageResult{Stage: stage, MaxAttempts: r.MaxAttempts}
	step := r.Steps[stage]
	if step == nil {
		res.Status = store.StageNotRun
		res.Evidence, _ = json.Marshal(map[string]string{"reason": "no step is registered for stage " + stage + " in this version; an image with a stage not run is never approved automatically"})
		return res, false
	}
	sctx, cancel := context.WithTimeout(ctx, r.StageTimeout)
	defer cancel()
	// Keep the lease while the stage runs; if it is lost, stop the stage.
	var lost atomic.Bool
	go func() {
		t := time.NewTicker(r.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				if err := r.Store.ExtendLease(sctx, job.ID, owner, r.Lease); err != nil {
					if sctx.Err() == nil {
						r.Log.Warn("lease lost; stopping stage", "job", job.ID, "stage", stage, "err", err)
						lost.Store(true)
					}
					cancel()
					return
				}
			}
		}
	}()
	out, err := runSafely(sctx, step, job)
	if err == nil {
		res.Status = store.StageDone
		res.Evidence = out.Evidence
		res.SetDigest = out.SetDigest
		return res, false
	}
	if lost.Load() {
		return res, true
	}
	res.Status = store.StageFailed
	res.Error = err.Error()
	if errors.Is(sctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		res.Error = fmt.Sprintf("stage %s timed out after %s: %v", stage, r.StageTimeout, err)
	}
	var ra *RetryAfter
	if errors.As(err, &ra) {
		res.RetryAfter = ra.After
	}
	var perm *Permanent
	if errors.As(err, &perm) {
		res.MaxAttempts = 1
	}
	return res, false
}

// runSafely turns a panicking step into a failed stage.
func runSafely(ctx context.Context, s Step, job store.Job) (out Outcome, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("stage %s panicked: %v", s.Stage(), p)
		}
	}()
	return s.Run(ctx, job)
}

// Complete reports whether every stage of the job ran (none failed or not run):
// the precondition for any automatic approval.
func Complete(j store.Job) bool {
	if j.State != store.JobDone {
		return false
	}
	for _, s := range j.Stages {
		if s.Status != store.StageDone {
			return false
		}
	}
	return true
}
