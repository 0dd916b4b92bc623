package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// clock is a settable store clock shared by the test and the store.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

// setClock gives s a clock the test moves, or skips a test that needs one.
func setClock(t *testing.T, s store.Store) *clock {
	t.Helper()
	cs, ok := s.(Clocked)
	if !ok {
		t.Skip("backend clock cannot be set")
	}
	c := &clock{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	cs.SetClock(c.Now)
	return c
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

const nginxLatest = "docker.io/library/nginx:latest"

// sameJSON reports whether a and b encode the same value.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func enqueue(t *testing.T, s store.Store, nj store.NewJob) store.Job {
	t.Helper()
	if nj.Actor == "" {
		nj.Actor = actor
	}
	j, err := s.EnqueueJob(context.Background(), nj)
	if err != nil {
		t.Fatalf("EnqueueJob(%+v): %v", nj, err)
	}
	return j
}

func lease(t *testing.T, s store.Store, owner string, ttl time.Duration) (store.Job, bool) {
	t.Helper()
	j, ok, err := s.LeaseJob(context.Background(), owner, ttl)
	if err != nil {
		t.Fatalf("LeaseJob(%s): %v", owner, err)
	}
	return j, ok
}

func mustLease(t *testing.T, s store.Store, owner string, ttl time.Duration, want int64) store.Job {
	t.Helper()
	j, ok := lease(t, s, owner, ttl)
	if !ok || j.ID != want {
		t.Fatalf("LeaseJob(%s) = job %d, %v; want job %d", owner, j.ID, ok, want)
	}
	if j.State != store.JobRunning || j.LeaseOwner != owner || j.LeaseUntil == nil {
		t.Fatalf("leased job = state %q, owner %q, until %v; want running under %s", j.State, j.LeaseOwner, j.LeaseUntil, owner)
	}
	return j
}

func wantNoLease(t *testing.T, s store.Store, owner string) {
	t.Helper()
	if j, ok := lease(t, s, owner, time.Minute); ok {
		t.Fatalf("LeaseJob(%s) leased job %d (state %q, owner %q); want none", owner, j.ID, j.State, j.LeaseOwner)
	}
}

func finish(t *testing.T, s store.Store, id int64, owner string, r store.StageResult) store.Job {
	t.Helper()
	j, err := s.FinishStage(context.Background(), id, owner, r)
	if err != nil {
		t.Fatalf("FinishStage(job %d, %s, %s %s): %v", id, owner, r.Stage, r.Status, err)
	}
	return j
}

func stageStatuses(j store.Job) []string {
	var out []string
	for _, st := range j.Stages {
		out = append(out, st.Status)
	}
	return out
}

func jobIDs(js []store.Job) []int64 {
	var out []int64
	for _, j := range js {
		out = append(out, j.ID)
	}
	return out
}

func testImportTagMoved(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, b := image(repoA, "nginx-1"), image(repoA, "nginx-2")
	record(t, s, a)
	record(t, s, b)

	resolved := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	first := store.Import{
		Digest: a.Digest, Reference: "nginx", Normalized: nginxLatest, Registry: "docker.io", Transport: "registry",
		Repository: repoA, Tags: []string{"latest"}, Platform: "linux/amd64", ResolvedAt: resolved, Actor: actor,
		Facts: json.RawMessage(`{ "signatures": [] }`),
		// The store decides these, whatever the caller claims.
		PreviousDigest: dg("bogus"), TagMoved: true,
	}
	got, err := s.RecordImport(ctx, first)
	if err != nil {
		t.Fatalf("RecordImport: %v", err)
	}
	if got.ID == 0 || got.TagMoved || got.PreviousDigest != "" || !got.ResolvedAt.Equal(resolved) {
		t.Errorf("first import = %+v; want an ID, no move, resolved at %v", got, resolved)
	}
	img, err := s.Image(ctx, a.Digest)
	if err != nil {
		t.Fatal(err)
	}
	var src store.Import
	if err := json.Unmarshal(img.Source, &src); err != nil {
		t.Fatalf("image source %s is not an Import: %v", img.Source, err)
	}
	if src.ID != got.ID || src.Reference != "nginx" || src.Normalized != nginxLatest || src.Transport != "registry" ||
		!slices.Equal(src.Tags, []string{"latest"}) || !sameJSON(src.Facts, first.Facts) {
		t.Errorf("image source = %+v; want the import %+v", src, got)
	}

	again := first
	again.Reference = nginxLatest
	if got, err := s.RecordImport(ctx, again); err != nil || got.TagMoved || got.PreviousDigest != "" {
		t.Errorf("re-import of the same digest = %+v, %v; want no move", got, err)
	}

	moved := first
	moved.Digest = b.Digest
	got, err = s.RecordImport(ctx, moved)
	if err != nil {
		t.Fatalf("RecordImport(moved): %v", err)
	}
	if !got.TagMoved || got.PreviousDigest != a.Digest {
		t.Errorf("import after the tag moved = %+v; want TagMoved from %s", got, a.Digest)
	}
	if img, err := s.Image(ctx, b.Digest); err != nil || json.Unmarshal(img.Source, &src) != nil || !src.TagMoved || src.PreviousDigest != a.Digest {
		t.Errorf("source of the new digest = %s, %v; want tagMoved from %s", img.Source, err, a.Digest)
	}

	// Another tag of the same repository is another reference.
	other := first
	other.Digest, other.Normalized = b.Digest, "docker.io/library/nginx:1.27"
	if got, err := s.RecordImport(ctx, other); err != nil || got.TagMoved {
		t.Errorf("first import of another tag = %+v, %v; want no move", got, err)
	}

	es := auditOf(t, s, store.AuditFilter{Action: "tag.moved"})
	if len(es) != 1 || es[0].Subject != b.Digest || es[0].Actor != actor ||
		!sameJSON(es[0].Detail, []byte(fmt.Sprintf(`{"reference":%q,"from":%q,"to":%q}`, nginxLatest, a.Digest, b.Digest))) {
		t.Errorf("tag.moved entries = %+v; want one from %s to %s", es, a.Digest, b.Digest)
	}
	es = auditOf(t, s, store.AuditFilter{Action: "image.imported"})
	if len(es) != 4 {
		t.Fatalf("image.imported entries = %d; want 4", len(es))
	}
	want := fmt.Sprintf(`{"reference":"nginx","normalized":%q,"transport":"registry","repository":%q,"actor":%q}`, nginxLatest, repoA, actor)
	if es[0].Subject != a.Digest || !sameJSON(es[0].Detail, []byte(want)) {
		t.Errorf("first image.imported = %s %s; want %s %s", es[0].Subject, es[0].Detail, a.Digest, want)
	}

	ims, err := s.ImportsOf(ctx, a.Digest)
	if err != nil || len(ims) != 2 || ims[0].ID >= ims[1].ID {
		t.Fatalf("ImportsOf(a) = %+v, %v; want two, oldest first", ims, err)
	}
	f := ims[0]
	if f.Reference != "nginx" || f.Registry != "docker.io" || f.Platform != "linux/amd64" || f.Repository != repoA ||
		f.Actor != actor || !f.ResolvedAt.Equal(resolved) || !slices.Equal(f.Tags, []string{"latest"}) || !sameJSON(f.Facts, first.Facts) {
		t.Errorf("stored import = %+v; want %+v", f, first)
	}
	if ims, err := s.ImportsOf(ctx, b.Digest); err != nil || len(ims) != 2 || !ims[0].TagMoved || ims[1].TagMoved {
		t.Errorf("ImportsOf(b) = %+v, %v; want the moved import then the other tag", ims, err)
	}
	if ims, err := s.ImportsOf(ctx, dg("never")); err != nil || len(ims) != 0 {
		t.Errorf("ImportsOf(unknown) = %+v, %v; want none", ims, err)
	}
	verify(t, s, 2+4+1)
}

func testImportUnknownImage(t *testing.T, s store.Store) {
	ctx := context.Background()
	im := store.Import{Digest: dg("never"), Reference: "x", Normalized: "docker.io/library/x:latest", Transport: "registry", Repository: repoA, Actor: actor}
	if _, err := s.RecordImport(ctx, im); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RecordImport(unrecorded image) = %v; want ErrNotFound", err)
	}
	if ims, err := s.ImportsOf(ctx, im.Digest); err != nil || len(ims) != 0 {
		t.Errorf("refused import left %+v, %v; want nothing", ims, err)
	}
	record(t, s, image(repoA, "x"))
	im.Digest, im.Normalized = dg("x"), ""
	if _, err := s.RecordImport(ctx, im); err == nil {
		t.Error("RecordImport without a normalized reference succeeded; want an error")
	}
	verify(t, s, 1)
}

