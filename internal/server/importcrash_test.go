package server_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/airlock-dev/airlock/internal/importer"
	"github.com/airlock-dev/airlock/internal/pipeline"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlite"
)

// crashRounds is how many times the server is killed with SIGKILL.
const crashRounds = 20

// Kill points. Each round waits for one before it kills the server.
const (
	killAfterDelay    = "after a random delay"
	killQueued        = "as soon as the import is queued"
	killImportRunning = "while the import stage runs"
	killCopying       = "while a blob is being copied"
	killRecorded      = "right after an import was recorded"
	killStageBoundary = "right after the import stage finished"
)

// TestImportCrashResume kills `airlock serve` with SIGKILL at 20 random
// points while imports run (queued, mid-copy, after the import was recorded
// but before its stage finished, between stages) and restarts it on the same
// data directory each time. Once the restarted server has worked off the
// queue: every job is done, none is stuck queued or running; every enqueue
// made exactly one job, and every job exactly one import record, one
// image.imported and one job.done audit entry however often it was retried;
// the digest each job stored is the one its source has upstream, and it
// pulls whole with every digest verified; no image left quarantine without a
// job that ran every stage (today none can: scan, profile and harden have no
// step); and the audit chain verifies.
//
// The seed is logged; AIRLOCK_TEST_CRASH_SEED replays a run's choices (the
// timing of a crash cannot be replayed).
func TestImportCrashResume(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the server 20 times")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("AIRLOCK_TEST_CRASH_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("AIRLOCK_TEST_CRASH_SEED=%q is not an unsigned integer", s)
		}
		seed = n
	}
	t.Logf("seed %d (AIRLOCK_TEST_CRASH_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x6169726c6f636b))
	ctx := context.Background()

	up := servertest.StartUpstream(t)
	bin := servertest.Binary(t)
	u := &crashUpstream{t: t, up: up, rng: rng, want: map[string]string{}, children: map[string][]string{}, bins: map[string][]byte{
		"amd64": servertest.GoBinary(t, "amd64", "airlock crash test amd64"),
		"arm64": servertest.GoBinary(t, "arm64", "airlock crash test arm64"),
	}}
	// Four images, one of them a multi-arch index; every round adds a new
	// version of one under a new tag, so there are always bytes to copy.
	families := []crashFamily{
		{"crash/app-a", []string{"linux/amd64"}},
		{"crash/app-b", []string{"linux/amd64"}},
		{"crash/tools", []string{"linux/arm64"}},
		{"crash/multi", []string{"linux/amd64", "linux/arm64"}},
	}
	var known []string
	for _, f := range families {
		known = append(known, u.push(f, "v1"))
	}

	data := t.TempDir()
	flags := []string{"--pipeline-lease", "1s", "--pipeline-workers", "2", "--pipeline-max-attempts", "3", "--log-level", "info", "--log-format", "text"}
	p := servertest.StartProcess(t, bin, data, "", flags...)
	admin := crashClient(p.URL, p.AdminToken)
	tok, err := admin.CreateToken(ctx, server.TokenRequest{Name: "crash-importer", Role: store.RolePusher})
	if err != nil {
		t.Fatal(err)
	}
	pusher := crashClient(p.URL, tok.Token)

	// Every kill point comes up three or four times, in an order the seed decides.
	points := []string{killAfterDelay, killQueued, killImportRunning, killCopying, killRecorded, killStageBoundary}
	var schedule []string
	for i := range crashRounds {
		schedule = append(schedule, points[i%len(points)])
	}
	rng.Shuffle(len(schedule), func(i, j int) { schedule[i], schedule[j] = schedule[j], schedule[i] })

	enqueued := map[int64]string{} // job → source it was enqueued for
	var tally struct{ midImport, midCopy, recorded, between, idle int }
	for round := range crashRounds {
		// Draw every choice first, so the seed alone decides them.
		var sources []string
		if round == 0 {
			sources = slices.Clone(known)
		} else {
			if rng.IntN(5) > 0 {
				src := u.push(families[rng.IntN(len(families))], fmt.Sprintf("r%02d", round))
				known = append(known, src)
				sources = append(sources, src)
			}
			for n := rng.IntN(3); n > 0 || len(sources) == 0; n-- {
				sources = append(sources, known[rng.IntN(len(known))]) // a re-import
			}
		}
		mode := schedule[round]
		delay := time.Duration(rng.IntN(301)) * time.Millisecond
		extra := time.Duration(rng.IntN(151)) * time.Millisecond
		jitter := time.Duration(rng.IntN(3001)) * time.Microsecond
		threshold := rng.Int64N(1 << 20)

		began := time.Now()
		before := servertest.PartialUploads(data)
		_, logOff := p.LogFrom(0)
		// Only while it is needed: a reader open across the crash would
		// spare the restarted server the recovery a crash normally needs.
		var watch *sql.DB
		var records int64
		if mode == killRecorded {
			watch = servertest.ReadStore(t, data)
			records = countImports(t, watch)
		}
		var ids []int64
		for _, src := range sources {
			id := enqueueImport(t, pusher, src)
			enqueued[id] = src
			ids = append(ids, id)
		}

		var seen string
		switch mode {
		case killAfterDelay:
			time.Sleep(delay)
			seen = delay.String()
		case killQueued:
		case killImportRunning:
			if id, ok := waitImportRunning(admin); ok {
				time.Sleep(extra)
				seen = fmt.Sprintf("job %d, +%s", id, extra)
			} else {
				seen = "never seen"
			}
		case killCopying:
			if path, n, ok := waitCopying(data, before, threshold); ok {
				seen = fmt.Sprintf("%d bytes in %s", n, filepath.Base(filepath.Dir(path)))
			} else {
				seen = "never seen"
			}
		case killRecorded:
			if n, ok := waitImportRecorded(watch, records); ok {
				seen = fmt.Sprintf("import record %d", n)
			} else {
				seen = "never seen"
			}
		case killStageBoundary:
			if id, ok := waitStageFinished(p, logOff); ok {
				spin(jitter)
				seen = fmt.Sprintf("job %d, +%s", id, jitter)
			} else {
				seen = "never seen"
			}
		}
		pid := p.Pid()
		p.Kill(t)
		if watch != nil {
			watch.Close()
		}

		at := classifyKill(t, data, pid, before, u.want, enqueued)
		if at.importing > 0 {
			tally.midImport++
		}
		if at.copying > 0 {
			tally.midCopy++
		}
		if at.recorded > 0 {
			tally.recorded++
		}
		if at.between > 0 {
			tally.between++
		}
		if at.importing == 0 && at.between == 0 {
			tally.idle++
		}
		t.Logf("round %2d: enqueued jobs %v; killed %s (%s) after %s: %s", round, ids, mode, seen, time.Since(began).Round(time.Millisecond), at)
		p = p.Restart(t)
	}
	t.Logf("kills: %d mid-import (%d with a blob copy cut short, %d after the import was recorded but before its stage finished), %d between stages, %d with no job at a stage",
		tally.midImport, tally.midCopy, tally.recorded, tally.between, tally.idle)
	if tally.midImport == 0 || tally.between == 0 {
		t.Errorf("no kill landed mid-import (%d) or between stages (%d); the test did not test what it claims (seed %d)", tally.midImport, tally.between, seed)
	}

	// The last restart works off everything the crashes left.
	jobs := waitSettled(t, admin)
	checkJobsAfterCrashes(t, jobs, enqueued, u.want, up.Host)
	checkImagesAfterCrashes(t, admin, p, jobs, u)
	v, err := admin.VerifyAudit(ctx)
	if err != nil || !v.OK || v.Entries == 0 {
		t.Errorf("audit after the crashes: %+v %v", v, err)
	}

	// The record itself, read from the file once the server is gone.
	p.Kill(t)
	st, err := sqlite.Open(ctx, filepath.Join(data, "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	checkRecordAfterCrashes(t, st, jobs, u)
	// Not an invariant yet: nothing purges the uploads a crash cut short.
	t.Logf("%d uploads cut short by the crashes are left in the blob storage", len(servertest.PartialUploads(data)))
}

// crashFamily is one upstream repository: an image for one platform, or a
// multi-arch index for several.
type crashFamily struct {
	repo      string
	platforms []string
}

// crashUpstream pushes versions of the families upstream and remembers what
// each source resolves to; tags are never moved, so a source's digest is
// fixed whenever its import runs.
type crashUpstream struct {
	t        *testing.T
	up       *servertest.Upstream
	rng      *rand.Rand
	bins     map[string][]byte
	want     map[string]string   // source → digest upstream
	children map[string][]string // index digest → child digests
}

// push builds a new version of f (its Go binary and a layer of random
// bytes, a couple of MiB) and pushes it as f.repo:tag.
func (u *crashUpstream) push(f crashFamily, tag string) string {
	t := u.t
	imgs := map[string]v1.Image{}
	var kids []string
	for _, pl := range f.platforms {
		platform, err := v1.ParsePlatform(pl)
		if err != nil {
			t.Fatal(err)
		}
		size := 2<<20 + u.rng.IntN(2<<20)
		if len(f.platforms) > 1 {
			size /= 2
		}
		base := servertest.Image(t, *platform, map[string][]byte{"app": u.bins[platform.Architecture]}, []string{"/app"},
			map[string]string{"org.opencontainers.image.version": tag})
		img, err := mutate.Append(base, mutate.Addendum{Layer: randomLayer(t, u.rng, size), MediaType: types.OCILayer,
			History: v1.History{CreatedBy: "airlock crash test: random data", Created: v1.Time{Time: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)}}})
		if err != nil {
			t.Fatal(err)
		}
		imgs[pl] = img
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		kids = append(kids, d.String())
	}
	src := u.up.Host + "/" + f.repo + ":" + tag
	if len(imgs) == 1 {
		u.want[src] = u.up.Push(t, f.repo+":"+tag, imgs[f.platforms[0]], nil)
	} else {
		u.want[src] = u.up.Push(t, f.repo+":"+tag, nil, servertest.Index(t, imgs))
		u.children[u.want[src]] = kids
	}
	return src
}

// randomLayer is a gzip layer of one file of n random bytes, compressed
// once here instead of on every read.
func randomLayer(t *testing.T, rng *rand.Rand, n int) v1.Layer {
	t.Helper()
	var seed [32]byte
	for i := range 4 {
		v := rng.Uint64()
		for j := range 8 {
			seed[i*8+j] = byte(v >> (8 * j))
		}
	}
	content := make([]byte, n)
	_, _ = rand.NewChaCha8(seed).Read(content)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "data/random.bin", Mode: 0o644, Size: int64(n), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	gz := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(gz)), nil }, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// crashClient is an API client that never reuses a connection, so no
