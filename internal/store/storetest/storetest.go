// Package storetest is the conformance suite every store.Store backend runs,
// so that SQLite and PostgreSQL agree on the state machine, the registry gate
// and the audit chain. A backend's test calls Run with a function that opens a
// fresh, empty store.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// TamperOp is what a Tamper hook does to an audit row.
type TamperOp int

const (
	// TamperEdit changes a field of the row (but not its hash).
	TamperEdit TamperOp = iota
	// TamperDelete removes the row.
	TamperDelete
)

func (op TamperOp) String() string {
	if op == TamperDelete {
		return "delete"
	}
	return "edit"
}

// Tamper changes audit row seq behind the store's back, as someone with
// direct database access could. Only the backend knows how.
type Tamper func(s store.Store, seq int64, op TamperOp) error

// Clocked is implemented by backends whose clock a test can set. The suite
// then also checks that approvals expire as time passes.
type Clocked interface {
	SetClock(now func() time.Time)
}

// Run runs the suite. open must return a new empty store and close it when
// the test ends (t.Cleanup). tamper may be nil, which skips the tamper checks.
func Run(t *testing.T, open func(t *testing.T) store.Store, tamper Tamper) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"RecordManifest/New", testRecordNew},
		{"RecordManifest/Idempotent", testRecordIdempotent},
		{"RecordManifest/KnownDigestKeepsState", testRecordKnownDigest},
		{"RecordManifest/Invalid", testRecordInvalid},
		{"ForgetManifest", testForget},
		{"SetSource", testSetSource},
		{"Image/NotFound", testImageNotFound},
		{"Images/Filter", testImagesFilter},
		{"Transition/Matrix", testTransitionMatrix},
		{"Transition/UnknownDigest", testTransitionUnknown},
		{"Transition/HistoryAndAudit", testTransitionHistoryAudit},
		{"Transition/ConcurrentApprovals", testTransitionConcurrent},
		{"Expiry", testExpiry},
		{"Expiry/Clock", testExpiryClock},
		{"IndexChildren", testIndexChildren},
		{"BlobServable", testBlobServable},
		{"Referrers", testReferrers},
		{"Tokens", testTokens},
		{"Audit/Chain", testAuditChain},
		{"Audit/Filter", testAuditFilter},
		{"Audit/InvalidDetail", testAuditInvalidDetail},
		{"Audit/Empty", testAuditEmpty},
		{"Audit/Concurrent", testAuditConcurrent},
		{"Imports/TagMoved", testImportTagMoved},
		{"Imports/UnknownImage", testImportUnknownImage},
		{"Jobs/Enqueue", testJobEnqueue},
		{"Jobs/EnqueueIdempotent", testJobEnqueueIdempotent},
		{"Jobs/List", testJobsList},
		{"Jobs/LeaseExclusive", testJobLeaseExclusive},
		{"Jobs/ExtendLease", testJobExtendLease},
		{"Jobs/Retry", testJobRetry},
		{"Jobs/RetryAfter", testJobRetryAfter},
		{"Jobs/Done", testJobDone},
		{"Jobs/FinishInvalid", testJobFinishInvalid},
		{"Jobs/ConcurrentLeasing", testJobConcurrentLeasing},
		{"Approvals/Quorum", testApprovalQuorum},
		{"Approvals/RefusedAndVoid", testApprovalRefusedAndVoid},
		{"Approvals/Concurrent", testApprovalConcurrent},
		{"Attestations", testAttestations},
		{"Reevaluations", testReevaluations},
		{"Revocations/Scheduled", testScheduledRevocations},
		{"Waivers", testWaivers},
		{"Ping", testPing},
		{"Lineage", testLineage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
	t.Run("Audit/Tamper", func(t *testing.T) {
		if tamper == nil {
			t.Skip("backend has no tamper hook")
		}
		testAuditTamper(t, open, tamper)
	})
}

const (
	repoA = "library/app"
	repoB = "team/other"
	actor = "alice"

	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
)