func testJobEnqueue(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := dg("app")
	nj := store.NewJob{
		Digest: d, Repository: repoA, Stages: []string{"import", "scan", "profile"},
		Done:    map[string]json.RawMessage{"import": json.RawMessage(`{"digest": "` + d + `"}`)},
		Payload: json.RawMessage(`{"reference": "nginx"}`),
	}
	j := enqueue(t, s, nj)
	if j.ID == 0 || j.State != store.JobQueued || j.Digest != d || j.Repository != repoA || j.LeaseOwner != "" || j.LeaseUntil != nil ||
		j.CreatedAt.IsZero() || !sameJSON(j.Payload, nj.Payload) {
		t.Errorf("enqueued job = %+v", j)
	}
	if got := stageStatuses(j); !slices.Equal(got, []string{store.StageDone, store.StagePending, store.StagePending}) || j.Next() != 1 {
		t.Errorf("stages = %v, next %d; want done, pending, pending and next 1", got, j.Next())
	}
	if st := j.Stages[0]; st.Name != "import" || st.FinishedAt == nil || !sameJSON(st.Evidence, nj.Done["import"]) {
		t.Errorf("done stage = %+v; want its evidence and finish time", st)
	}
	if got, err := s.Job(ctx, j.ID); err != nil || !reflect.DeepEqual(got, j) {
		t.Errorf("Job(%d) = %+v, %v; want %+v", j.ID, got, err, j)
	}
	es := auditOf(t, s, store.AuditFilter{Action: "job.enqueued"})
	if len(es) != 1 || es[0].Subject != d || es[0].Actor != actor ||
		!sameJSON(es[0].Detail, []byte(fmt.Sprintf(`{"id":%d,"stages":["import","scan","profile"]}`, j.ID))) {
		t.Errorf("job.enqueued entries = %+v; want one for %s", es, d)
	}

	// Nothing left to do: the job is born done and nobody leases it.
	done := enqueue(t, s, store.NewJob{Digest: d, Repository: repoA, Stages: []string{"import"}, Done: map[string]json.RawMessage{"import": nil}})
	if done.State != store.JobDone || done.Next() != -1 {
		t.Errorf("job with every stage done = %+v; want state done", done)
	}

	for _, bad := range []store.NewJob{
		{Repository: repoA},
		{Repository: repoA, Stages: []string{"scan", "scan"}},
		{Repository: repoA, Stages: []string{"scan", ""}},
		{Repository: repoA, Stages: []string{"scan"}, Done: map[string]json.RawMessage{"import": nil}},
		{Repository: repoA, Stages: []string{"scan"}, Payload: json.RawMessage(`{oops`)},
	} {
		if _, err := s.EnqueueJob(ctx, bad); err == nil {
			t.Errorf("EnqueueJob(%+v) succeeded; want an error", bad)
		}
	}
	verify(t, s, 2)
}

