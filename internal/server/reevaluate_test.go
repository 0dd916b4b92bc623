package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/attest"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/scan/vulndb"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/shareddata"
	"github.com/airlock-dev/airlock/internal/store"
)

// reevalPolicy denies any known vulnerability (so a new advisory calls for
// a revocation) and otherwise leaves the decision to a human.
const reevalPolicy = `apiVersion: airlock.dev/policy/v1
name: reeval
default: allow
reevaluation:
  revoke: deny
  grace: 1h
rules:
  - name: known-vulnerability
    effect: deny
    when: findings.exists(f, f.type == "vulnerability")
    message: a known vulnerability
    evidence: findings.filter(f, f.type == "vulnerability").map(f, f.id)
  - name: human
    effect: review
    when: "true"
    message: a human decides
`

// alertSink is a webhook receiver on 127.0.0.1 that keeps every alert.
type alertSink struct {
	mu     sync.Mutex
	alerts []server.Alert
	srv    *httptest.Server
}

func startAlertSink(t *testing.T) *alertSink {
	s := &alertSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a server.Alert
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.alerts = append(s.alerts, a)
		s.mu.Unlock()
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *alertSink) of(kind, digest string) []server.Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []server.Alert
	for _, a := range s.alerts {
		if a.Kind == kind && a.Digest == digest {
			out = append(out, a)
		}
	}
	return out
}

// testClock is a clock the test moves; the decider reads it from its own goroutine.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// pythonApp is an image whose inventory holds requests 2.30.0 (PyPI), which
// PYSEC-2023-74 in the shared OSV data affects (fixed in 2.31.0).
func pythonApp(t *testing.T, up *servertest.Upstream, repoTag string) string {
	img := servertest.Image(t, v1.Platform{OS: "linux", Architecture: "amd64"}, map[string][]byte{
		"usr/local/lib/python3.11/site-packages/requests-2.30.0.dist-info/METADATA": []byte("Metadata-Version: 2.1\nName: requests\nVersion: 2.30.0\n"),
		"app/main.py": []byte("import requests\n"),
	}, []string{"/usr/bin/python3", "/app/main.py"}, nil)
	return up.Push(t, repoTag, img, nil)
}