// request goes to a server that was killed since.
func crashClient(base, token string) *server.Client {
	c := server.NewClient(base, token)
	c.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	return c
}

// enqueueImport posts an import with wait=false and returns its job.
func enqueueImport(t *testing.T, c *server.Client, src string) int64 {
	t.Helper()
	b, _ := json.Marshal(server.ImportRequest{Source: src, Insecure: true})
	rc, err := c.Import(context.Background(), url.Values{"wait": {"false"}}, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("enqueue %s: %v", src, err)
	}
	defer rc.Close()
	var ev server.ImportEvent
	if err := json.NewDecoder(rc).Decode(&ev); err != nil || ev.Type != "job" || ev.Job == nil || ev.Job.ID == 0 {
		t.Fatalf("enqueue %s: %+v %v", src, ev, err)
	}
	return ev.Job.ID
}

// killPointWait bounds each wait for a kill point; it only keeps a missed
// point from stalling the round, which then kills wherever the server is.
const killPointWait = 3 * time.Second

// waitImportRunning waits until a job is leased with its import stage pending.
func waitImportRunning(c *server.Client) (int64, bool) {
	for end := time.Now().Add(killPointWait); time.Now().Before(end); {
		js, err := c.Jobs(context.Background(), store.JobFilter{State: store.JobRunning, Limit: 1000})
		if err == nil {
			for _, j := range js {
				if st := crashStage(j, "import"); st != nil && st.Status == store.StagePending {
					return j.ID, true
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, false
}

// waitCopying waits until an upload not open before holds at least threshold bytes.
func waitCopying(data string, before map[string]int64, threshold int64) (string, int64, bool) {
	for end := time.Now().Add(killPointWait); time.Now().Before(end); {
		for path, n := range servertest.PartialUploads(data) {
			if _, old := before[path]; !old && n >= threshold && n > 0 {
				return path, n, true
			}
		}
		time.Sleep(time.Millisecond)
	}
	return "", 0, false
}

// countImports counts the import records in the running server's store.
func countImports(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(`SELECT COUNT(*) FROM imports`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitImportRecorded waits until the store holds more than n import
// records: an import stage has recorded its import and is about to finish.
// It reads the store directly; through the API the stage would be finished
// before the answer came back.
func waitImportRecorded(db *sql.DB, n int64) (int64, bool) {
	count, err := db.Prepare(`SELECT COUNT(*) FROM imports`)
	if err != nil {
		return 0, false
	}
	defer count.Close()
	for end := time.Now().Add(killPointWait); time.Now().Before(end); {
		var got int64
		if err := count.QueryRow().Scan(&got); err == nil && got > n {
			return got, true
		}
	}
	return 0, false
}

var importFinished = regexp.MustCompile(`msg="stage finished" job=(\d+) .*stage=import status=done`)

// waitStageFinished waits until the log says a job's import stage is
// recorded as done: the worker is about to record the next stages.
func waitStageFinished(p *servertest.Process, off int) (int64, bool) {
	var log string
	for end := time.Now().Add(killPointWait); time.Now().Before(end); {
		s, next := p.LogFrom(off)
		log, off = log+s, next
		if m := importFinished.FindStringSubmatch(log); m != nil {
			id, _ := strconv.ParseInt(m[1], 10, 64)
			return id, true
		}
		time.Sleep(50 * time.Microsecond)
	}
	return 0, false
}

// spin waits d without sleeping, which could take far longer than d.
func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

// killPoint is what the record says the server was doing when it died.
type killPoint struct {
	queued    int // not leased yet
	importing int // the killed server was at the import stage
	copying   int // uploads the crash cut short
	recorded  int // importing, with the import already recorded
	between   int // the killed server had finished the import stage, not the job
	orphaned  int // leased by a server killed before, waiting for the lease to expire
	done      int
}

func (k killPoint) String() string {
	return fmt.Sprintf("%d importing (%d uploads cut short, %d already recorded), %d between stages, %d queued, %d awaiting takeover, %d done",
		k.importing, k.copying, k.recorded, k.between, k.queued, k.orphaned, k.done)
}

// classifyKill reads a copy of the store that server pid left when it was
// killed. A worker's lease owner is host/pid/start/worker.
func classifyKill(t *testing.T, data string, pid int, before map[string]int64, want map[string]string, enqueued map[int64]string) killPoint {
	t.Helper()
	ctx := context.Background()
	st := servertest.SnapshotStore(t, data)
	defer st.Close()
	jobs, err := st.Jobs(ctx, store.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var k killPoint
	for _, j := range jobs {
		owner := strings.Split(j.LeaseOwner, "/")
		ours := len(owner) == 4 && owner[1] == strconv.Itoa(pid)
		imp := crashStage(j, "import")
		switch {
		case j.State == store.JobQueued:
			k.queued++
		case j.State == store.JobRunning && !ours:
			k.orphaned++
		case j.State == store.JobRunning && imp != nil && imp.Status == store.StagePending:
			k.importing++
			ims, err := st.ImportsOf(ctx, want[enqueued[j.ID]])
			if err != nil {
				t.Fatal(err)
			}
			for _, im := range ims {
				if importJob(im) == j.ID {
					k.recorded++
				}
			}
		case j.State == store.JobRunning:
			k.between++
		default:
			k.done++
		}
	}
	for path := range servertest.PartialUploads(data) {
		if _, old := before[path]; !old {
			k.copying++
		}
	}
	return k
}

// waitSettled polls until no job is queued or running; the cap is generous
// (crashed jobs wait out their lease) and fails with the jobs listed.
func waitSettled(t *testing.T, c *server.Client) []store.Job {
	t.Helper()
	var jobs []store.Job
	for range 3000 {
		var err error
		jobs, err = c.Jobs(context.Background(), store.JobFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		live := 0
		for _, j := range jobs {
			if j.State == store.JobQueued || j.State == store.JobRunning {
				live++
			}
		}
		if live == 0 {
			return jobs
		}
		time.Sleep(50 * time.Millisecond)
	}
	var b strings.Builder
	for _, j := range jobs {
		fmt.Fprintf(&b, "\n  job %d %s digest=%s lease=%s until=%v error=%q stages=", j.ID, j.State, j.Digest, j.LeaseOwner, j.LeaseUntil, j.Error)
		for _, s := range j.Stages {
			fmt.Fprintf(&b, " %s:%s(%d %q)", s.Name, s.Status, s.Attempts, s.Error)
		}
	}
	t.Fatalf("jobs still queued or running after the last restart:%s", b.String())
	return nil
}

// checkJobsAfterCrashes: one job per enqueue, every one done, its import
// stage done with the digest its source has upstream, no other stage run.
func checkJobsAfterCrashes(t *testing.T, jobs []store.Job, enqueued map[int64]string, want map[string]string, upstream string) {
	t.Helper()
	if len(jobs) != len(enqueued) {
		t.Errorf("%d jobs for %d enqueued imports", len(jobs), len(enqueued))
	}
	for _, j := range jobs {
		src, ok := enqueued[j.ID]
		if !ok {
			t.Errorf("job %d was never enqueued: %+v", j.ID, j)
			continue
		}
		var req importer.Request
		if err := json.Unmarshal(j.Payload, &req); err != nil || req.Source != src {
			t.Errorf("job %d carries request %s, enqueued for %s", j.ID, j.Payload, src)
		}
		if j.State == store.JobFailed && j.Error == "" {
			t.Errorf("job %d failed without an error", j.ID)
		}
		if j.State != store.JobDone {
			// Nothing here can fail but a crash mishandled: the upstream answers and every byte is right.
			t.Errorf("job %d for %s is %s: %s", j.ID, src, j.State, j.Error)
			continue
		}
		for _, s := range j.Stages {
			switch {
			case s.Name == "import" && s.Status != store.StageDone:
				t.Errorf("job %d is done with import %s", j.ID, s.Status)
			case s.Status != store.StageDone && s.Status != store.StageNotRun:
				t.Errorf("job %d is done with stage %s %s", j.ID, s.Name, s.Status)
			}
		}
		imp := crashStage(j, "import")
		var res importer.Result
		if imp == nil || json.Unmarshal(imp.Evidence, &res) != nil {
			t.Errorf("job %d: import evidence %+v", j.ID, imp)
			continue
		}
		if res.Digest != want[src] || j.Digest != want[src] || res.Import.Digest != want[src] {
			t.Errorf("job %d imported %s (job %s, record %s); %s is %s upstream", j.ID, res.Digest, j.Digest, res.Import.Digest, src, want[src])
		}
		if repo := crashRepository(src, upstream); res.Repository != repo {
			t.Errorf("job %d stored in %s, want %s", j.ID, res.Repository, repo)
		}
		if res.State != store.Quarantined {
			t.Errorf("the import of job %d left %s %s", j.ID, res.Digest, res.State)
		}
	}
}

// checkImagesAfterCrashes: exactly the images the done jobs imported (and
// the children of their indexes) exist, each once, in its repository once,
// quarantined, and each pulls whole as admin with every digest verified.
func checkImagesAfterCrashes(t *testing.T, admin *server.Client, p *servertest.Process, jobs []store.Job, u *crashUpstream) {
	t.Helper()
	ctx := context.Background()
	wantRepo := map[string]string{} // digest → repository
	vetted := map[string]bool{}     // digest → some job of it ran every stage
	var tops []string
	for _, j := range jobs {
		if j.State != store.JobDone {
			continue
		}
		repo := crashRepository(crashSource(j), u.up.Host)
		if _, ok := wantRepo[j.Digest]; !ok {
			tops = append(tops, j.Digest)
		}
		wantRepo[j.Digest] = repo
		vetted[j.Digest] = vetted[j.Digest] || pipeline.Complete(j)
		for _, c := range u.children[j.Digest] {
			wantRepo[c] = repo
			vetted[c] = vetted[c] || pipeline.Complete(j)
		}
	}
	imgs, err := admin.Images(ctx, store.ImageFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// Hardened images the harden stage recorded, with their originals.
	hardened := map[string]string{}
	for _, j := range jobs {
		if hs := crashStage(j, "harden"); hs != nil && len(hs.Evidence) > 0 {
			var ev struct{ Original, Hardened string }
			if json.Unmarshal(hs.Evidence, &ev) == nil && ev.Hardened != "" {
				hardened[ev.Hardened] = ev.Original
			}
		}
	}
	seen := map[string]bool{}
	for _, img := range imgs {
		if seen[img.Digest] {
			t.Errorf("image %s listed twice", img.Digest)
		}
		seen[img.Digest] = true
		if n := len(img.History); img.Subject != "" && n > 0 && img.History[n-1].Actor == "airlock" {
			// Airlock's own artifacts (the scan stage's SBOM and report) refer to an imported digest.
			if _, ok := wantRepo[img.Subject]; !ok {
				t.Errorf("artifact %s refers to %s, which no done job imported", img.Digest, img.Subject)
			}
			continue
		}
		if orig, ok := hardened[img.Digest]; ok {
			// The harden stage's image of an imported digest, stored beside it.
			if _, ok := wantRepo[orig]; !ok {
				t.Errorf("hardened image %s comes from %s, which no done job imported", img.Digest, orig)
			}
			continue
		}
		repo, ok := wantRepo[img.Digest]
		if !ok {
			t.Errorf("image %s exists but no done job imported it: %+v", img.Digest, img)
			continue
		}
		if len(img.Repositories) != 1 || img.Repositories[0] != repo {
			t.Errorf("image %s is in %v, want [%s] once", img.Digest, img.Repositories, repo)
		}
		// Only import has a step, so no job is complete and nothing may
		// leave quarantine; nor may anything once more steps exist, unless
		// a job of it ran every stage.
		if img.State != store.Quarantined && !vetted[img.Digest] {
			t.Errorf("image %s is %s, but no job of it ran every stage", img.Digest, img.State)
		}
		for _, h := range img.History {
			if h.To == store.Approved && !vetted[img.Digest] {
				t.Errorf("image %s was approved by %s without every stage run: %+v", img.Digest, h.Actor, h)
			}
		}
	}
	for d := range wantRepo {
		if !seen[d] {
			t.Errorf("image %s was imported but has no record", d)
		}
	}
	for _, d := range tops {
		full, err := admin.Image(ctx, d)
		if err != nil || len(full.Source) == 0 {
			t.Errorf("image %s has no documented source: %v", d, err)
		}
		ref, err := name.ParseReference(p.Host+"/"+wantRepo[d]+"@"+d, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		kids := u.children[d]
		if kids == nil {
			pullVerified(t, ref, "admin", p.AdminToken, d)
			continue
		}
		idx, err := remote.Index(ref, servertest.Auth("admin", p.AdminToken))
		if err != nil {
			t.Fatalf("pull index %s: %v", ref, err)
		}
		raw, err := idx.RawManifest()
		if err != nil || sha256Digest(raw) != d {
			t.Fatalf("pulled index %s: %v", ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil || len(im.Manifests) != len(kids) {
			t.Fatalf("index %s lists %d manifests, want %d: %v", d, len(im.Manifests), len(kids), err)
		}
		for _, m := range im.Manifests {
			child, err := name.ParseReference(p.Host+"/"+wantRepo[d]+"@"+m.Digest.String(), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			pullVerified(t, child, "admin", p.AdminToken, m.Digest.String())
		}
	}
}

// checkRecordAfterCrashes reads the store file: each done job recorded its
// import exactly once, no record belongs to another digest's job or to no
// job, retries never saw a tag move, and each job has one enqueued and one
// done audit entry and no failed one.
func checkRecordAfterCrashes(t *testing.T, st *sqlite.Store, jobs []store.Job, u *crashUpstream) {
	t.Helper()
	ctx := context.Background()
	byID := map[int64]store.Job{}
	done := 0
	for _, j := range jobs {
		byID[j.ID] = j
		if j.State == store.JobDone {
			done++
		}
	}
	imgs, err := st.Images(ctx, store.ImageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	records := 0
	perJob := map[int64]int{}
	for _, img := range imgs {
		ims, err := st.ImportsOf(ctx, img.Digest)
		if err != nil {
			t.Fatal(err)
		}
		records += len(ims)
		for _, im := range ims {
			id := importJob(im)
			perJob[id]++
			j, ok := byID[id]
			switch {
			case !ok:
				t.Errorf("import %d of %s names job %d, which does not exist", im.ID, im.Digest, id)
			case j.Digest != im.Digest || j.State != store.JobDone:
				t.Errorf("import %d of %s belongs to job %d, which is %s with %s", im.ID, im.Digest, id, j.State, j.Digest)
			case im.Reference != crashSource(j) || im.Transport != "registry" || im.Registry != u.up.Host:
				t.Errorf("import %d documents %s %s %s; job %d imported %s", im.ID, im.Transport, im.Registry, im.Reference, id, crashSource(j))
			}
			if im.TagMoved || im.PreviousDigest != "" {
				t.Errorf("import %d of %s says its tag moved from %q; no tag ever moved", im.ID, im.Digest, im.PreviousDigest)
			}
		}
	}
	for _, j := range jobs {
		if j.State == store.JobDone && perJob[j.ID] != 1 {
			t.Errorf("job %d recorded %d imports of %s, want 1", j.ID, perJob[j.ID], j.Digest)
		}
	}
	if records != done {
		t.Errorf("%d import records for %d done jobs", records, done)
	}

	audited := func(action string) []store.AuditEntry {
		es, err := st.AuditEntries(ctx, store.AuditFilter{Action: action})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	perJobAudit := func(action string) map[int64]int {
		n := map[int64]int{}
		for _, e := range audited(action) {
			var d struct {
				ID  int64 `json:"id"`
				Job int64 `json:"job"`
			}
			_ = json.Unmarshal(e.Detail, &d)
			n[max(d.ID, d.Job)]++
		}
		return n
	}
	if n := len(audited("image.imported")); n != done {
		t.Errorf("%d image.imported audit entries for %d done jobs", n, done)
	}
	enq, fin, failed := perJobAudit("job.enqueued"), perJobAudit("job.done"), perJobAudit("job.failed")
	for _, j := range jobs {
		if enq[j.ID] != 1 {
			t.Errorf("job %d has %d job.enqueued audit entries", j.ID, enq[j.ID])
		}
		want := 0
		if j.State == store.JobDone {
			want = 1
		}
		if fin[j.ID] != want {
			t.Errorf("job %d (%s) has %d job.done audit entries, want %d", j.ID, j.State, fin[j.ID], want)
		}
	}
	// A decide stage retried after a crash evaluates the policy again and
	// audits it again: truthful, so only reported.
	evaluated, twice := perJobAudit("policy.evaluated"), 0
	for _, j := range jobs {
		if st := crashStage(j, "decide"); st != nil && st.Status == store.StageDone && evaluated[j.ID] == 0 {
			t.Errorf("job %d decided without a policy.evaluated audit entry", j.ID)
		}
		if evaluated[j.ID] > 1 {
			twice++
		}
	}
	t.Logf("%d of %d jobs audited policy.evaluated more than once", twice, len(jobs))
	if len(enq) != len(jobs) {
		t.Errorf("job.enqueued audited for %d jobs; there are %d", len(enq), len(jobs))
	}
	if len(failed) != 0 {
		t.Errorf("job.failed audited: %v", failed)
	}
	if n, err := st.VerifyAudit(ctx); err != nil || n == 0 {
		t.Errorf("audit chain in the file: %d entries, %v", n, err)
	}
}

func crashStage(j store.Job, name string) *store.StageRun {
	for i := range j.Stages {
		if j.Stages[i].Name == name {
			return &j.Stages[i]
		}
	}
	return nil
}

// crashSource is the source a job was enqueued for.
func crashSource(j store.Job) string {
	var req importer.Request
	_ = json.Unmarshal(j.Payload, &req)
	return req.Source
}

// crashRepository is where an import of src from upstream host is stored.
func crashRepository(src, upstream string) string {
	repo, _, _ := strings.Cut(strings.TrimPrefix(src, upstream+"/"), ":")
	return strings.Replace(upstream, ":", "_", 1) + "/" + repo
}

// importJob is the job an import record says recorded it.
func importJob(im store.Import) int64 {
	var f struct {
		Job int64 `json:"job"`
	}
	_ = json.Unmarshal(im.Facts, &f)
	return f.Job
}