func testJobEnqueueIdempotent(t *testing.T, s store.Store) {
	ctx := context.Background()
	nj := store.NewJob{Repository: repoA, Stages: []string{"import", "scan"}, Key: "import " + nginxLatest}
	first := enqueue(t, s, nj)
	second := enqueue(t, s, nj)
	if !reflect.DeepEqual(second, first) {
		t.Errorf("second enqueue with the same key = %+v; want the first job %+v unchanged", second, first)
	}
	// Without a key every enqueue is a new job.
	plain := store.NewJob{Repository: repoA, Stages: []string{"scan"}}
	if a, b := enqueue(t, s, plain), enqueue(t, s, plain); a.ID == b.ID {
		t.Errorf("two enqueues without a key gave the same job %d", a.ID)
	}

	j := mustLease(t, s, "w1", time.Minute, first.ID)
	if again := enqueue(t, s, nj); again.ID != first.ID || again.State != store.JobRunning || again.LeaseOwner != "w1" {
		t.Errorf("enqueue while the keyed job runs = job %d %q; want job %d running under w1", again.ID, again.State, first.ID)
	}
	finish(t, s, j.ID, "w1", store.StageResult{Stage: "import", Status: store.StageDone, SetDigest: dg("app")})
	finish(t, s, j.ID, "w1", store.StageResult{Stage: "scan", Status: store.StageDone})
	// A finished job no longer holds the key.
	if next := enqueue(t, s, nj); next.ID == first.ID || next.State != store.JobQueued {
		t.Errorf("enqueue after the keyed job finished = job %d %q; want a new queued job", next.ID, next.State)
	}

	jobs, err := s.Jobs(ctx, store.JobFilter{})
	if err != nil || len(jobs) != 4 {
		t.Errorf("Jobs() = %d jobs, %v; want 4", len(jobs), err)
	}
	es := auditOf(t, s, store.AuditFilter{Action: "job.enqueued", Subject: nj.Key})
	if len(es) != 2 {
		t.Errorf("job.enqueued entries for the key = %d; want 2 (one per job, none for the duplicates)", len(es))
	}
	verify(t, s, 4+1)
}