// importAdvisories imports OSV records from the shared data into the server's data directory.
func importAdvisories(t *testing.T, in *servertest.Instance, elem ...string) string {
	t.Helper()
	ctx := context.Background()
	db, err := vulndb.Open(ctx, in.Server.Config.Data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := db.ImportWith(ctx, vulndb.ImportOptions{Strict: true}, shareddata.Path(t, elem...))
	if err != nil {
		t.Fatal(err)
	}
	return rep.Snapshot
}

func writePolicy(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func metric(t *testing.T, in *servertest.Instance, line string) bool {
	t.Helper()
	resp, err := http.Get(in.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(b), line)
}

// TestReevaluationRevokesAfterGrace: an approved image, then newer
// advisories that affect a package of its stored inventory: an alert (log,
// webhook, metric, audit), a revocation scheduled for the policy's grace
// period — the digest stays approved meanwhile, never pending — and
// executed when the grace period ends.
func TestReevaluationRevokesAfterGrace(t *testing.T) {
	ctx := context.Background()
	sink := startAlertSink(t)
	pol := writePolicy(t, reevalPolicy)
	up := servertest.StartUpstream(t)
	want := pythonApp(t, up, "team/app:1")
	in, c := startForImport(t, func(c *config.Config) { c.Policy.File = pol; c.Alerts.Webhook = sink.srv.URL })
	clock := &testClock{}
	in.Server.Decider.SetClock(clock.now)
	admin := in.Client(in.AdminToken)
	approver := in.Client(in.Token(t, "ann", store.RoleApprover))

	ev := importJSON(t, c, server.ImportRequest{Source: up.Host + "/team/app:1", Insecure: true})
	if ev.Type != "result" || ev.Result.Digest != want {
		t.Fatalf("import: %+v", ev)
	}
	waitJob(t, c, ev.Job.ID)
	// A second image with the same package stays in quarantine.
	other := servertest.Image(t, v1.Platform{OS: "linux", Architecture: "amd64"}, map[string][]byte{
		"usr/lib/python3/dist-packages/requests-2.30.0.dist-info/METADATA": []byte("Metadata-Version: 2.1\nName: requests\nVersion: 2.30.0\n"),
	}, []string{"/usr/bin/python3"}, nil)
	waiting := up.Push(t, "team/other:1", other, nil)
	ev2 := importJSON(t, c, server.ImportRequest{Source: up.Host + "/team/other:1", Insecure: true})
	if ev2.Type != "result" || ev2.Result.Digest != waiting {
		t.Fatalf("import: %+v", ev2)
	}
	waitJob(t, c, ev2.Job.ID)
	// No advisory data yet: no vulnerability, a human approves.
	if _, err := approver.Approve(ctx, want, server.DecisionRequest{Reason: "reviewed"}); err != nil {
		t.Fatal(err)
	}
	pull := in.Token(t, "dev", store.RolePuller)
	before := envelopesOf(t, in, ev.Result.Repository, want, pull)
	if _, ok := before[attest.VulnPredicateType]; ok || len(before) != 2 {
		t.Fatalf("approved without advisory data: layers %v; want approval and SBOM, no vuln result", keys(before))
	}
	// Re-evaluating without advisory data is a clear error.
	if _, err := admin.Reevaluate(ctx); err == nil || !strings.Contains(err.Error(), "airlock db import") {
		t.Fatalf("re-evaluate with no advisory database: %v", err)
	}

	snap := importAdvisories(t, in, "osv", "pypi", "requests")
	rep, err := admin.Reevaluate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Snapshot != snap || rep.Checked != 2 || len(rep.Images) != 2 || rep.Alerts != 1 || len(rep.Skipped) != 0 {
		t.Fatalf("report %+v; want two digests re-matched against %s with one alert", rep, snap)
	}
	byDigest := map[string]server.ReevaluatedDigest{}
	for _, im := range rep.Images {
		byDigest[im.Digest] = im
	}
	// The quarantined one: re-matched, its new finding recorded for the
	// reviewer, no alert and no revocation.
	if q := byDigest[waiting]; q.State != store.Quarantined || len(q.New) != 1 || q.Revocation != nil || q.Verdict != policy.Deny {
		t.Fatalf("quarantined digest re-evaluated as %+v", q)
	}
	if len(sink.of(server.AlertNewFindings, waiting)) != 0 {
		t.Error("an alert for a quarantined digest")
	}
	got := byDigest[want]
	if got.Digest != want || got.State != store.Approved || got.Verdict != policy.Deny || got.Revocation == nil {
		t.Fatalf("re-evaluated %+v", got)
	}
	found := false
	for _, f := range got.New {
		if f.ID == "PYSEC-2023-74" && f.Package == "requests" && f.Version == "2.30.0" && f.Fixed == "2.31.0" {
			found = true
		}
	}
	if !found {
		t.Fatalf("new findings %+v lack PYSEC-2023-74 in requests 2.30.0", got.New)
	}
	due := got.Revocation.Due
	if d := due.Sub(clock.now()); d < 59*time.Minute || d > time.Hour {
		t.Errorf("revocation due %s, %s from now; want the policy's 1h grace", due, d)
	}
	// The approved digest's vuln attestation now tells what is known; its approval is unchanged.
	after := envelopesOf(t, in, ev.Result.Repository, want, pull)
	if after[attest.ApprovalPredicateType].Payload != before[attest.ApprovalPredicateType].Payload {
		t.Error("re-evaluation changed the signed approval")
	}
	pubPEM, _ := admin.PublicKey(ctx)
	pub, _ := attest.ParsePublicKey(pubPEM)
	vp, err := attest.Verify(pub, after[attest.VulnPredicateType])
	if err != nil {
		t.Fatalf("vuln attestation after re-evaluation: %v", err)
	}
	vst, _ := attest.ParseStatement(vp)
	var vuln attest.Vuln
	var vres attest.VulnResult
	if json.Unmarshal(vst.Predicate, &vuln) != nil || json.Unmarshal(vuln.Scanner.Result, &vres) != nil || !vst.Covers(want) ||
		vres.Snapshot != snap || !vres.Reevaluated || len(vres.Vulnerabilities) != 1 || vres.Vulnerabilities[0]["id"] != "PYSEC-2023-74" {
		t.Fatalf("vuln attestation after re-evaluation: %s", vst.Predicate)
	}
	if _, err := verifyWith(t, in, pull, in.Host+"/"+ev.Result.Repository+"@"+want, pubPEM); err != nil {
		t.Fatalf("verify during the grace period: %v", err)
	}
	// The alert reached the webhook, the metric and the audit log.
	alerts := sink.of(server.AlertNewFindings, want)
	if len(alerts) != 1 || alerts[0].Revocation == nil || alerts[0].Snapshot != snap || len(alerts[0].Findings) == 0 || alerts[0].Verdict != policy.Deny {
		t.Fatalf("webhook alerts %+v", alerts)
	}
	if !metric(t, in, `airlock_alerts_total{kind="new-findings"} 1`) || !metric(t, in, `airlock_scheduled_revocations_total{outcome="scheduled"} 1`) {
		t.Error("metrics lack the alert and the scheduled revocation")
	}
	// Still approved during the grace period, and the record and queue show what is coming.
	img, err := admin.Image(ctx, want)
	if err != nil || img.State != store.Approved {
		t.Fatalf("during the grace period: %s, %v; want approved", img.State, err)
	}
	rec, err := approver.Record(ctx, want)
	if err != nil || len(rec.Revocations) != 1 || rec.Revocations[0].Status != store.RevocationScheduled || rec.Reevaluation == nil {
		t.Fatalf("record: %+v, %v", rec.Revocations, err)
	}
	q, err := approver.Queue(ctx, "")
	if err != nil || len(q) != 2 || q[1].Image.Digest != want || q[1].Revocation == nil || q[0].Image.Digest != waiting {
		t.Fatalf("queue: %+v, %v; want the digest with its scheduled revocation", q, err)
	}
	// The same data again changes nothing and alerts nobody.
	if rep, err := admin.Reevaluate(ctx); err != nil || len(rep.Images) != 0 || rep.Alerts != 0 {
		t.Fatalf("second re-evaluation on the same snapshot: %+v, %v", rep, err)
	}
	// Not due yet: nothing happens.
	if ex, err := in.Server.Decider.ExecuteDue(ctx); err != nil || len(ex) != 0 {
		t.Fatalf("before the grace period ends: %+v, %v", ex, err)
	}

	clock.advance(61 * time.Minute)
	ex, err := in.Server.Decider.ExecuteDue(ctx)
	if err != nil || len(ex) != 1 || ex[0].State != store.Revoked {
		t.Fatalf("after the grace period: %+v, %v", ex, err)
	}
	if len(sink.of(server.AlertRevoked, want)) != 1 || !metric(t, in, `airlock_scheduled_revocations_total{outcome="executed"} 1`) {
		t.Error("the revocation raised no alert or metric")
	}
	img, _ = admin.Image(ctx, want)
	var states []store.State
	for _, h := range img.History {
		states = append(states, h.To)
	}
	if strings.Join(stateStrings(states), ",") != "quarantined,approved,revoked" {
		t.Errorf("history %v; want quarantined, approved, revoked — never back to pending", states)
	}
	last := img.History[len(img.History)-1]
	if last.Actor != "airlock" || !strings.Contains(last.Reason, "PYSEC-2023-74") || !strings.Contains(last.Reason, "grace period") {
		t.Errorf("revocation recorded as %+v", last)
	}
	atts, _ := in.Server.Store.Attestations(ctx, want)
	for _, a := range atts {
		if a.RevokedAt == nil {
			t.Errorf("attestation %s not marked revoked", a.Manifest)
		}
	}
	rec, _ = admin.Record(ctx, want)
	wantOrder := []string{"state.approved", "reevaluation.recorded", "revocation.scheduled", "alert.new-findings", "state.revoked", "revocation.executed", "alert.revoked"}
	next := 0
	for _, e := range rec.Audit {
		if next < len(wantOrder) && e.Action == wantOrder[next] {
			next++
		}
	}
	if next != len(wantOrder) {
		t.Errorf("audit lacks, in order, %v", wantOrder)
	}
}

func stateStrings(ss []store.State) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// TestReevaluationFinishesAfterCrash: a re-evaluation recorded by a run
// that stopped before scheduling the revocation is finished by the next
// run on the same data, once.
func TestReevaluationFinishesAfterCrash(t *testing.T) {
	ctx := context.Background()
	sink := startAlertSink(t)
	pol := writePolicy(t, reevalPolicy)
	up := servertest.StartUpstream(t)
	want := pythonApp(t, up, "team/app:3")
	in, c := startForImport(t, func(c *config.Config) { c.Policy.File = pol; c.Alerts.Webhook = sink.srv.URL })
	ev := importJSON(t, c, server.ImportRequest{Source: up.Host + "/team/app:3", Insecure: true})
	waitJob(t, c, ev.Job.ID)
	admin := in.Client(in.AdminToken)
	if _, err := admin.Approve(ctx, want, server.DecisionRequest{Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
	snap := importAdvisories(t, in, "osv", "pypi", "requests")
	// What the stopped run left: the match recorded, nothing scheduled, no alert.
	finding := `[{"type":"vulnerability","detector":"advisories","severity":"unknown","id":"PYSEC-2023-74","title":"t",` +
		`"package":{"name":"requests","version":"2.30.0","ecosystem":"PyPI"},"location":{"path":"/x"},"fixed":"2.31.0","image":"` + want + `"}]`
	if _, err := in.Server.Store.RecordReevaluation(ctx, store.Reevaluation{Digest: want, Snapshot: snap, Findings: []byte(finding),
		New: []string{"PYSEC-2023-74|requests|" + want}, Actor: "admin"}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		rep, err := admin.Reevaluate(ctx)
		if err != nil || len(rep.Images) != 0 {
			t.Fatalf("run %d: %+v, %v; want nothing matched again", i, rep, err)
		}
	}
	rs, err := admin.Revocations(ctx, want, "")
	if err != nil || len(rs) != 1 || rs[0].Status != store.RevocationScheduled || !strings.Contains(rs[0].Reason, "PYSEC-2023-74") {
		t.Fatalf("revocations %+v, %v; want the one the stopped run owed", rs, err)
	}
	if a := sink.of(server.AlertNewFindings, want); len(a) != 1 || len(a[0].Findings) != 1 || a[0].Findings[0].ID != "PYSEC-2023-74" {
		t.Fatalf("alerts %+v; want one", a)
	}
}

// TestReevaluationSkipsUnreadableReport: a digest whose stored scan report
// is gone is skipped with the reason, and the others are still re-evaluated.
func TestReevaluationSkipsUnreadableReport(t *testing.T) {
	ctx := context.Background()
	up := servertest.StartUpstream(t)
	want := pythonApp(t, up, "team/app:4")
	in, c := startForImport(t, nil)
	ev := importJSON(t, c, server.ImportRequest{Source: up.Host + "/team/app:4", Insecure: true})
	waitJob(t, c, ev.Job.ID)
	admin := in.Client(in.AdminToken)
	if _, err := admin.Approve(ctx, want, server.DecisionRequest{Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
	// Remove the report blob from the registry's storage, as a broken disk would.
	j, err := admin.Job(ctx, ev.Job.ID)
	if err != nil {
		t.Fatal(err)
	}
	var se struct {
		Images []struct {
			Artifacts []struct{ ArtifactType, Blob string }
		}
	}
	for _, s := range j.Stages {
		if s.Name == "scan" {
			_ = json.Unmarshal(s.Evidence, &se)
		}
	}
	removed := 0
	for _, im := range se.Images {
		for _, a := range im.Artifacts {
			if a.ArtifactType != "application/vnd.airlock.scan.report.v1+json" {
				continue
			}
			hex := strings.TrimPrefix(a.Blob, "sha256:")
			if err := os.Remove(filepath.Join(in.Data, "registry", "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")); err != nil {
				t.Fatal(err)
			}
			removed++
		}
	}
	if removed != 1 {
		t.Fatalf("removed %d report blobs; want 1", removed)
	}
	importAdvisories(t, in, "osv", "pypi", "requests")
	rep, err := admin.Reevaluate(ctx)
	if err != nil || len(rep.Images) != 0 || len(rep.Skipped) != 1 || rep.Skipped[0].Digest != want ||
		!strings.Contains(rep.Skipped[0].Reason, "scan the image again") {
		t.Fatalf("report %+v, %v; want the digest skipped with the reason", rep, err)
	}
	if img, _ := admin.Image(ctx, want); img.State != store.Approved {
		t.Fatalf("state %s; a skipped digest changes nothing", img.State)
	}
}
