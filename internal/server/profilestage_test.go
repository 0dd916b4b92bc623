package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/profile/profiletest"
	"github.com/airlock-dev/airlock/internal/profile/stage"
	"github.com/airlock-dev/airlock/internal/sandbox"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

func stageOf(j store.Job, name string) *store.StageRun {
	for i := range j.Stages {
		if j.Stages[i].Name == name {
			return &j.Stages[i]
		}
	}
	return nil
}

// Import a clean service → profiled in the sandbox, the profile recorded and
// attached as a referrer; approve it; import its trojaned next version into
// the same repository → its profile is diffed against the approved one, the
// diff is exactly the planted behaviour, and the policy rejects it.
func TestProfileStage(t *testing.T) {
	profiletest.NeedSandbox(t)
	up := servertest.StartUpstream(t)
	cleanDigest := up.Push(t, "apps/svc:1.0", profiletest.App(t, false), nil)
	trojanDigest := up.Push(t, "apps/svc:1.1", profiletest.App(t, true), nil)
	in, c := startForImport(t, nil)
	ctx := context.Background()

	ev := importJSON(t, c, server.ImportRequest{Source: up.Host + "/apps/svc:1.0", Insecure: true})
	if ev.Type != "result" {
		t.Fatalf("import: %+v", ev)
	}
	j := waitJob(t, c, ev.Job.ID)
	ps := stageOf(j, "profile")
	if ps == nil || ps.Status != store.StageDone {
		t.Fatalf("profile stage: %+v", ps)
	}
	var first profile.StageEvidence
	if err := json.Unmarshal(ps.Evidence, &first); err != nil {
		t.Fatal(err)
	}
	if first.Status != profile.StatusProfiled || first.Profile == nil || first.Digest != cleanDigest || first.Baseline != nil ||
		len(first.Artifacts) != 1 || first.Artifacts[0].ArtifactType != profile.MediaType || len(first.Critical) != 0 {
		t.Fatalf("clean evidence: %s", ps.Evidence)
	}
	if got := first.Profile.Executables; len(got) != 2 || got[0].Path != "/usr/bin/app" || got[1].Path != "/usr/bin/helper" {
		t.Fatalf("clean executables %+v", got)
	}
	// Run again (as after a crash before its result was recorded), the stage
	// reuses the profile it attached: same document, same referrer.
	again, err := in.Server.Runner.Steps["profile"].Run(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	var second profile.StageEvidence
	if json.Unmarshal(again.Evidence, &second) != nil || second.ProfileDigest != first.ProfileDigest || !reflect.DeepEqual(second.Artifacts, first.Artifacts) {
		t.Fatalf("profile stage run again:\n%s\n%s", again.Evidence, ps.Evidence)
	}

	// Once the image is approved, a puller finds the profile among its referrers.
	in.Approve(t, cleanDigest)
	repo := strings.Replace(up.Host, ":", "_", 1) + "/apps/svc"
	pull := in.Token(t, "puller", store.RolePuller)
	idx, err := remote.Referrers(in.Ref(t, repo+"@"+cleanDigest).(name.Digest), servertest.Auth("puller", pull))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	found := false
	for _, m := range im.Manifests {
		if m.ArtifactType != profile.MediaType {
			continue
		}
		art, err := remote.Image(in.Ref(t, repo+"@"+m.Digest.String()), servertest.Auth("puller", pull))
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := art.Layers()
		rc, err := ls[0].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		p, err := profile.Parse(rc)
		rc.Close()
		if err != nil || p.Image.Digest != cleanDigest {
			t.Fatalf("attached profile: %+v %v", p.Image, err)
		}
		found = true
	}
	if !found {
		t.Fatalf("no profile among the referrers: %+v", im.Manifests)
	}

	// The trojaned version, diffed against the approved one, is rejected.
	j = importedJob(t, c, server.ImportRequest{Source: up.Host + "/apps/svc:1.1", Insecure: true})
	ps = stageOf(j, "profile")
	var tev profile.StageEvidence
	if ps == nil || ps.Status != store.StageDone || json.Unmarshal(ps.Evidence, &tev) != nil {
		t.Fatalf("trojan profile stage: %+v", ps)
	}
	if tev.Baseline == nil || tev.Baseline.Digest != cleanDigest || tev.Digest != trojanDigest {
		t.Fatalf("trojan baseline: %s", ps.Evidence)
	}
	d := tev.Baseline.Diff
	if !slices.Equal(d.Executables.Added, []string{"/tmp/.x/kworker"}) || !slices.Equal(d.Destinations.Added, []string{"tcp pool.example.invalid:3333 stratum"}) ||
		!slices.Equal(d.DNS.Added, []string{"pool.example.invalid A"}) || len(d.Executables.Removed)+len(d.Destinations.Removed)+len(d.Listening.Added) != 0 {
		t.Fatalf("trojan diff: %+v", d)
	}
	var decided policy.Outcome
	if ds := stageOf(j, "decide"); ds == nil || json.Unmarshal(ds.Evidence, &decided) != nil {
		t.Fatalf("decide stage: %+v", ds)
	}
	var rules []string
	for _, f := range decided.Verdict.Fired {
		rules = append(rules, f.Rule)
	}
	if decided.Verdict.Effect != policy.Deny || !slices.Contains(rules, "profile-critical-behaviour") ||
		!slices.Contains(rules, "new-executable") || !slices.Contains(rules, "new-network-destination") {
		t.Fatalf("verdict %s with %v", decided.Verdict.Effect, rules)
	}
	if rec, err := in.Client(in.AdminToken).Image(ctx, trojanDigest); err != nil || rec.State != store.Rejected {
		t.Fatalf("trojan record %+v %v", rec.State, err)
	}
}

// Fail closed without a profile: on a host with no sandbox the stage says
// so, and an image with nothing to run is recorded as such; the policy
// sends both to a human (profile-missing), never allows them.
func TestProfileStageWithoutProfile(t *testing.T) {
	ctx := context.Background()
	up := servertest.StartUpstream(t)
	empty := up.Push(t, "apps/data:1", servertest.Image(t, v1.Platform{OS: "linux", Architecture: runtime.GOARCH},
		map[string][]byte{"data/x": []byte("x")}, nil, nil), nil)
	in, c := startForImport(t, nil)

	// Nothing to run: the stage is done, with no profile, and the policy asks a human.
	ev := importJSON(t, c, server.ImportRequest{Source: up.Host + "/apps/data:1", Insecure: true})
	j := waitJob(t, c, ev.Job.ID)
	var nev profile.StageEvidence
	if ps := stageOf(j, "profile"); ps == nil || ps.Status != store.StageDone || json.Unmarshal(ps.Evidence, &nev) != nil ||
		nev.Status != profile.StatusNotRunnable || nev.Profile != nil || !strings.Contains(nev.Reason, "no entrypoint") {
		t.Fatalf("profile stage of an image with nothing to run: %+v", ps)
	}
	if rules := firedRules(t, j); !slices.Contains(rules, "profile-missing") {
		t.Fatalf("rules fired for %s: %v", empty, rules)
	}

	// No sandbox on the host (this test plays one: CI runs on Linux as
	// root): the stage says why there is no profile.
	step := &stage.Step{Store: in.Server.Store, Registry: in.Server.Registry, TempDir: t.TempDir(),
		Available: func() error { return fmt.Errorf("%w: this host plays one without namespaces", sandbox.ErrUnsupported) }}
	out, err := step.Run(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	var uev profile.StageEvidence
	if json.Unmarshal(out.Evidence, &uev) != nil || uev.Profile != nil || uev.Status != profile.StatusUnavailable ||
		!strings.Contains(uev.Reason, "plays one without namespaces") || !strings.Contains(uev.Reason, "needs a human decision") {
		t.Fatalf("evidence without a sandbox: %s", out.Evidence)
	}
	for i := range j.Stages {
		if j.Stages[i].Name == "profile" {
			j.Stages[i].Evidence = out.Evidence
		}
	}
	e, err := policy.Gather(ctx, in.Server.Store, empty, &j)
	if err != nil {
		t.Fatal(err)
	}
	v, err := policy.Default().Evaluate(e)
	if err != nil {
		t.Fatal(err)
	}
	if v.Effect == policy.Allow || e.Profile.Present || e.Profile.Status != profile.StatusUnavailable || !slices.Contains(ruleNames(v), "profile-missing") {
		t.Fatalf("verdict %s with %v on %+v", v.Effect, ruleNames(v), e.Profile)
	}
}

func ruleNames(v policy.Verdict) []string {
	var out []string
	for _, f := range v.Fired {
		out = append(out, f.Rule)
	}
	return out
}

func firedRules(t *testing.T, j store.Job) []string {
	t.Helper()
	var decided policy.Outcome
	if ds := stageOf(j, "decide"); ds == nil || json.Unmarshal(ds.Evidence, &decided) != nil {
		t.Fatalf("decide stage: %+v", ds)
	}
	return ruleNames(decided.Verdict)
}

// From a multi-arch index the stage runs the image for the server's
// platform; an index without one is not runnable here.
func TestProfileStageIndex(t *testing.T) {
	profiletest.NeedSandbox(t)
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	hostImg := servertest.Image(t, v1.Platform{OS: "linux", Architecture: runtime.GOARCH},
		map[string][]byte{"app": servertest.GoBinary(t, runtime.GOARCH, "hello")}, []string{"/app"}, nil)
	otherImg := servertest.Image(t, v1.Platform{OS: "linux", Architecture: other},
		map[string][]byte{"app": servertest.GoBinary(t, other, "hello")}, []string{"/app"}, nil)
	up := servertest.StartUpstream(t)
	both := up.Push(t, "apps/multi:1", nil, servertest.Index(t, map[string]v1.Image{"linux/" + runtime.GOARCH: hostImg, "linux/" + other: otherImg}))
	foreign := up.Push(t, "apps/foreign:1", nil, servertest.Index(t, map[string]v1.Image{"linux/" + other: otherImg}))
	hostDigest, _ := hostImg.Digest()
	_, c := startForImport(t, nil)

	for _, tc := range []struct {
		tag, index, status, digest string
	}{
		{"apps/multi:1", both, profile.StatusProfiled, hostDigest.String()},
		{"apps/foreign:1", foreign, profile.StatusNotRunnable, ""},
	} {
		ev := importJSON(t, c, server.ImportRequest{Source: up.Host + "/" + tc.tag, Insecure: true})
		j := waitJob(t, c, ev.Job.ID)
		var pev profile.StageEvidence
		ps := stageOf(j, "profile")
		if j.Digest != tc.index || ps == nil || ps.Status != store.StageDone || json.Unmarshal(ps.Evidence, &pev) != nil ||
			pev.Status != tc.status || pev.Digest != tc.digest {
			t.Fatalf("%s: %+v", tc.tag, ps)
		}
		if tc.status == profile.StatusProfiled && (pev.Platform != "linux/"+runtime.GOARCH || pev.Profile == nil || pev.Profile.Image.Digest != tc.digest ||
			len(pev.Artifacts) != 1 || pev.Profile.Exit.Code != 0) {
			t.Fatalf("%s: evidence %s", tc.tag, ps.Evidence)
		}
		if tc.status == profile.StatusNotRunnable && !strings.Contains(pev.Reason, "no image for linux/"+runtime.GOARCH) {
			t.Fatalf("%s: reason %q", tc.tag, pev.Reason)
		}
	}
}