func testJobsList(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.Job(ctx, 424242); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Job(unknown) = %v; want ErrNotFound", err)
	}
	one, two := dg("one"), dg("two")
	j1 := enqueue(t, s, store.NewJob{Digest: one, Repository: repoA, Stages: []string{"scan"}})
	j2 := enqueue(t, s, store.NewJob{Digest: two, Repository: repoA, Stages: []string{"scan"}, Done: map[string]json.RawMessage{"scan": nil}})
	j3 := enqueue(t, s, store.NewJob{Digest: one, Repository: repoB, Stages: []string{"scan"}})
	for _, tc := range []struct {
		f    store.JobFilter
		want []int64
	}{
		{store.JobFilter{}, []int64{j3.ID, j2.ID, j1.ID}},
		{store.JobFilter{Digest: one}, []int64{j3.ID, j1.ID}},
		{store.JobFilter{State: store.JobDone}, []int64{j2.ID}},
		{store.JobFilter{State: store.JobQueued, Digest: one, Limit: 1}, []int64{j3.ID}},
		{store.JobFilter{Limit: 2}, []int64{j3.ID, j2.ID}},
		{store.JobFilter{State: store.JobFailed}, nil},
	} {
		got, err := s.Jobs(ctx, tc.f)
		if err != nil {
			t.Fatalf("Jobs(%+v): %v", tc.f, err)
		}
		if ids := jobIDs(got); !slices.Equal(ids, tc.want) {
			t.Errorf("Jobs(%+v) = %v; want %v", tc.f, ids, tc.want)
		}
	}
}

