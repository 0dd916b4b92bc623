package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/internal/attest"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// verifyWith runs the verification `airlock verify` runs, as a puller.
func verifyWith(t *testing.T, in *servertest.Instance, token string, ref string, pubPEM []byte) (attest.Verified, error) {
	t.Helper()
	pub, err := attest.ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	c := in.Client(token)
	return attest.VerifyImage(context.Background(), r, attest.VerifyOptions{
		Key: pub, KeyName: "pub.pem", State: c.ApprovalState,
		Remote: []remote.Option{remote.WithAuth(authn.FromConfig(authn.AuthConfig{RegistryToken: token}))},
	})
}

func wantFailure(t *testing.T, what string, err error, words ...string) {
	t.Helper()
	var f *attest.Failure
	if !errors.As(err, &f) {
		t.Fatalf("%s: %v; want a verification failure", what, err)
	}
	for _, w := range words {
		if !strings.Contains(f.Reason, w) {
			t.Errorf("%s: reason %q lacks %q", what, f.Reason, w)
		}
	}
	if strings.Count(strings.TrimSuffix(f.Reason, "."), ". ") > 0 {
		t.Errorf("%s: reason %q is more than one sentence", what, f.Reason)
	}
	t.Logf("%s: %s", what, f.Reason)
}

// envelopeOf reads the approval's DSSE envelope stored under digest's .att tag.
func envelopeOf(t *testing.T, in *servertest.Instance, repo, digest, token string) attest.Envelope {
	t.Helper()
	return envelopesOf(t, in, repo, digest, token)[attest.ApprovalPredicateType]
}

// envelopesOf reads every DSSE envelope stored under digest's .att tag, by
// the predicateType annotation of its layer (each type once).
func envelopesOf(t *testing.T, in *servertest.Instance, repo, digest, token string) map[string]attest.Envelope {
	t.Helper()
	img, err := remote.Image(in.Ref(t, repo+":"+attest.AttTag(digest)), remote.WithAuth(authn.FromConfig(authn.AuthConfig{RegistryToken: token})))
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil || len(m.Layers) == 0 {
		t.Fatalf("attestation manifest: %+v, %v", m, err)
	}
	out := map[string]attest.Envelope{}
	for _, d := range m.Layers {
		if string(d.MediaType) != attest.MediaTypeDSSE {
			t.Fatalf("attestation layer media type %s", d.MediaType)
		}
		typ := d.Annotations[attest.AnnotationPredicateType]
		if _, dup := out[typ]; dup || typ == "" {
			t.Fatalf("attestation layers %+v: predicate type %q missing or twice", m.Layers, typ)
		}
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		var env attest.Envelope
		err = json.NewDecoder(rc).Decode(&env)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[typ] = env
	}
	if _, ok := out[attest.ApprovalPredicateType]; !ok {
		t.Fatalf("no approval among the attestation layers %+v", m.Layers)
	}
	return out
}

// plant stores env as the attestation of subject in repo, the way someone
// with write access to the registry's storage could: the tag moves.
func plant(t *testing.T, in *servertest.Instance, repo, subject string, env attest.Envelope) {
	t.Helper()
	img, err := in.Server.Store.Image(context.Background(), subject)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(env)
	h, _ := v1.NewHash(subject)
	m, err := attest.Manifest(b, attest.ApprovalPredicateType, v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Size: img.Size, Digest: h})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Server.Registry.PutOwnArtifact(context.Background(), repo, attest.AttTag(subject), m, "test plants an attestation"); err != nil {
		t.Fatal(err)
	}
}