// dg makes a distinct, well-formed digest from a name.
func dg(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func image(repo, name string, blobs ...string) store.Manifest {
	m := store.Manifest{Repository: repo, Digest: dg(name), MediaType: mediaManifest, Size: 1234, Actor: actor}
	for _, b := range blobs {
		m.Blobs = append(m.Blobs, dg(b))
	}
	return m
}

func record(t *testing.T, s store.Store, m store.Manifest) store.Image {
	t.Helper()
	img, err := s.RecordManifest(context.Background(), m)
	if err != nil {
		t.Fatalf("RecordManifest(%s, %s): %v", m.Repository, m.Digest, err)
	}
	return img
}

func move(t *testing.T, s store.Store, digest string, to store.State, expires *time.Time) store.Image {
	t.Helper()
	img, err := s.Transition(context.Background(), digest, to, actor, "test moves it to "+string(to), expires)
	if err != nil {
		t.Fatalf("Transition(%s → %s): %v", digest, to, err)
	}
	return img
}

// driveTo brings a freshly recorded digest to state along allowed moves.
func driveTo(t *testing.T, s store.Store, digest string, state store.State) {
	t.Helper()
	switch state {
	case store.Approved:
		move(t, s, digest, store.Approved, nil)
	case store.Rejected:
		move(t, s, digest, store.Rejected, nil)
	case store.Revoked:
		move(t, s, digest, store.Approved, nil)
		move(t, s, digest, store.Revoked, nil)
	}
}

func wantServable(t *testing.T, s store.Store, repo, digest string, wantState store.State, wantFound bool) {
	t.Helper()
	state, found, err := s.ManifestServable(context.Background(), repo, digest)
	if err != nil {
		t.Fatalf("ManifestServable(%s, %s): %v", repo, digest, err)
	}
	if state != wantState || found != wantFound {
		t.Errorf("ManifestServable(%s, %s) = %q, %v; want %q, %v", repo, digest, state, found, wantState, wantFound)
	}
}

func wantBlob(t *testing.T, s store.Store, repo, blob string, want bool) {
	t.Helper()
	got, err := s.BlobServable(context.Background(), repo, blob)
	if err != nil {
		t.Fatalf("BlobServable(%s, %s): %v", repo, blob, err)
	}
	if got != want {
		t.Errorf("BlobServable(%s, %s) = %v; want %v", repo, blob, got, want)
	}
}

func auditOf(t *testing.T, s store.Store, f store.AuditFilter) []store.AuditEntry {
	t.Helper()
	es, err := s.AuditEntries(context.Background(), f)
	if err != nil {
		t.Fatalf("AuditEntries(%+v): %v", f, err)
	}
	return es
}

func verify(t *testing.T, s store.Store, want int64) {
	t.Helper()
	n, err := s.VerifyAudit(context.Background())
	if err != nil || n != want {
		t.Fatalf("VerifyAudit() = %d, %v; want %d, nil", n, err, want)
	}
}

func testRecordNew(t *testing.T, s store.Store) {
	m := image(repoA, "app", "config", "layer")
	img := record(t, s, m)
	if img.Digest != m.Digest || img.MediaType != m.MediaType || img.Size != m.Size {
		t.Errorf("recorded image = %+v; want digest, media type and size of %+v", img, m)
	}
	if img.State != store.Quarantined || img.Expires != nil {
		t.Errorf("new image state = %q, expires %v; want quarantined, no expiry", img.State, img.Expires)
	}
	if !slices.Equal(img.Repositories, []string{repoA}) {
		t.Errorf("Repositories = %v; want [%s]", img.Repositories, repoA)
	}
	if img.CreatedAt.IsZero() || img.UpdatedAt.IsZero() {
		t.Errorf("CreatedAt/UpdatedAt not set: %v / %v", img.CreatedAt, img.UpdatedAt)
	}
	if len(img.History) != 1 {
		t.Fatalf("History has %d transitions; want 1: %+v", len(img.History), img.History)
	}
	h := img.History[0]
	if h.From != "" || h.To != store.Quarantined || h.Actor != actor || h.Reason != "recorded on push to "+repoA || h.At.IsZero() {
		t.Errorf("first transition = %+v; want \"\"→quarantined by %s, reason %q", h, actor, "recorded on push to "+repoA)
	}
	es := auditOf(t, s, store.AuditFilter{Subject: m.Digest})
	if len(es) != 1 || es[0].Action != "image.recorded" || es[0].Actor != actor {
		t.Errorf("audit for %s = %+v; want one image.recorded by %s", m.Digest, es, actor)
	}
	wantServable(t, s, repoA, m.Digest, store.Quarantined, true)
	wantBlob(t, s, repoA, dg("layer"), false)
	verify(t, s, 1)
}

func testRecordIdempotent(t *testing.T, s store.Store) {
	m := image(repoA, "app", "config", "layer")
	first := record(t, s, m)
	second := record(t, s, m)
	if second.State != first.State || len(second.History) != 1 || !slices.Equal(second.Repositories, first.Repositories) {
		t.Errorf("second record = %+v; want same as first %+v", second, first)
	}
	if !second.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("CreatedAt changed from %v to %v", first.CreatedAt, second.CreatedAt)
	}
	if es := auditOf(t, s, store.AuditFilter{}); len(es) != 1 {
		t.Errorf("audit has %d entries after recording twice; want 1: %+v", len(es), es)
	}
	imgs, err := s.Images(context.Background(), store.ImageFilter{})
	if err != nil || len(imgs) != 1 {
		t.Errorf("Images() = %d images, %v; want 1", len(imgs), err)
	}
}

func testRecordKnownDigest(t *testing.T, s store.Store) {
	m := image(repoA, "app", "layer")
	record(t, s, m)
	move(t, s, m.Digest, store.Approved, nil)

	m.Repository = repoB
	img := record(t, s, m)
	if img.State != store.Approved {
		t.Errorf("state after recording in a second repository = %q; want approved", img.State)
	}
	if !slices.Equal(img.Repositories, []string{repoA, repoB}) {
		t.Errorf("Repositories = %v; want [%s %s]", img.Repositories, repoA, repoB)
	}
	if len(img.History) != 2 {
		t.Errorf("History = %+v; want the recording and the approval only", img.History)
	}
	if es := auditOf(t, s, store.AuditFilter{Action: "image.linked"}); len(es) != 1 || es[0].Subject != m.Digest {
		t.Errorf("image.linked entries = %+v; want one for %s", es, m.Digest)
	}
	wantServable(t, s, repoB, m.Digest, store.Approved, true)
	wantBlob(t, s, repoB, dg("layer"), true)
}