func testJobLeaseExclusive(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := setClock(t, s)
	j1 := enqueue(t, s, store.NewJob{Digest: dg("one"), Repository: repoA, Stages: []string{"scan"}})
	j2 := enqueue(t, s, store.NewJob{Digest: dg("two"), Repository: repoA, Stages: []string{"scan"}})

	got := mustLease(t, s, "w1", time.Minute, j1.ID) // oldest first
	if !got.LeaseUntil.Equal(c.Now().Add(time.Minute)) || got.Stages[0].StartedAt == nil || !got.Stages[0].StartedAt.Equal(c.Now()) {
		t.Errorf("leased job = until %v, stage started %v; want until now+1m and started now (%v)", got.LeaseUntil, got.Stages[0].StartedAt, c.Now())
	}
	mustLease(t, s, "w2", time.Minute, j2.ID)
	wantNoLease(t, s, "w2")
	c.advance(time.Minute) // the lease lasts up to and including its end
	wantNoLease(t, s, "w2")
	c.advance(time.Nanosecond)
	taken := mustLease(t, s, "w2", time.Minute, j1.ID)
	if !taken.Stages[0].StartedAt.Equal(*got.Stages[0].StartedAt) {
		t.Errorf("takeover moved the stage start from %v to %v; want the first start kept", got.Stages[0].StartedAt, taken.Stages[0].StartedAt)
	}

	// The worker that lost the lease must not overwrite the one that took over.
	if _, err := s.FinishStage(ctx, j1.ID, "w1", store.StageResult{Stage: "scan", Status: store.StageDone}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("FinishStage by the expired owner = %v; want ErrLeaseLost", err)
	}
	if err := s.ExtendLease(ctx, j1.ID, "w1", time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("ExtendLease by the expired owner = %v; want ErrLeaseLost", err)
	}
	if j, err := s.Job(ctx, j1.ID); err != nil || j.LeaseOwner != "w2" || j.Stages[0].Status != store.StagePending || j.Stages[0].Attempts != 0 {
		t.Errorf("job after the refused finish = %+v, %v; want untouched under w2", j, err)
	}
	done := finish(t, s, j1.ID, "w2", store.StageResult{Stage: "scan", Status: store.StageDone})
	if done.State != store.JobDone || done.LeaseOwner != "" || done.LeaseUntil != nil {
		t.Errorf("job after w2 finished = %+v; want done with the lease cleared", done)
	}
	// j2's lease (w2, leased before the clock moved) has expired as well.
	mustLease(t, s, "w1", time.Minute, j2.ID)
	wantNoLease(t, s, "w3")
	verify(t, s, 3)
}

func testJobExtendLease(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := setClock(t, s)
	j := enqueue(t, s, store.NewJob{Repository: repoA, Stages: []string{"scan"}})
	mustLease(t, s, "w1", time.Minute, j.ID)
	c.advance(50 * time.Second)
	if err := s.ExtendLease(ctx, j.ID, "w1", time.Minute); err != nil {
		t.Fatalf("ExtendLease: %v", err)
	}
	if got, err := s.Job(ctx, j.ID); err != nil || got.LeaseUntil == nil || !got.LeaseUntil.Equal(c.Now().Add(time.Minute)) {
		t.Errorf("lease after extending = %v, %v; want %v", got.LeaseUntil, err, c.Now().Add(time.Minute))
	}
	c.advance(50 * time.Second) // past the first lease, inside the extended one
	wantNoLease(t, s, "w2")
	if err := s.ExtendLease(ctx, j.ID, "w2", time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("ExtendLease by another worker = %v; want ErrLeaseLost", err)
	}
	c.advance(11 * time.Second)
	if err := s.ExtendLease(ctx, j.ID, "w1", time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("ExtendLease after expiry = %v; want ErrLeaseLost", err)
	}
	// Expired but nobody took it: the result still counts.
	if got := finish(t, s, j.ID, "w1", store.StageResult{Stage: "scan", Status: store.StageDone}); got.State != store.JobDone {
		t.Errorf("finish of an expired lease nobody took = %q; want done", got.State)
	}
	if err := s.ExtendLease(ctx, 424242, "w1", time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ExtendLease(unknown job) = %v; want ErrNotFound", err)
	}
}

