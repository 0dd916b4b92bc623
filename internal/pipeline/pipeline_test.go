package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/pipeline"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlite"
)

type step struct {
	stage string
	calls atomic.Int32
	run   func(n int32) (pipeline.Outcome, error)
}

func (s *step) Stage() string { return s.stage }
func (s *step) Run(ctx context.Context, j store.Job) (pipeline.Outcome, error) {
	return s.run(s.calls.Add(1))
}

func openStore(t *testing.T) store.Store {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// runUntil runs the runner until every job has left the queue.
func runUntil(t *testing.T, r *pipeline.Runner, st store.Store) []store.Job {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for i := 0; ; i++ {
		r.Notify()
		jobs, err := st.Jobs(context.Background(), store.JobFilter{})
		if err != nil {
			t.Fatal(err)
		}
		busy := false
		for _, j := range jobs {
			busy = busy || j.State == store.JobQueued || j.State == store.JobRunning
		}
		if !busy {
			return jobs
		}
		if i > 5000 {
			t.Fatalf("jobs never finished: %+v", jobs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func enqueue(t *testing.T, st store.Store, digest string) {
	t.Helper()
	payload, _ := json.Marshal(map[string]string{"source": digest})
	if _, err := st.EnqueueJob(context.Background(), store.NewJob{Stages: pipeline.Stages, Payload: payload, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
}

func TestStagesWithoutStepAreNotRun(t *testing.T) {
	st := openStore(t)
	imp := &step{stage: "import", run: func(int32) (pipeline.Outcome, error) {
		return pipeline.Outcome{Evidence: json.RawMessage(`{"ok":true}`)}, nil
	}}
	r := pipeline.NewRunner(st, imp)
	r.Poll = 10 * time.Millisecond
	enqueue(t, st, "a")
	jobs := runUntil(t, r, st)
	if len(jobs) != 1 || jobs[0].State != store.JobDone {
		t.Fatalf("jobs: %+v", jobs)
	}
	for _, s := range jobs[0].Stages {
		want := store.StageNotRun
		if s.Name == "import" {
			want = store.StageDone
		}
		if s.Status != want {
			t.Errorf("stage %s: %s, want %s", s.Name, s.Status, want)
		}
	}
	if pipeline.Complete(jobs[0]) {
		t.Fatal("a job with stages not run counts as complete: it could be approved automatically")
	}
}

func TestRetriesThenFails(t *testing.T) {
	st := openStore(t)
	imp := &step{stage: "import", run: func(n int32) (pipeline.Outcome, error) {
		return pipeline.Outcome{}, errors.New("upstream flaked")
	}}
	r := pipeline.NewRunner(st, imp)
	r.MaxAttempts, r.Poll = 3, 10*time.Millisecond
	enqueue(t, st, "a")
	jobs := runUntil(t, r, st)
	if jobs[0].State != store.JobFailed || imp.calls.Load() != 3 || jobs[0].Stages[0].Attempts != 3 {
		t.Fatalf("job %+v after %d calls", jobs[0], imp.calls.Load())
	}
	if jobs[0].Error == "" || jobs[0].Stages[0].Error != "upstream flaked" {
		t.Fatalf("error not kept: %+v", jobs[0])
	}
}

func TestRetrySucceedsAndPermanentErrorsDoNotRetry(t *testing.T) {
	st := openStore(t)
	imp := &step{stage: "import", run: func(n int32) (pipeline.Outcome, error) {
		if n == 1 {
			return pipeline.Outcome{}, errors.New("transient")
		}
		return pipeline.Outcome{}, nil
	}}
	r := pipeline.NewRunner(st, imp)
	r.Poll = 10 * time.Millisecond
	enqueue(t, st, "a")
	jobs := runUntil(t, r, st)
	if jobs[0].State != store.JobDone || imp.calls.Load() != 2 {
		t.Fatalf("retry: %+v after %d calls", jobs[0], imp.calls.Load())
	}

	st2 := openStore(t)
	bad := &step{stage: "import", run: func(int32) (pipeline.Outcome, error) {
		return pipeline.Outcome{}, &pipeline.Permanent{Err: errors.New("archive escapes")}
	}}
	r2 := pipeline.NewRunner(st2, bad)
	r2.MaxAttempts, r2.Poll = 5, 10*time.Millisecond
	enqueue(t, st2, "b")
	jobs = runUntil(t, r2, st2)
	if jobs[0].State != store.JobFailed || bad.calls.Load() != 1 {
		t.Fatalf("permanent error retried: %+v after %d calls", jobs[0], bad.calls.Load())
	}
}

func TestPanickingStepFailsTheStage(t *testing.T) {
	st := openStore(t)
	imp := &step{stage: "import", run: func(int32) (pipeline.Outcome, error) { panic("boom") }}
	r := pipeline.NewRunner(st, imp)
	r.MaxAttempts, r.Poll = 1, 10*time.Millisecond
	enqueue(t, st, "a")
	jobs := runUntil(t, r, st)
	if jobs[0].State != store.JobFailed || jobs[0].Stages[0].Error == "" {
		t.Fatalf("panic: %+v", jobs[0])
	}
}

func TestStageTimeout(t *testing.T) {
	st := openStore(t)
	slow := &slowStep{}
	r := pipeline.NewRunner(st, slow)
	r.MaxAttempts, r.Poll, r.StageTimeout = 1, 10*time.Millisecond, 50*time.Millisecond
	enqueue(t, st, "a")
	jobs := runUntil(t, r, st)
	if jobs[0].State != store.JobFailed {
		t.Fatalf("timeout: %+v", jobs[0])
	}
	if got := jobs[0].Stages[0].Error; !strings.Contains(got, "timed out") {
		t.Fatalf("timeout error: %q", got)
	}
}

type slowStep struct{}

func (slowStep) Stage() string { return "import" }
func (slowStep) Run(ctx context.Context, _ store.Job) (pipeline.Outcome, error) {
	<-ctx.Done()
	return pipeline.Outcome{}, ctx.Err()
}