func testRecordInvalid(t *testing.T, s store.Store) {
	for _, m := range []store.Manifest{
		{Digest: dg("x"), MediaType: mediaManifest},
		{Repository: repoA, MediaType: mediaManifest},
	} {
		if _, err := s.RecordManifest(context.Background(), m); err == nil {
			t.Errorf("RecordManifest(%+v) succeeded; want an error", m)
		}
	}
}

func testForget(t *testing.T, s store.Store) {
	ctx := context.Background()
	subject := image(repoA, "app", "layer")
	record(t, s, subject)
	move(t, s, subject.Digest, store.Approved, nil)
	subject.Repository = repoB
	record(t, s, subject)

	sig := image(repoA, "sig", "sigblob")
	sig.Subject = subject.Digest
	record(t, s, sig)

	idx := store.Manifest{Repository: repoA, Digest: dg("index"), MediaType: mediaIndex, Size: 10, Actor: actor,
		Children: []store.Child{{Digest: subject.Digest, MediaType: mediaManifest}}}
	record(t, s, idx)

	if err := s.ForgetManifest(ctx, repoA, subject.Digest); err != nil {
		t.Fatalf("ForgetManifest: %v", err)
	}
	if err := s.ForgetManifest(ctx, repoA, sig.Digest); err != nil {
		t.Fatalf("ForgetManifest(sig): %v", err)
	}
	if err := s.ForgetManifest(ctx, repoA, idx.Digest); err != nil {
		t.Fatalf("ForgetManifest(index): %v", err)
	}
	wantServable(t, s, repoA, subject.Digest, "", false)
	wantBlob(t, s, repoA, dg("layer"), false)
	wantServable(t, s, repoB, subject.Digest, store.Approved, true)
	wantBlob(t, s, repoB, dg("layer"), true)
	refs, err := s.Referrers(ctx, repoA, subject.Digest)
	if err != nil || len(refs) != 0 {
		t.Errorf("Referrers after forgetting = %+v, %v; want none", refs, err)
	}

	img, err := s.Image(ctx, subject.Digest)
	if err != nil {
		t.Fatalf("Image after forget: %v", err)
	}
	if !slices.Equal(img.Repositories, []string{repoB}) || len(img.History) != 2 || img.State != store.Approved {
		t.Errorf("image after forget = %+v; want only %s, history and state kept", img, repoB)
	}
	if img, err := s.Image(ctx, idx.Digest); err != nil || len(img.Children) != 0 {
		t.Errorf("forgotten index children = %+v, %v; want none", img.Children, err)
	}

	for _, c := range []struct{ repo, digest string }{
		{repoA, subject.Digest}, // already forgotten
		{"nobody/here", subject.Digest},
		{repoA, dg("never")},
	} {
		if err := s.ForgetManifest(ctx, c.repo, c.digest); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ForgetManifest(%s, %s) = %v; want ErrNotFound", c.repo, c.digest, err)
		}
	}
}

func testSetSource(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := image(repoA, "app")
	record(t, s, m)
	src := json.RawMessage(`{"reference": "docker.io/library/alpine:3.20", "upstreamDigest": "sha256:abc"}`)
	if err := s.SetSource(ctx, m.Digest, src); err != nil {
		t.Fatalf("SetSource: %v", err)
	}
	img, err := s.Image(ctx, m.Digest)
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal(img.Source, &got); err != nil {
		t.Fatalf("stored source %q is not JSON: %v", img.Source, err)
	}
	json.Unmarshal(src, &want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Source = %s; want %s", img.Source, src)
	}
	if err := s.SetSource(ctx, dg("never"), src); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetSource(unknown) = %v; want ErrNotFound", err)
	}
	if err := s.SetSource(ctx, m.Digest, json.RawMessage(`{not json`)); err == nil {
		t.Error("SetSource(invalid JSON) succeeded; want an error")
	}
}

func testImageNotFound(t *testing.T, s store.Store) {
	if _, err := s.Image(context.Background(), dg("never")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Image(unknown) = %v; want ErrNotFound", err)
	}
}