func testJobRetry(t *testing.T, s store.Store) {
	ctx := context.Background()
	j := enqueue(t, s, store.NewJob{Digest: dg("app"), Repository: repoA, Stages: []string{"import", "scan"}})
	fail := store.StageResult{Stage: "import", Status: store.StageFailed, Error: "upstream said 503", MaxAttempts: 3}
	for attempt := 1; attempt < 3; attempt++ {
		mustLease(t, s, fmt.Sprintf("w%d", attempt), time.Minute, j.ID)
		got := finish(t, s, j.ID, fmt.Sprintf("w%d", attempt), fail)
		st := got.Stages[0]
		if got.State != store.JobQueued || got.LeaseOwner != "" || got.LeaseUntil != nil || got.Error != "" ||
			st.Status != store.StagePending || st.Attempts != attempt || st.Error != fail.Error {
			t.Fatalf("after failed attempt %d: job %q owner %q until %v error %q, stage %+v; want queued without lease, stage pending with %d attempts",
				attempt, got.State, got.LeaseOwner, got.LeaseUntil, got.Error, st, attempt)
		}
	}
	mustLease(t, s, "w3", time.Minute, j.ID)
	got := finish(t, s, j.ID, "w3", fail)
	if want := "stage import failed after 3 attempts: upstream said 503"; got.State != store.JobFailed || got.Error != want {
		t.Errorf("after the last attempt: job %q, error %q; want failed, %q", got.State, got.Error, want)
	}
	if st := got.Stages[0]; st.Status != store.StageFailed || st.Attempts != 3 || st.FinishedAt == nil {
		t.Errorf("failed stage = %+v; want failed after 3 attempts with a finish time", st)
	}
	if got.Stages[1].Status != store.StagePending || got.LeaseOwner != "" || got.LeaseUntil != nil {
		t.Errorf("failed job = %+v; want the later stage untouched and no lease", got)
	}
	wantNoLease(t, s, "w4")
	if _, err := s.FinishStage(ctx, j.ID, "w3", store.StageResult{Stage: "scan", Status: store.StageDone}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("FinishStage on a failed job = %v; want ErrLeaseLost", err)
	}
	es := auditOf(t, s, store.AuditFilter{Action: "job.failed"})
	if len(es) != 1 || es[0].Subject != j.Digest || es[0].Actor != "w3" {
		t.Errorf("job.failed entries = %+v; want one for %s by w3", es, j.Digest)
	}

	// MaxAttempts 0 means a single attempt.
	once := enqueue(t, s, store.NewJob{Repository: repoA, Stages: []string{"scan"}, Key: "scan once"})
	mustLease(t, s, "w1", time.Minute, once.ID)
	got = finish(t, s, once.ID, "w1", store.StageResult{Stage: "scan", Status: store.StageFailed, Error: "scanner crashed"})
	if got.State != store.JobFailed || got.Stages[0].Attempts != 1 || got.Error != "stage scan failed after 1 attempts: scanner crashed" {
		t.Errorf("job failed with MaxAttempts 0 = %q, %d attempts, %q; want failed after one", got.State, got.Stages[0].Attempts, got.Error)
	}
	if es := auditOf(t, s, store.AuditFilter{Action: "job.failed", Subject: "scan once"}); len(es) != 1 {
		t.Errorf("job.failed for a job without digest = %+v; want one filed under its key", es)
	}
	verify(t, s, 4)
}

func testJobRetryAfter(t *testing.T, s store.Store) {
	c := setClock(t, s)
	slow := enqueue(t, s, store.NewJob{Repository: repoA, Stages: []string{"import"}})
	mustLease(t, s, "w1", time.Minute, slow.ID)
	finish(t, s, slow.ID, "w1", store.StageResult{Stage: "import", Status: store.StageFailed, Error: "429 too many requests",
		MaxAttempts: 2, RetryAfter: 30 * time.Second})
	wantNoLease(t, s, "w2")

	// A younger job that may run now goes first.
	other := enqueue(t, s, store.NewJob{Repository: repoA, Stages: []string{"scan"}})
	mustLease(t, s, "w2", time.Minute, other.ID)

	c.advance(29 * time.Second)
	wantNoLease(t, s, "w2")
	c.advance(time.Second)
	mustLease(t, s, "w2", time.Minute, slow.ID)
	if got := finish(t, s, slow.ID, "w2", store.StageResult{Stage: "import", Status: store.StageDone, MaxAttempts: 2}); got.State != store.JobDone ||
		got.Stages[0].Attempts != 2 || got.Stages[0].Error != "" {
		t.Errorf("job after the retry succeeded = %+v; want done after 2 attempts without the old error", got)
	}
}