// TestDecideSignVerify: import → the decide stage reviews → a human approves →
// the attestation is a referrer and under the .att tag → verify passes; then
// every way it must fail, fails with its reason.
func TestDecideSignVerify(t *testing.T) {
	ctx := context.Background()
	up := servertest.StartUpstream(t)
	bb := servertest.Image(t, v1.Platform{OS: "linux", Architecture: "amd64"},
		map[string][]byte{"bin/busybox": servertest.Busybox(t)}, []string{"/bin/busybox", "sh"}, nil)
	want := up.Push(t, "library/busybox:1.35", bb, nil)

	in, c := startForImport(t, nil)
	admin := in.Client(in.AdminToken)
	approver := in.Client(in.Token(t, "ann", store.RoleApprover))
	pull := in.Token(t, "dev", store.RolePuller)
	ev := importJSON(t, c, server.ImportRequest{Source: up.Host + "/library/busybox:1.35", Insecure: true})
	if ev.Type != "result" || ev.Result.Digest != want {
		t.Fatalf("import: %+v", ev)
	}
	repo := ev.Result.Repository

	// The decide stage ran the strict policy: review (no upstream signature).
	j := waitJob(t, c, ev.Job.ID)
	var out policy.Outcome
	for _, s := range j.Stages {
		if s.Name == "decide" {
			if s.Status != store.StageDone {
				t.Fatalf("decide stage %s", s.Status)
			}
			if err := json.Unmarshal(s.Evidence, &out); err != nil {
				t.Fatal(err)
			}
		}
	}
	if out.Action != "review" || out.Verdict.Effect != policy.Review || out.Verdict.PolicyDigest != in.Server.Decider.Policy.Digest {
		t.Fatalf("decide outcome %+v", out)
	}
	fired := map[string]bool{}
	for _, f := range out.Verdict.Fired {
		fired[f.Rule] = true
	}
	if !fired["no-upstream-signature"] || fired["tag-moved"] {
		t.Errorf("rules fired: %v; want no-upstream-signature", fired)
	}
	// It waits in the queue with the rules that decided it (beside the
	// hardened image the harden stage derived from it, when there is one).
	q, err := approver.Queue(ctx, "")
	found := 0
	for _, e := range q {
		if e.Image.Digest == want {
			found++
			if e.Verdict.Effect != policy.Review || e.Required != 1 {
				t.Fatalf("queue entry: %+v", e)
			}
		} else if ls, _ := in.Server.Store.OriginsOf(ctx, e.Image.Digest); len(ls) != 1 || ls[0].Original != want {
			t.Fatalf("queue holds %s, neither the import nor its hardened image", e.Image.Digest)
		}
	}
	if err != nil || found != 1 {
		t.Fatalf("queue: %+v, %v", q, err)
	}

	// A human approves: the attestation is signed and stored.
	a, err := approver.Approve(ctx, want, server.DecisionRequest{Reason: "reviewed the busybox import", Expires: "30d"})
	if err != nil {
		t.Fatal(err)
	}
	if a.State != store.Approved || len(a.Attestations) != 1 || a.Attestations[0].Tag != attest.AttTag(want) {
		t.Fatalf("approve: %+v", a)
	}
	att := a.Attestations[0]
	// As a referrer of the digest (artifactType dsse) and under the .att tag, to a puller.
	pullAuth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{RegistryToken: pull}))
	idx, err := remote.Referrers(in.Ref(t, repo+"@"+want).(name.Digest), pullAuth)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	// The scan stage's SBOM and report are referrers too.
	var dsse []v1.Descriptor
	kinds := map[string]bool{}
	for _, m := range im.Manifests {
		kinds[m.ArtifactType] = true
		if m.ArtifactType == attest.MediaTypeDSSE {
			dsse = append(dsse, m)
		}
	}
	if len(dsse) != 1 || dsse[0].Digest.String() != att.Manifest || !kinds["application/vnd.cyclonedx+json"] || !kinds["application/vnd.airlock.scan.report.v1+json"] {
		t.Fatalf("referrers: %+v", im.Manifests)
	}
	desc, err := remote.Head(in.Ref(t, repo+":"+attest.AttTag(want)), pullAuth)
	if err != nil || desc.Digest.String() != att.Manifest {
		t.Fatalf(".att tag: %v, %v", desc, err)
	}
	artifact, err := admin.Image(ctx, att.Manifest)
	if err != nil || artifact.State != store.Approved || artifact.History[len(artifact.History)-1].Actor != "airlock" || artifact.Subject != want {
		t.Fatalf("attestation artifact record: %+v, %v", artifact, err)
	}
	// The statement: subject, predicate, policy digest, evidence, approvers.
	env := envelopeOf(t, in, repo, want, pull)
	if env.PayloadType != attest.PayloadTypeInToto {
		t.Fatalf("payloadType %s", env.PayloadType)
	}
	payload, _ := base64.StdEncoding.DecodeString(env.Payload)
	st, err := attest.ParseStatement(payload)
	if err != nil || !st.Covers(want) || st.PredicateType != attest.ApprovalPredicateType {
		t.Fatalf("statement %s: %v", payload, err)
	}
	var pred attest.Approval
	if err := json.Unmarshal(st.Predicate, &pred); err != nil {
		t.Fatal(err)
	}
	if pred.Decision != "approved" || pred.Policy.Digest != in.Server.Decider.Policy.Digest || len(pred.Approvers) != 1 ||
		pred.Approvers[0].Name != "ann" || pred.Expires == nil || pred.Source == nil || len(pred.Evidence) != 5 {
		t.Fatalf("predicate %s", st.Predicate)
	}
	for _, e := range pred.Evidence {
		if (e.Stage == "import" && (e.Status != "done" || e.Digest == "")) || (e.Stage == "scan" && (e.Status != store.StageDone || e.Digest == "")) {
			t.Errorf("evidence %+v", e)
		}
	}

	pubPEM, err := admin.PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ref := in.Host + "/" + repo + "@" + want
	res, err := verifyWith(t, in, pull, ref, pubPEM)
	if err != nil {
		t.Fatalf("verify an approved import: %v", err)
	}
	if res.ServerState != "approved" || res.Approval.Reason == "" {
		t.Errorf("verified %+v", res)
	}
	// By tag too.
	if _, err := verifyWith(t, in, pull, in.Host+"/"+repo+":1.35", pubPEM); err != nil {
		t.Errorf("verify by tag: %v", err)
	}

	// The record tells the whole story, in order.
	rec, err := approver.Record(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Imports) != 1 || len(rec.Jobs) != 1 || rec.Verdict == nil || len(rec.Approvals) != 1 || len(rec.Attestations) != 1 {
		t.Fatalf("record: %+v", rec)
	}
	wantOrder := []string{"image.recorded", "image.imported", "policy.evaluated", "approval.recorded", "state.approved", "attestation.created"}
	var actions []string
	for _, e := range rec.Audit {
		actions = append(actions, e.Action)
	}
	// In order (other entries, such as the job's, may come between).
	next := 0
	for _, act := range actions {
		if next < len(wantOrder) && act == wantOrder[next] {
			next++
		}
	}
	if next != len(wantOrder) {
		t.Errorf("audit %v lacks, in order, %v", actions, wantOrder)
	}

	// Wrong key.
	other, _ := attest.GenerateKey(attest.KeyEd25519)
	otherPEM, _ := attest.MarshalPublicKey(other.Public())
	_, err = verifyWith(t, in, pull, ref, otherPEM)
	wantFailure(t, "wrong key", err, "signed by another key")

	// Tampered: the same signature over an edited statement.
	tampered := env
	edited := strings.Replace(string(payload), "reviewed the busybox import", "reviewed the busybox importX", 1)
	tampered.Payload = base64.StdEncoding.EncodeToString([]byte(edited))
	plant(t, in, repo, want, tampered)
	_, err = verifyWith(t, in, pull, ref, pubPEM)
	wantFailure(t, "tampered", err, "altered after it was signed")
	plant(t, in, repo, want, env) // restore
	if _, err := verifyWith(t, in, pull, ref, pubPEM); err != nil {
		t.Fatalf("verify after restoring: %v", err)
	}

	// Swapped subject: a's valid attestation planted as b's.
	pusher := in.Token(t, "ci", store.RolePusher)
	b := in.PushRandom(t, "team/b:1", "ci", pusher, 512, 1)
	bd, _ := b.Digest()
	if _, err := approver.Approve(ctx, bd.String(), server.DecisionRequest{Reason: "b"}); err != nil {
		t.Fatal(err)
	}
	plant(t, in, "team/b", bd.String(), env)
	_, err = verifyWith(t, in, pull, in.Host+"/team/b@"+bd.String(), pubPEM)
	wantFailure(t, "swapped subject", err, "subject was swapped", want)

	// Expired approval.
	e := in.PushRandom(t, "team/e:1", "ci", pusher, 512, 1)
	ed, _ := e.Digest()
	if _, err := approver.Approve(ctx, ed.String(), server.DecisionRequest{Reason: "short", Expires: "1s"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	_, err = verifyWith(t, in, pull, in.Host+"/team/e@"+ed.String(), pubPEM)
	wantFailure(t, "expired", err, "expired at")

	// Revoked: the attestation stays, the revocation is recorded, verify fails.
	if _, err := admin.Decide(ctx, want, "revoke", server.DecisionRequest{Reason: "CVE-2026-1234"}); err != nil {
		t.Fatal(err)
	}
	_, err = verifyWith(t, in, pull, ref, pubPEM)
	wantFailure(t, "revoked", err, "was revoked", "CVE-2026-1234")
	atts, err := in.Server.Store.Attestations(ctx, want)
	if err != nil || len(atts) != 1 || atts[0].RevokedAt == nil || atts[0].RevokeReason != "CVE-2026-1234" {
		t.Fatalf("attestations after revoke: %+v, %v", atts, err)
	}

	// Interop: real cosign verifies the approval, and refuses a tampered one.
	t.Run("cosign", func(t *testing.T) {
		verify := cosignVerifier(t, in, pull, pubPEM)
		run := func(image string) (string, error) { return verify(attest.ApprovalPredicateType, image) }
		// b is approved; its tag carries a's attestation: give b its own back first.
		c2 := in.PushRandom(t, "team/c:1", "ci", pusher, 512, 1)
		cd, _ := c2.Digest()
		if _, err := approver.Approve(ctx, cd.String(), server.DecisionRequest{Reason: "for cosign"}); err != nil {
			t.Fatal(err)
		}
		image := in.Host + "/team/c@" + cd.String()
		if out, err := run(image); err != nil {
			t.Fatalf("cosign verify-attestation of an approved image: %v\n%s", err, out)
		} else if !cosignVerified(out, cd.String()) {
			t.Errorf("cosign output lacks the verified approval statement:\n%s", out)
		}
		cenv := envelopeOf(t, in, "team/c", cd.String(), pull)
		p, _ := base64.StdEncoding.DecodeString(cenv.Payload)
		cenv.Payload = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(p), "for cosign", "for cosignX", 1)))
		plant(t, in, "team/c", cd.String(), cenv)
		if out, err := run(image); err == nil {
			t.Fatalf("cosign verified a tampered attestation:\n%s", out)
		} else {
			t.Logf("cosign refused the tampered attestation: %s", lastLine(out))
		}
	})
}