func testImagesFilter(t *testing.T, s store.Store) {
	ctx := context.Background()
	a1, a2, b1 := image(repoA, "a1"), image(repoA, "a2"), image(repoB, "b1")
	for _, m := range []store.Manifest{a1, a2, b1} {
		record(t, s, m)
	}
	move(t, s, a2.Digest, store.Approved, nil)
	move(t, s, b1.Digest, store.Approved, nil)

	digests := func(imgs []store.Image) []string {
		var ds []string
		for _, img := range imgs {
			ds = append(ds, img.Digest)
		}
		slices.Sort(ds)
		return ds
	}
	sorted := func(ds ...string) []string { slices.Sort(ds); return ds }
	tests := []struct {
		f    store.ImageFilter
		want []string
	}{
		{store.ImageFilter{}, sorted(a1.Digest, a2.Digest, b1.Digest)},
		{store.ImageFilter{State: store.Approved}, sorted(a2.Digest, b1.Digest)},
		{store.ImageFilter{Repository: repoA}, sorted(a1.Digest, a2.Digest)},
		{store.ImageFilter{Repository: repoA, State: store.Approved}, sorted(a2.Digest)},
		{store.ImageFilter{State: store.Rejected}, nil},
	}
	for _, tc := range tests {
		imgs, err := s.Images(ctx, tc.f)
		if err != nil {
			t.Fatalf("Images(%+v): %v", tc.f, err)
		}
		if got := digests(imgs); !slices.Equal(got, tc.want) {
			t.Errorf("Images(%+v) = %v; want %v", tc.f, got, tc.want)
		}
	}
	imgs, err := s.Images(ctx, store.ImageFilter{Limit: 2})
	if err != nil || len(imgs) != 2 {
		t.Errorf("Images(Limit 2) = %d images, %v; want 2", len(imgs), err)
	}
	for _, img := range imgs {
		if len(img.Repositories) != 1 || len(img.History) == 0 {
			t.Errorf("listed image %s lacks repositories or history: %+v", img.Digest, img)
		}
	}
}

func testTransitionMatrix(t *testing.T, s store.Store) {
	ctx := context.Background()
	states := []store.State{store.Quarantined, store.Approved, store.Rejected, store.Revoked}
	allowed := map[[2]store.State]bool{
		{store.Quarantined, store.Approved}: true,
		{store.Quarantined, store.Rejected}: true,
		{store.Approved, store.Revoked}:     true,
		{store.Rejected, store.Quarantined}: true,
		{store.Revoked, store.Quarantined}:  true,
	}
	for _, from := range states {
		for _, to := range append(slices.Clone(states), "bogus") {
			t.Run(fmt.Sprintf("%s→%s", from, to), func(t *testing.T) {
				m := image(repoA, fmt.Sprintf("%s-%s", from, to))
				record(t, s, m)
				driveTo(t, s, m.Digest, from)
				before, err := s.Image(ctx, m.Digest)
				if err != nil {
					t.Fatal(err)
				}
				img, err := s.Transition(ctx, m.Digest, to, actor, "matrix", nil)
				if allowed[[2]store.State{from, to}] {
					if err != nil {
						t.Fatalf("Transition(%s→%s) = %v; want allowed", from, to, err)
					}
					if img.State != to || len(img.History) != len(before.History)+1 {
						t.Errorf("after %s→%s: state %q, %d transitions; want %q, %d", from, to, img.State, len(img.History), to, len(before.History)+1)
					}
					return
				}
				if !errors.Is(err, store.ErrInvalidTransition) {
					t.Fatalf("Transition(%s→%s) = %v; want ErrInvalidTransition", from, to, err)
				}
				if !regexp.MustCompile(`\b` + regexp.QuoteMeta(m.Digest) + `\b`).MatchString(err.Error()) {
					t.Errorf("error %q does not name the digest", err)
				}
				after, err := s.Image(ctx, m.Digest)
				if err != nil {
					t.Fatal(err)
				}
				if after.State != from || len(after.History) != len(before.History) {
					t.Errorf("refused %s→%s changed the image: state %q, %d transitions", from, to, after.State, len(after.History))
				}
				if n := len(auditOf(t, s, store.AuditFilter{Subject: m.Digest, Action: "state." + string(to)})); to != "bogus" && n != countTo(before.History, to) {
					t.Errorf("refused %s→%s left an audit entry", from, to)
				}
			})
		}
	}
}

func countTo(h []store.Transition, to store.State) int {
	n := 0
	for _, tr := range h {
		if tr.To == to && tr.From != "" {
			n++
		}
	}
	return n
}

func testTransitionUnknown(t *testing.T, s store.Store) {
	if _, err := s.Transition(context.Background(), dg("never"), store.Approved, actor, "", nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Transition(unknown) = %v; want ErrNotFound", err)
	}
}

func testTransitionHistoryAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := image(repoA, "app")
	record(t, s, m)
	expires := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Microsecond)
	img, err := s.Transition(ctx, m.Digest, store.Approved, "bob", "scan clean, profile reviewed", &expires)
	if err != nil {
		t.Fatal(err)
	}
	if img.Expires == nil || !img.Expires.Equal(expires) {
		t.Errorf("Expires = %v; want %v", img.Expires, expires)
	}
	last := img.History[len(img.History)-1]
	if last.From != store.Quarantined || last.To != store.Approved || last.Actor != "bob" ||
		last.Reason != "scan clean, profile reviewed" || last.Expires == nil || !last.Expires.Equal(expires) {
		t.Errorf("approval transition = %+v", last)
	}

	es := auditOf(t, s, store.AuditFilter{Subject: m.Digest, Action: "state.approved"})
	if len(es) != 1 || es[0].Actor != "bob" {
		t.Fatalf("state.approved entries = %+v; want one by bob", es)
	}
	var detail struct {
		From, To, Reason string
		Expires          *time.Time
	}
	if err := json.Unmarshal(es[0].Detail, &detail); err != nil {
		t.Fatalf("audit detail %s: %v", es[0].Detail, err)
	}
	if detail.From != "quarantined" || detail.To != "approved" || detail.Reason != last.Reason ||
		detail.Expires == nil || !detail.Expires.Equal(expires) {
		t.Errorf("audit detail = %s; want from, to, reason and expires", es[0].Detail)
	}

	// Expiry belongs to approvals only.
	img = move(t, s, m.Digest, store.Revoked, &expires)
	if img.Expires != nil || img.History[len(img.History)-1].Expires != nil {
		t.Errorf("revoked image keeps expiry %v", img.Expires)
	}
	img = move(t, s, m.Digest, store.Quarantined, &expires)
	if img.Expires != nil {
		t.Errorf("quarantined image has expiry %v", img.Expires)
	}
	if len(img.History) != 4 {
		t.Errorf("history has %d transitions; want 4", len(img.History))
	}
	verify(t, s, 4)
}

// race runs op in n goroutines at once and returns how many succeeded; an
// error other than store.ErrInvalidTransition (a loser's answer) fails t,
// prefixed with what.
func race(t *testing.T, n int, what string, op func(i int) error) int {
	t.Helper()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- op(i)
		}()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrInvalidTransition):
			t.Errorf("%s: %v", what, err)
		}
	}
	return ok
}

func testTransitionConcurrent(t *testing.T, s store.Store) {
	m := image(repoA, "app")
	record(t, s, m)
	ok := race(t, 8, "concurrent approval", func(i int) error {
		_, err := s.Transition(context.Background(), m.Digest, store.Approved, fmt.Sprintf("approver-%d", i), "race", nil)
		return err
	})
	if ok != 1 {
		t.Errorf("%d concurrent approvals succeeded; want exactly 1", ok)
	}
	verify(t, s, 2)
}