func testJobDone(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := dg("app")
	j := enqueue(t, s, store.NewJob{Repository: repoA, Stages: []string{"import", "scan", "profile"}, Key: "import app"})
	leased := mustLease(t, s, "w1", time.Minute, j.ID)
	if leased.Stages[0].StartedAt == nil {
		t.Errorf("leased job's next stage has no start time: %+v", leased.Stages[0])
	}

	evidence := json.RawMessage(`{"digest":"` + d + `"}`)
	got := finish(t, s, j.ID, "w1", store.StageResult{Stage: "import", Status: store.StageDone, Evidence: evidence, SetDigest: d})
	if got.State != store.JobRunning || got.LeaseOwner != "w1" || got.LeaseUntil == nil || !got.LeaseUntil.Equal(*leased.LeaseUntil) || got.Digest != d {
		t.Errorf("after the first stage: %+v; want running, still leased to w1 until %v, digest %s", got, leased.LeaseUntil, d)
	}
	if st := got.Stages[0]; st.Status != store.StageDone || st.Attempts != 1 || st.StartedAt == nil || st.FinishedAt == nil ||
		st.FinishedAt.Before(*st.StartedAt) || !sameJSON(st.Evidence, evidence) {
		t.Errorf("finished stage = %+v", st)
	}
	if got.Next() != 1 {
		t.Errorf("Next() = %d; want 1", got.Next())
	}

	why := json.RawMessage(`{"reason":"no scanner is registered"}`)
	got = finish(t, s, j.ID, "w1", store.StageResult{Stage: "scan", Status: store.StageNotRun, Evidence: why})
	if got.State != store.JobRunning || got.Stages[1].Status != store.StageNotRun || !sameJSON(got.Stages[1].Evidence, why) || got.Stages[1].FinishedAt == nil {
		t.Errorf("after a not-run stage: job %q, stage %+v; want running, stage not-run with its evidence", got.State, got.Stages[1])
	}

	got = finish(t, s, j.ID, "w1", store.StageResult{Stage: "profile", Status: store.StageDone})
	if got.State != store.JobDone || got.LeaseOwner != "" || got.LeaseUntil != nil || got.Next() != -1 || got.Error != "" {
		t.Errorf("after the last stage: %+v; want done, lease cleared", got)
	}
	if want := []string{store.StageDone, store.StageNotRun, store.StageDone}; !slices.Equal(stageStatuses(got), want) {
		t.Errorf("stage statuses = %v; want %v", stageStatuses(got), want)
	}
	if stored, err := s.Job(ctx, j.ID); err != nil || !reflect.DeepEqual(stored, got) {
		t.Errorf("Job(%d) = %+v, %v; want %+v", j.ID, stored, err, got)
	}
	es := auditOf(t, s, store.AuditFilter{Action: "job.done"})
	if len(es) != 1 || es[0].Subject != d || es[0].Actor != "w1" {
		t.Errorf("job.done entries = %+v; want one for %s by w1", es, d)
	}
	if _, err := s.FinishStage(ctx, j.ID, "w1", store.StageResult{Stage: "profile", Status: store.StageDone}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("FinishStage on a done job = %v; want ErrLeaseLost", err)
	}
	wantNoLease(t, s, "w2")
	verify(t, s, 2)
}

func testJobFinishInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	j := enqueue(t, s, store.NewJob{Repository: repoA, Stages: []string{"import", "scan"}, Done: map[string]json.RawMessage{"import": nil}})
	queued := enqueue(t, s, store.NewJob{Repository: repoA, Stages: []string{"scan"}})
	mustLease(t, s, "w1", time.Minute, j.ID)

	for _, tc := range []struct {
		name  string
		id    int64
		owner string
		r     store.StageResult
		want  error
	}{
		{"stage already done", j.ID, "w1", store.StageResult{Stage: "import", Status: store.StageDone}, store.ErrInvalidTransition},
		{"unknown stage", j.ID, "w1", store.StageResult{Stage: "sign", Status: store.StageDone}, store.ErrNotFound},
		{"unknown status", j.ID, "w1", store.StageResult{Stage: "scan", Status: "maybe"}, nil},
		{"evidence not JSON", j.ID, "w1", store.StageResult{Stage: "scan", Status: store.StageDone, Evidence: json.RawMessage(`{oops`)}, nil},
		{"another owner", j.ID, "w2", store.StageResult{Stage: "scan", Status: store.StageDone}, store.ErrLeaseLost},
		{"job not leased", queued.ID, "w1", store.StageResult{Stage: "scan", Status: store.StageDone}, store.ErrLeaseLost},
		{"unknown job", 424242, "w1", store.StageResult{Stage: "scan", Status: store.StageDone}, store.ErrNotFound},
	} {
		_, err := s.FinishStage(ctx, tc.id, tc.owner, tc.r)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("FinishStage(%s) = %v; want error %v", tc.name, err, tc.want)
		}
	}
	got, err := s.Job(ctx, j.ID)
	if err != nil || got.State != store.JobRunning || got.LeaseOwner != "w1" || got.Stages[1].Status != store.StagePending || got.Stages[1].Attempts != 0 {
		t.Errorf("job after refused finishes = %+v, %v; want unchanged", got, err)
	}
	if _, _, err := s.LeaseJob(ctx, "", time.Minute); err == nil {
		t.Error("LeaseJob without an owner succeeded; want an error")
	}
	verify(t, s, 2)
}