// cosignVerifier returns a function that runs real cosign
// verify-attestation --type typ of an image in in's registry, with the
// public key pubPEM and the puller token pull, and returns its output.
func cosignVerifier(t *testing.T, in *servertest.Instance, pull string, pubPEM []byte) func(typ, image string) (string, error) {
	t.Helper()
	cosign := tool(t, "cosign")
	dir := t.TempDir()
	pubFile := filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(pubFile, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{in.Host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("dev:" + pull))}}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return func(typ, image string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, cosign, "verify-attestation", "--key", pubFile, "--type", typ,
			"--insecure-ignore-tlog", "--allow-insecure-registry", "--allow-http-registry", image)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dir, "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"), "SIGSTORE_NO_CACHE=true")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

// cosignVerified finds, in cosign's output, the verified envelope whose
// statement approves digest.
func cosignVerified(out, digest string) bool {
	for _, line := range strings.Split(out, "\n") {
		var env attest.Envelope
		if json.Unmarshal([]byte(line), &env) != nil || env.PayloadType != attest.PayloadTypeInToto {
			continue
		}
		p, _ := base64.StdEncoding.DecodeString(env.Payload)
		if st, err := attest.ParseStatement(p); err == nil && st.PredicateType == attest.ApprovalPredicateType && st.Covers(digest) {
			return true
		}
	}
	return false
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestApprovalsRequired: a repository that needs two distinct approvers is
// approved by the second; racing approvers make exactly one transition, and
// every one of them is audited.
func TestApprovalsRequired(t *testing.T) {
	ctx := context.Background()
	in := servertest.Start(t, func(c *config.Config) { c.Approval.Required = []string{"prod/**=2", "prod/lax=1"} })
	pusher := in.Token(t, "ci", store.RolePusher)
	ann := in.Client(in.Token(t, "ann", store.RoleApprover))
	bob := in.Client(in.Token(t, "bob", store.RoleApprover))
	img := in.PushRandom(t, "prod/api:1", "ci", pusher, 256, 1)
	d, _ := img.Digest()

	a, err := ann.Approve(ctx, d.String(), server.DecisionRequest{Reason: "looked at it"})
	if err != nil || a.State != store.Quarantined || a.Approval == nil || a.Approval.Required != 2 || len(a.Approval.Approvers) != 1 {
		t.Fatalf("first approval: %+v, %v", a, err)
	}
	_, err = ann.Approve(ctx, d.String(), server.DecisionRequest{Reason: "me again"})
	var se *server.StatusError
	if !errors.As(err, &se) || se.Code != "ALREADY_APPROVED" {
		t.Fatalf("same approver twice: %v", err)
	}
	a, err = bob.Approve(ctx, d.String(), server.DecisionRequest{Reason: "agreed"})
	if err != nil || a.State != store.Approved || len(a.Attestations) != 1 {
		t.Fatalf("second approval: %+v, %v", a, err)
	}
	env := envelopeOf(t, in, "prod/api", d.String(), in.AdminToken)
	p, _ := base64.StdEncoding.DecodeString(env.Payload)
	st, _ := attest.ParseStatement(p)
	var pred attest.Approval
	_ = json.Unmarshal(st.Predicate, &pred)
	if len(pred.Approvers) != 2 || pred.Required != 2 {
		t.Errorf("attested approvers %+v (required %d); want ann and bob of 2", pred.Approvers, pred.Required)
	}

	// The race: eight approvers at once on a fresh digest needing two.
	img2 := in.PushRandom(t, "prod/web:1", "ci", pusher, 256, 1)
	d2, _ := img2.Digest()
	var clients []*server.Client
	for _, n := range []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"} {
		clients = append(clients, in.Client(in.Token(t, n, store.RoleApprover)))
	}
	var wg sync.WaitGroup
	results := make(chan error, len(clients))
	approvedBy := make(chan string, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := c.Approve(ctx, d2.String(), server.DecisionRequest{Reason: "race"})
			if err == nil && a.Approval != nil && a.Approval.Approved {
				approvedBy <- clients[i].Token
			}
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	close(approvedBy)
	ok, conflict := 0, 0
	for err := range results {
		switch {
		case err == nil:
			ok++
		case errors.As(err, &se) && se.Code == "INVALID_TRANSITION":
			conflict++
		default:
			t.Errorf("racing approval: %v", err)
		}
	}
	if ok != 2 || conflict != 6 || len(approvedBy) != 1 {
		t.Errorf("race: %d recorded, %d refused, %d transitions; want 2, 6, 1", ok, conflict, len(approvedBy))
	}
	rec, err := in.Client(in.AdminToken).Record(ctx, d2.String())
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range rec.Audit {
		counts[e.Action]++
	}
	if counts["state.approved"] != 1 || counts["approval.recorded"] != 2 || counts["approval.refused"] != 6 || counts["attestation.created"] != 1 {
		t.Errorf("audit of the race: %v", counts)
	}
	// A more specific glob listed first would win; here prod/** comes first for prod/lax too.
	img3 := in.PushRandom(t, "prod/lax:1", "ci", pusher, 256, 1)
	d3, _ := img3.Digest()
	if a, err := ann.Approve(ctx, d3.String(), server.DecisionRequest{Reason: "x"}); err != nil || a.State != store.Quarantined {
		t.Errorf("prod/lax (first match prod/**=2): %+v, %v", a.State, err)
	}
}

// TestPolicyDenyRejects: a deny verdict in the decide stage rejects the digest
// as airlock with the rule's message; a human cannot approve past it.
func TestPolicyDenyRejects(t *testing.T) {
	ctx := context.Background()
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte(`apiVersion: airlock.dev/policy/v1
name: no-busybox
default: review
rules:
  - name: no-busybox
    effect: deny
    when: source.normalized.contains("/library/busybox")
    message: busybox is not allowed here
`), 0o644); err != nil {
		t.Fatal(err)
	}
	up := servertest.StartUpstream(t)
	bb := servertest.Image(t, v1.Platform{OS: "linux", Architecture: "amd64"},
		map[string][]byte{"bin/busybox": servertest.Busybox(t)}, []string{"/bin/busybox", "sh"}, nil)
	want := up.Push(t, "library/busybox:1.35", bb, nil)
	in, c := startForImport(t, func(c *config.Config) { c.Policy.File = pol })
	ev := importJSON(t, c, server.ImportRequest{Source: up.Host + "/library/busybox:1.35", Insecure: true})
	if ev.Type != "result" {
		t.Fatalf("import: %+v", ev)
	}
	waitJob(t, c, ev.Job.ID)
	img, err := in.Client(in.AdminToken).Image(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	last := img.History[len(img.History)-1]
	if img.State != store.Rejected || last.Actor != "airlock" || !strings.Contains(last.Reason, "busybox is not allowed here") ||
		!strings.Contains(last.Reason, "rule no-busybox") {
		t.Fatalf("state %s, last transition %+v; want rejected by airlock with the rule's message", img.State, last)
	}
	// Back to quarantine, a human still cannot approve what the policy denies.
	admin := in.Client(in.AdminToken)
	if _, err := admin.Decide(ctx, want, "reject", server.DecisionRequest{Reason: "x"}); err == nil {
		t.Fatal("rejected twice")
	}
	if _, err := in.Server.Store.Transition(ctx, want, store.Quarantined, "admin", "re-vet", nil); err != nil {
		t.Fatal(err)
	}
	_, err = admin.Approve(ctx, want, server.DecisionRequest{Reason: "please"})
	var se *server.StatusError
	if !errors.As(err, &se) || se.Code != "POLICY_DENIED" || !strings.Contains(se.Message, "busybox is not allowed here") {
		t.Fatalf("approving a denied digest: %v", err)
	}
}

// TestIndexAttestationEd25519: a multi-arch index approved with an Ed25519
// key from signing.keyFile: the statement names the index and every child,
// each child verifies (approved through its index), and cosign verifies too.
func TestIndexAttestationEd25519(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	k, _ := attest.GenerateKey(attest.KeyEd25519)
	priv, pubFile, err := attest.WriteKeyPair(filepath.Join(dir, "keys"), k)
	if err != nil {
		t.Fatal(err)
	}
	up := servertest.StartUpstream(t)
	amd := servertest.Image(t, v1.Platform{OS: "linux", Architecture: "amd64"}, map[string][]byte{"a": []byte("amd64")}, []string{"/a"}, nil)
	arm := servertest.Image(t, v1.Platform{OS: "linux", Architecture: "arm64"}, map[string][]byte{"a": []byte("arm64")}, []string{"/a"}, nil)
	want := up.Push(t, "org/multi:1", nil, servertest.Index(t, map[string]v1.Image{"linux/amd64": amd, "linux/arm64": arm}))
	in, c := startForImport(t, func(c *config.Config) { c.Signing.KeyFile = priv })
	if in.Server.Decider.KeyCreated != "" {
		t.Error("a configured key file must be used, not a new key made")
	}
	ev := importJSON(t, c, server.ImportRequest{Source: up.Host + "/org/multi:1", Insecure: true})
	if ev.Type != "result" || ev.Result.Digest != want {
		t.Fatalf("import: %+v", ev)
	}
	waitJob(t, c, ev.Job.ID)
	a, err := in.Client(in.AdminToken).Approve(ctx, want, server.DecisionRequest{Reason: "multi-arch"})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Attestations) != 3 {
		t.Fatalf("attestations %+v; want the index and both children", a.Attestations)
	}
	pull := in.Token(t, "dev", store.RolePuller)
	pubPEM, _ := os.ReadFile(pubFile)
	served, _ := in.Client(pull).PublicKey(ctx)
	if string(served) != string(pubPEM) {
		t.Fatal("keys/public does not serve the configured key")
	}
	repo := ev.Result.Repository
	for _, d := range append([]string{want}, childDigests(t, in, want)...) {
		res, err := verifyWith(t, in, pull, in.Host+"/"+repo+"@"+d, pubPEM)
		if err != nil {
			t.Fatalf("verify %s: %v", d, err)
		}
		if len(res.Statement.Subject) != 3 {
			t.Errorf("statement subjects %+v; want 3", res.Statement.Subject)
		}
	}
	t.Run("cosign", func(t *testing.T) {
		cosign := tool(t, "cosign")
		cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{in.Host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("dev:" + pull))}}})
		if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, cosign, "verify-attestation", "--key", pubFile, "--type", attest.ApprovalPredicateType,
			"--insecure-ignore-tlog", "--allow-insecure-registry", "--allow-http-registry", in.Host+"/"+repo+"@"+want)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dir, "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"))
		out, err := cmd.CombinedOutput()
		if err != nil || !cosignVerified(string(out), want) {
			t.Fatalf("cosign verify-attestation with an Ed25519 key: %v\n%s", err, out)
		}
	})
}

