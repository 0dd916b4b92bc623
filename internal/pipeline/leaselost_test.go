package pipeline_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/pipeline"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlite"
)

// TestLeaseLostIsNotAFailedAttempt: a stage stopped because its lease could
// not be extended (another process held the database's write lock for longer
// than the lease) runs again; it is not recorded as a failed attempt, so a
// healthy job does not fail with "context canceled".
func TestLeaseLostIsNotAFailedAttempt(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "airlock.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	started := make(chan struct{})
	s := &step{stage: "import", run: func(n int32) (pipeline.Outcome, error) { return pipeline.Outcome{}, nil }}
	stalled := &stallOnce{step: s, started: started}
	r := pipeline.NewRunner(st, stalled)
	r.Workers, r.MaxAttempts, r.Poll, r.Lease = 1, 1, 10*time.Millisecond, 300*time.Millisecond
	enqueue(t, st, "a")

	// Another process (say `airlock approve`) holds the write lock for
	// longer than the lease while the first run of the stage is under way.
	db, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	go func() {
		<-started
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Error(err)
			return
		}
		time.Sleep(3 * r.Lease)
		_ = tx.Rollback()
	}()
	jobs := runUntil(t, r, st)
	if jobs[0].State != store.JobDone || jobs[0].Stages[0].Status != store.StageDone || jobs[0].Stages[0].Attempts != 1 {
		t.Fatalf("after the lease was lost once: %+v", jobs[0])
	}
	if n := stalled.calls.Load(); n != 2 {
		t.Fatalf("the stage ran %d times, want 2 (stopped once, then done)", n)
	}
}

// stallOnce blocks its first run until it is stopped, then runs step.
type stallOnce struct {
	*step
	started chan struct{}
}

func (s *stallOnce) Run(ctx context.Context, j store.Job) (pipeline.Outcome, error) {
	if s.calls.Load() == 0 {
		s.calls.Add(1)
		close(s.started)
		<-ctx.Done()
		return pipeline.Outcome{}, ctx.Err()
	}
	return s.step.Run(ctx, j)
}