// testJobConcurrentLeasing has 8 workers drain 50 jobs. Each job's first
// stage fails once, so every job goes back to the queue and is leased twice,
// probably by different workers. A job leased by two workers at once shows up
// as a second holder, as an ErrLeaseLost or as a stage finished twice.
func testJobConcurrentLeasing(t *testing.T, s store.Store) {
	const jobs, workers = 50, 8
	ctx := context.Background()
	for i := range jobs {
		enqueue(t, s, store.NewJob{Digest: dg(fmt.Sprint("job-", i)), Repository: repoA, Stages: []string{"a", "b"}})
	}
	var (
		mu       sync.Mutex
		holder   = map[int64]string{}
		leases   = map[int64]int{}
		finished atomic.Int64
		wg       sync.WaitGroup
		errs     = make(chan error, workers)
		deadline = time.Now().Add(time.Minute)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("worker-%d", w)
			for finished.Load() < jobs {
				if time.Now().After(deadline) {
					errs <- fmt.Errorf("%s: jobs not drained in time", owner)
					return
				}
				j, ok, err := s.LeaseJob(ctx, owner, time.Minute)
				if err != nil {
					errs <- fmt.Errorf("%s: LeaseJob: %w", owner, err)
					return
				}
				if !ok {
					time.Sleep(time.Millisecond)
					continue
				}
				mu.Lock()
				if h, held := holder[j.ID]; held {
					mu.Unlock()
					errs <- fmt.Errorf("job %d leased by %s while %s holds it", j.ID, owner, h)
					return
				}
				holder[j.ID] = owner
				leases[j.ID]++
				mu.Unlock()
				release := func() { mu.Lock(); delete(holder, j.ID); mu.Unlock() }

				if j.Stages[0].Attempts == 0 {
					// Let go before the job is back in the queue, where another worker may take it at once.
					release()
					if _, err := s.FinishStage(ctx, j.ID, owner, store.StageResult{Stage: "a", Status: store.StageFailed, Error: "flaky", MaxAttempts: 2}); err != nil {
						errs <- fmt.Errorf("%s: fail job %d: %w", owner, j.ID, err)
						return
					}
					continue
				}
				if _, err := s.FinishStage(ctx, j.ID, owner, store.StageResult{Stage: "a", Status: store.StageDone, MaxAttempts: 2}); err != nil {
					errs <- fmt.Errorf("%s: finish a of job %d: %w", owner, j.ID, err)
					return
				}
				// The same worker goes on with the next stage under the same lease.
				got, err := s.FinishStage(ctx, j.ID, owner, store.StageResult{Stage: "b", Status: store.StageDone})
				if err != nil {
					errs <- fmt.Errorf("%s: finish b of job %d: %w", owner, j.ID, err)
					return
				}
				release() // done jobs are never leased again
				if got.State != store.JobDone {
					errs <- fmt.Errorf("job %d is %q after its last stage; want done", j.ID, got.State)
					return
				}
				finished.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	all, err := s.Jobs(ctx, store.JobFilter{})
	if err != nil || len(all) != jobs {
		t.Fatalf("Jobs() = %d, %v; want %d", len(all), err, jobs)
	}
	for _, j := range all {
		if j.State != store.JobDone || j.Stages[0].Attempts != 2 || j.Stages[1].Attempts != 1 || leases[j.ID] != 2 {
			t.Errorf("job %d: state %q, attempts %d/%d, leased %d times; want done, 2/1, leased twice",
				j.ID, j.State, j.Stages[0].Attempts, j.Stages[1].Attempts, leases[j.ID])
		}
	}
	verify(t, s, 2*jobs)
}