func testExpiry(t *testing.T, s store.Store) {
	ctx := context.Background()
	expired := image(repoA, "expired", "old-layer")
	fresh := image(repoA, "fresh", "new-layer")
	record(t, s, expired)
	record(t, s, fresh)
	past := time.Now().Add(-time.Hour)
	future := time.Now().Add(time.Hour)
	move(t, s, expired.Digest, store.Approved, &past)
	move(t, s, fresh.Digest, store.Approved, &future)

	wantServable(t, s, repoA, expired.Digest, store.Quarantined, true)
	wantBlob(t, s, repoA, dg("old-layer"), false)
	wantServable(t, s, repoA, fresh.Digest, store.Approved, true)
	wantBlob(t, s, repoA, dg("new-layer"), true)

	img, err := s.Image(ctx, expired.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if img.State != store.Approved || img.Expires == nil || !img.Expires.Before(time.Now()) {
		t.Errorf("expired image = state %q, expires %v; want approved with the past expiry so callers can explain", img.State, img.Expires)
	}
	// An expired approval is renewed by revoking and deciding again.
	if _, err := s.Transition(ctx, expired.Digest, store.Approved, actor, "renew", &future); !errors.Is(err, store.ErrInvalidTransition) {
		t.Errorf("re-approving an expired approval = %v; want ErrInvalidTransition", err)
	}
}

func testExpiryClock(t *testing.T, s store.Store) {
	c, ok := s.(Clocked)
	if !ok {
		t.Skip("backend clock cannot be set")
	}
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	c.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	m := image(repoA, "app", "layer")
	idx := store.Manifest{Repository: repoA, Digest: dg("index"), MediaType: mediaIndex, Size: 10, Actor: actor,
		Children: []store.Child{{Digest: m.Digest, MediaType: mediaManifest}}}
	record(t, s, m)
	record(t, s, idx)
	expires := now.Add(time.Hour)
	img := move(t, s, idx.Digest, store.Approved, &expires)
	if !img.UpdatedAt.Equal(now) {
		t.Errorf("UpdatedAt = %v; want the store clock %v", img.UpdatedAt, now)
	}
	wantServable(t, s, repoA, idx.Digest, store.Approved, true)
	wantServable(t, s, repoA, m.Digest, store.Approved, true)
	wantBlob(t, s, repoA, dg("layer"), true)

	advance(time.Hour) // expiry is exclusive: at the instant of expiry it is over
	wantServable(t, s, repoA, idx.Digest, store.Quarantined, true)
	wantServable(t, s, repoA, m.Digest, store.Quarantined, true)
	wantBlob(t, s, repoA, dg("layer"), false)

	if es := auditOf(t, s, store.AuditFilter{Action: "state.approved"}); len(es) != 1 || !es[0].At.Equal(expires.Add(-time.Hour)) {
		t.Errorf("audit time = %+v; want the store clock", es)
	}
}

func testIndexChildren(t *testing.T, s store.Store) {
	ctx := context.Background()
	amd, arm := image(repoA, "amd64", "amd-layer"), image(repoA, "arm64", "arm-layer")
	record(t, s, amd)
	record(t, s, arm)
	children := []store.Child{
		{Digest: amd.Digest, MediaType: mediaManifest, Platform: &store.Platform{OS: "linux", Architecture: "amd64"}},
		{Digest: arm.Digest, MediaType: mediaManifest, Platform: &store.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
	}
	idx := store.Manifest{Repository: repoA, Digest: dg("index"), MediaType: mediaIndex, Size: 500, Actor: actor, Children: children}
	img := record(t, s, idx)
	if len(img.Children) != 2 || img.Children[0].Digest != amd.Digest || img.Children[1].Platform == nil ||
		*img.Children[1].Platform != *children[1].Platform {
		t.Errorf("index children = %+v; want %+v in order", img.Children, children)
	}

	// The same child pushed to another repository without the index.
	other := amd
	other.Repository = repoB
	record(t, s, other)

	wantServable(t, s, repoA, amd.Digest, store.Quarantined, true)
	move(t, s, idx.Digest, store.Approved, nil)
	wantServable(t, s, repoA, idx.Digest, store.Approved, true)
	wantServable(t, s, repoA, amd.Digest, store.Approved, true)
	wantServable(t, s, repoA, arm.Digest, store.Approved, true)
	wantBlob(t, s, repoA, dg("amd-layer"), true)
	wantBlob(t, s, repoA, dg("arm-layer"), true)
	if own, err := s.Image(ctx, amd.Digest); err != nil || own.State != store.Quarantined {
		t.Errorf("child's own state = %q, %v; want quarantined (approval is effective, not copied)", own.State, err)
	}

	wantServable(t, s, repoB, amd.Digest, store.Quarantined, true)
	wantBlob(t, s, repoB, dg("amd-layer"), false)

	move(t, s, idx.Digest, store.Revoked, nil)
	wantServable(t, s, repoA, amd.Digest, store.Quarantined, true)
	wantBlob(t, s, repoA, dg("amd-layer"), false)

	// An expired index approval does not carry its children either.
	move(t, s, idx.Digest, store.Quarantined, nil)
	past := time.Now().Add(-time.Minute)
	move(t, s, idx.Digest, store.Approved, &past)
	wantServable(t, s, repoA, arm.Digest, store.Quarantined, true)
	wantBlob(t, s, repoA, dg("arm-layer"), false)
}

func testBlobServable(t *testing.T, s store.Store) {
	// The same layer is in an approved image in A and a quarantined image in B.
	approved := image(repoA, "approved", "config-a", "shared-layer")
	quarantined := image(repoB, "quarantined", "config-b", "shared-layer")
	rejected := image(repoA, "rejected", "bad-layer")
	record(t, s, approved)
	record(t, s, quarantined)
	record(t, s, rejected)
	move(t, s, approved.Digest, store.Approved, nil)
	move(t, s, rejected.Digest, store.Rejected, nil)

	tests := []struct {
		repo, blob string
		want       bool
	}{
		{repoA, dg("shared-layer"), true},
		{repoA, dg("config-a"), true},
		{repoB, dg("shared-layer"), false},
		{repoB, dg("config-b"), false},
		{repoA, dg("config-b"), false},
		{repoA, dg("bad-layer"), false},
		{repoA, dg("never"), false},
		{"nobody/here", dg("shared-layer"), false},
	}
	for _, tc := range tests {
		wantBlob(t, s, tc.repo, tc.blob, tc.want)
	}
	move(t, s, quarantined.Digest, store.Approved, nil)
	wantBlob(t, s, repoB, dg("shared-layer"), true)
}

func testReferrers(t *testing.T, s store.Store) {
	ctx := context.Background()
	subject := image(repoA, "app")
	record(t, s, subject)
	sig := image(repoA, "sig", "sig-payload")
	sig.Subject, sig.ArtifactType = subject.Digest, "application/vnd.dev.cosign.artifact.sig.v1+json"
	sig.Annotations = map[string]string{"dev.cosignproject.cosign/signature": "MEUC"}
	sbom := image(repoA, "sbom", "sbom-payload")
	sbom.Subject, sbom.ArtifactType = subject.Digest, "application/spdx+json"
	elsewhere := image(repoB, "sig-b")
	elsewhere.Subject = subject.Digest
	unrelated := image(repoA, "unrelated")
	unrelated.Subject = dg("someone-else")
	for _, m := range []store.Manifest{sig, sbom, elsewhere, unrelated} {
		record(t, s, m)
	}
	move(t, s, sig.Digest, store.Approved, nil)

	refs, err := s.Referrers(ctx, repoA, subject.Digest)
	if err != nil {
		t.Fatal(err)
	}
	byDigest := map[string]store.Referrer{}
	for _, r := range refs {
		byDigest[r.Digest] = r
	}
	if len(refs) != 2 || len(byDigest) != 2 {
		t.Fatalf("Referrers = %+v; want the signature and the SBOM", refs)
	}
	r := byDigest[sig.Digest]
	if r.State != store.Approved || r.ArtifactType != sig.ArtifactType || r.MediaType != mediaManifest ||
		r.Size != sig.Size || r.Annotations["dev.cosignproject.cosign/signature"] != "MEUC" {
		t.Errorf("signature referrer = %+v", r)
	}
	if r := byDigest[sbom.Digest]; r.State != store.Quarantined || r.ArtifactType != sbom.ArtifactType || len(r.Annotations) != 0 {
		t.Errorf("SBOM referrer = %+v", r)
	}
	if img, err := s.Image(ctx, sig.Digest); err != nil || img.Subject != subject.Digest {
		t.Errorf("Image(sig).Subject = %q, %v; want %s", img.Subject, err, subject.Digest)
	}
	if refs, err := s.Referrers(ctx, repoA, dg("nothing")); err != nil || len(refs) != 0 {
		t.Errorf("Referrers(no referrers) = %+v, %v; want none", refs, err)
	}
	if refs, err := s.Referrers(ctx, repoB, subject.Digest); err != nil || len(refs) != 1 || refs[0].Digest != elsewhere.Digest {
		t.Errorf("Referrers in %s = %+v, %v; want only %s", repoB, refs, err, elsewhere.Digest)
	}
}

func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	expires := time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Microsecond)
	ci := store.Token{Name: "ci", Role: store.RolePusher, Hash: hashOf("ci-secret"), CreatedBy: "admin", ExpiresAt: &expires}
	bot := store.Token{Name: "bot", Role: store.RolePuller, Hash: hashOf("bot-secret"), CreatedBy: "admin"}
	for _, tok := range []store.Token{ci, bot} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken(%s): %v", tok.Name, err)
		}
	}

	for _, tc := range []struct {
		name string
		tok  store.Token
		want error
	}{
		{"duplicate name", store.Token{Name: "ci", Role: store.RoleAdmin, Hash: hashOf("other"), CreatedBy: "admin"}, store.ErrExists},
		{"duplicate secret", store.Token{Name: "ci2", Role: store.RoleAdmin, Hash: ci.Hash, CreatedBy: "admin"}, store.ErrExists},
		{"unknown role", store.Token{Name: "x", Role: "root", Hash: hashOf("x"), CreatedBy: "admin"}, nil},
		{"no hash", store.Token{Name: "y", Role: store.RoleAdmin, CreatedBy: "admin"}, nil},
	} {
		err := s.CreateToken(ctx, tc.tok)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("CreateToken(%s) = %v; want error %v", tc.name, err, tc.want)
		}
	}

	got, err := s.TokenByHash(ctx, ci.Hash)
	if err != nil {
		t.Fatalf("TokenByHash: %v", err)
	}
	if got.Name != "ci" || got.Role != store.RolePusher || got.Hash != ci.Hash || got.CreatedBy != "admin" ||
		got.CreatedAt.IsZero() || got.ExpiresAt == nil || !got.ExpiresAt.Equal(expires) || got.Revoked {
		t.Errorf("TokenByHash = %+v; want %+v", got, ci)
	}
	if _, err := s.TokenByHash(ctx, hashOf("wrong")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByHash(unknown) = %v; want ErrNotFound", err)
	}

	toks, err := s.Tokens(ctx)
	if err != nil || len(toks) != 2 || toks[0].Name != "bot" || toks[1].Name != "ci" {
		t.Errorf("Tokens() = %+v, %v; want bot, ci", toks, err)
	}

	if err := s.RevokeToken(ctx, "ci", "admin"); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if got, err := s.TokenByHash(ctx, ci.Hash); err != nil || !got.Revoked {
		t.Errorf("revoked token = %+v, %v; want Revoked (callers refuse it)", got, err)
	}
	if err := s.RevokeToken(ctx, "ci", "admin"); err != nil {
		t.Errorf("revoking twice = %v; want nil", err)
	}
	if err := s.RevokeToken(ctx, "nobody", "admin"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeToken(unknown) = %v; want ErrNotFound", err)
	}

	created := auditOf(t, s, store.AuditFilter{Action: "token.created"})
	if len(created) != 2 {
		t.Fatalf("token.created entries = %+v; want 2", created)
	}
	for _, e := range created {
		if regexp.MustCompile(ci.Hash + "|" + bot.Hash).Match(e.Detail) {
			t.Errorf("audit entry %d leaks the token hash: %s", e.Seq, e.Detail)
		}
	}
	revoked := auditOf(t, s, store.AuditFilter{Action: "token.revoked"})
	if len(revoked) != 1 || revoked[0].Subject != "ci" || revoked[0].Actor != "admin" {
		t.Errorf("token.revoked entries = %+v; want one for ci by admin", revoked)
	}
	verify(t, s, 3)
}