func childDigests(t *testing.T, in *servertest.Instance, index string) []string {
	t.Helper()
	img, err := in.Server.Store.Image(context.Background(), index)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range img.Children {
		out = append(out, c.Digest)
	}
	if len(out) != 2 {
		t.Fatalf("children %v", out)
	}
	return out
}

// TestScanAttestations: approving a scanned image also signs its CycloneDX
// SBOM and its vulnerability result (cosign's vuln predicate), stored with
// the approval under the .att tag; a repository that receives the approved
// digest later gets the attestations too; real cosign verifies each type.
func TestScanAttestations(t *testing.T) {
	ctx := context.Background()
	up := servertest.StartUpstream(t)
	want := pythonApp(t, up, "team/py:1")
	in, c := startForImport(t, nil)
	snap := importAdvisories(t, in, "osv", "pypi", "requests")
	ev := importJSON(t, c, server.ImportRequest{Source: up.Host + "/team/py:1", Insecure: true})
	if ev.Type != "result" || ev.Result.Digest != want {
		t.Fatalf("import: %+v", ev)
	}
	waitJob(t, c, ev.Job.ID)
	repo := ev.Result.Repository
	admin := in.Client(in.AdminToken)
	a, err := in.Client(in.Token(t, "ann", store.RoleApprover)).Approve(ctx, want, server.DecisionRequest{Reason: "medium finding accepted"})
	if err != nil || a.State != store.Approved {
		t.Fatalf("approve: %+v, %v", a, err)
	}
	pull := in.Token(t, "dev", store.RolePuller)
	pubPEM, _ := admin.PublicKey(ctx)
	pub, err := attest.ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	envs := envelopesOf(t, in, repo, want, pull)
	if len(envs) != 3 {
		t.Fatalf("attestation layers %v; want approval, cyclonedx and vuln", keys(envs))
	}
	statement := func(typ string) attest.Statement {
		t.Helper()
		env, ok := envs[typ]
		if !ok {
			t.Fatalf("no %s attestation", typ)
		}
		p, err := attest.Verify(pub, env)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		st, err := attest.ParseStatement(p)
		if err != nil || st.PredicateType != typ || !st.Covers(want) {
			t.Fatalf("%s statement: %s, %v", typ, p, err)
		}
		return st
	}
	var bom struct {
		BOMFormat  string `json:"bomFormat"`
		Components []struct {
			Name, Version, Purl string
		} `json:"components"`
	}
	if err := json.Unmarshal(statement(attest.CycloneDXPredicateType).Predicate, &bom); err != nil {
		t.Fatal(err)
	}
	hasRequests := false
	for _, comp := range bom.Components {
		hasRequests = hasRequests || (comp.Name == "requests" && comp.Version == "2.30.0")
	}
	if bom.BOMFormat != "CycloneDX" || !hasRequests {
		t.Fatalf("SBOM predicate: %+v", bom)
	}
	var vuln attest.Vuln
	if err := json.Unmarshal(statement(attest.VulnPredicateType).Predicate, &vuln); err != nil {
		t.Fatal(err)
	}
	var res attest.VulnResult
	if err := json.Unmarshal(vuln.Scanner.Result, &res); err != nil {
		t.Fatal(err)
	}
	if vuln.Scanner.DB.Version != snap || res.Snapshot != snap || res.Image != want || len(res.Vulnerabilities) != 1 ||
		res.Vulnerabilities[0]["id"] != "PYSEC-2023-74" || vuln.Metadata.ScanFinishedOn.IsZero() {
		t.Fatalf("vuln predicate %+v, result %+v", vuln, res)
	}
	statement(attest.ApprovalPredicateType)
	if _, err := verifyWith(t, in, pull, in.Host+"/"+repo+"@"+want, pubPEM); err != nil {
		t.Fatalf("airlock verify beside the scan attestations: %v", err)
	}

	// The approved digest arrives in another repository: it gets the attestations too.
	pusher := in.Token(t, "ci", store.RolePusher)
	src, err := remote.Image(in.Ref(t, repo+"@"+want), servertest.Auth("dev", pull))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(in.Ref(t, "mirror/py:1"), src, servertest.Auth("ci", pusher)); err != nil {
		t.Fatal(err)
	}
	if err := in.Server.Decider.SyncAttestations(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyWith(t, in, pull, in.Host+"/mirror/py@"+want, pubPEM); err != nil {
		t.Fatalf("verify in the repository that received the digest later: %v", err)
	}
	if got := envelopesOf(t, in, "mirror/py", want, pull); len(got) != 3 {
		t.Fatalf("copied attestation layers %v", keys(got))
	}
	atts, _ := in.Server.Store.Attestations(ctx, want)
	repos := map[string]bool{}
	for _, a := range atts {
		repos[a.Repository] = true
	}
	if len(atts) != 2 || !repos["mirror/py"] || !repos[repo] {
		t.Fatalf("attestation records %+v", atts)
	}
	if err := in.Server.Decider.SyncAttestations(ctx); err != nil {
		t.Fatal(err)
	}
	if atts, _ := in.Server.Store.Attestations(ctx, want); len(atts) != 2 {
		t.Fatalf("a second sync copied again: %d records", len(atts))
	}

	t.Run("cosign", func(t *testing.T) {
		verify := cosignVerifier(t, in, pull, pubPEM)
		for _, tc := range []struct{ flag, predicate, repo string }{
			{"cyclonedx", attest.CycloneDXPredicateType, repo},
			{"vuln", attest.VulnPredicateType, repo},
			{attest.ApprovalPredicateType, attest.ApprovalPredicateType, repo},
			{"cyclonedx", attest.CycloneDXPredicateType, "mirror/py"},
		} {
			out, err := verify(tc.flag, in.Host+"/"+tc.repo+"@"+want)
			if err != nil || !cosignVerifiedType(out, tc.predicate, want) {
				t.Fatalf("cosign verify-attestation --type %s in %s: %v\n%s", tc.flag, tc.repo, err, out)
			}
		}
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// cosignVerifiedType finds, in cosign's output, a verified envelope of
// predicate type typ about digest.
func cosignVerifiedType(out, typ, digest string) bool {
	for _, line := range strings.Split(out, "\n") {
		var env attest.Envelope
		if json.Unmarshal([]byte(line), &env) != nil || env.PayloadType != attest.PayloadTypeInToto {
			continue
		}
		p, _ := base64.StdEncoding.DecodeString(env.Payload)
		if st, err := attest.ParseStatement(p); err == nil && st.PredicateType == typ && st.Covers(digest) {
			return true
		}
	}
	return false
}