func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func testAuditChain(t *testing.T, s store.Store) {
	ctx := context.Background()
	var prev store.AuditEntry
	for i := 1; i <= 5; i++ {
		e, err := s.Audit(ctx, store.AuditEntry{
			Actor: actor, Action: "request.denied", Subject: repoA,
			Detail: json.RawMessage(fmt.Sprintf(`{ "n": %d, "why": "<not approved> & quarantined" }`, i)),
		})
		if err != nil {
			t.Fatalf("Audit %d: %v", i, err)
		}
		if e.Seq != int64(i) || e.At.IsZero() || e.PrevHash != prev.Hash {
			t.Errorf("entry %d = seq %d, at %v, prev %q; want seq %d linked to %q", i, e.Seq, e.At, e.PrevHash, i, prev.Hash)
		}
		if h, err := store.AuditHash(e); err != nil || h != e.Hash {
			t.Errorf("entry %d hash = %q; AuditHash gives %q, %v", i, e.Hash, h, err)
		}
		if want := fmt.Sprintf(`{"n":%d,"why":"<not approved> & quarantined"}`, i); string(e.Detail) != want {
			t.Errorf("entry %d detail = %s; want compacted %s", i, e.Detail, want)
		}
		prev = e
	}
	stored := auditOf(t, s, store.AuditFilter{})
	if len(stored) != 5 {
		t.Fatalf("AuditEntries() has %d entries; want 5", len(stored))
	}
	last := stored[4]
	if last.Hash != prev.Hash || !last.At.Equal(prev.At) || string(last.Detail) != string(prev.Detail) {
		t.Errorf("stored entry %+v differs from returned %+v", last, prev)
	}
	verify(t, s, 5)
}

func testAuditFilter(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := range 6 {
		subject, action := repoA, "request.denied"
		if i%2 == 1 {
			subject, action = repoB, "serve.allow-unvetted"
		}
		if _, err := s.Audit(ctx, store.AuditEntry{Actor: actor, Action: action, Subject: subject}); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(es []store.AuditEntry) []int64 {
		var out []int64
		for _, e := range es {
			out = append(out, e.Seq)
		}
		return out
	}
	tests := []struct {
		f    store.AuditFilter
		want []int64
	}{
		{store.AuditFilter{}, []int64{1, 2, 3, 4, 5, 6}},
		{store.AuditFilter{Subject: repoB}, []int64{2, 4, 6}},
		{store.AuditFilter{Action: "request.denied"}, []int64{1, 3, 5}},
		{store.AuditFilter{AfterSeq: 4}, []int64{5, 6}},
		{store.AuditFilter{Limit: 2}, []int64{1, 2}},
		{store.AuditFilter{Subject: repoA, AfterSeq: 1, Limit: 1}, []int64{3}},
		{store.AuditFilter{Action: "nothing"}, nil},
	}
	for _, tc := range tests {
		if got := seqs(auditOf(t, s, tc.f)); !slices.Equal(got, tc.want) {
			t.Errorf("AuditEntries(%+v) = %v; want %v", tc.f, got, tc.want)
		}
	}
}

func testAuditInvalidDetail(t *testing.T, s store.Store) {
	if _, err := s.Audit(context.Background(), store.AuditEntry{Action: "x", Detail: json.RawMessage(`{oops`)}); err == nil {
		t.Error("Audit with invalid detail succeeded; want an error")
	}
	verify(t, s, 0)
}

func testAuditEmpty(t *testing.T, s store.Store) {
	verify(t, s, 0)
}

func testAuditConcurrent(t *testing.T, s store.Store) {
	const goroutines, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.Audit(context.Background(), store.AuditEntry{
					Actor: fmt.Sprintf("worker-%d", g), Action: "request.denied", Subject: repoA,
					Detail: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)),
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Audit: %v", err)
	}
	verify(t, s, goroutines*each)
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testAuditTamper(t *testing.T, open func(t *testing.T) store.Store, tamper Tamper) {
	const entries = 10
	for _, tc := range []struct {
		op  TamperOp
		seq int64
	}{
		{TamperEdit, 1},
		{TamperEdit, 4},
		{TamperEdit, entries},
		{TamperDelete, 1},
		{TamperDelete, 4},
		{TamperDelete, entries},
	} {
		t.Run(fmt.Sprintf("%s-%d", tc.op, tc.seq), func(t *testing.T) {
			s := open(t)
			for i := range entries {
				if _, err := s.Audit(context.Background(), store.AuditEntry{Actor: actor, Action: "request.denied", Subject: fmt.Sprint(i)}); err != nil {
					t.Fatal(err)
				}
			}
			verify(t, s, entries)
			if err := tamper(s, tc.seq, tc.op); err != nil {
				t.Fatalf("tamper: %v", err)
			}
			n, err := s.VerifyAudit(context.Background())
			if !errors.Is(err, store.ErrAuditTampered) {
				t.Fatalf("VerifyAudit after %s of entry %d = %d, %v; want ErrAuditTampered", tc.op, tc.seq, n, err)
			}
			if n != tc.seq-1 {
				t.Errorf("VerifyAudit counted %d good entries; want %d", n, tc.seq-1)
			}
			if !regexp.MustCompile(fmt.Sprintf(`\b%d\b`, tc.seq)).MatchString(err.Error()) {
				t.Errorf("VerifyAudit error %q does not name entry %d", err, tc.seq)
			}
		})
	}
}
