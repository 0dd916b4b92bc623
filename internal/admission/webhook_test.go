package admission_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/airlock-dev/airlock/internal/admission"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlite"
)

// Every kind with a pod spec, every container list: one bad image anywhere
// denies and is named; all approved, pinned, private images are allowed.
func TestEveryKindAndField(t *testing.T) {
	e := newEnv(t, nil)
	w := e.webhook(t, opts{})
	good, side := e.ref("team/app:1"), e.ref("team/sidecar:2")
	bad := e.ref("team/new:1") // quarantined
	for _, k := range kindCases {
		t.Run(k.kind, func(t *testing.T) {
			all := spec([]string{good, side}, []string{side}, []string{good})
			mustAllow(t, validate(t, w, request{group: k.group, kind: k.kind, object: k.build(all)}))
			for _, field := range []string{"containers", "initContainers", "ephemeralContainers"} {
				c, i, eph := []string{good, side}, []string{side}, []string{good}
				var name string
				switch field {
				case "containers":
					c[1], name = bad, `containers[1] "c1"`
				case "initContainers":
					i[0], name = bad, `initContainers[0] "i0"`
				case "ephemeralContainers":
					eph[0], name = bad, `ephemeralContainers[0] "e0"`
				}
				r := validate(t, w, request{group: k.group, kind: k.kind, object: k.build(spec(c, i, eph))})
				mustDeny(t, r, name, bad, "is not approved")
				if strings.Count(message(r), "\n") != 1 {
					t.Errorf("%s: want exactly one problem, got:\n%s", field, message(r))
				}
			}
		})
	}
}

// Only the exact private host is the private registry.
func TestLookalikeRegistries(t *testing.T) {
	e := newEnv(t, nil)
	w := e.webhook(t, opts{})
	d := e.approved["team/app:1"]
	for _, img := range []string{
		"registry.local.evil.com/team/app@" + d,
		"registry.localhost/team/app@" + d,
		"registry.local:444/team/app@" + d,
		"registry.local:443/team/app@" + d,
		"evil.com/registry.local/team/app@" + d,
		"docker.io/registry.local/team/app@" + d,
		"registry.local/team/app@" + d + "x",
		"user@registry.local/team/app@" + d,
		"registry.local@evil.com/team/app@" + d,
		"https://registry.local/team/app@" + d,
		"registry.local./team/app@" + d,
		"xregistry.local/team/app@" + d,
		"team/app@" + d,
		" registry.local/team/app@" + d,
		"registry.local/team/app@sha512:" + strings.Repeat("a", 128),
		"registry.local/team/app@sha256:" + strings.Repeat("A", 64),
		"",
	} {
		r := validate(t, w, request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{img}, nil, nil)}})
		if r.Allowed {
			t.Errorf("%q was allowed", img)
		}
	}
	// Host names are case-insensitive; a tag next to the digest is ignored by the runtime.
	for _, img := range []string{"REGISTRY.local/team/app@" + d, "registry.local/team/app:1@" + d, "registry.local/team/app:other@" + d} {
		mustAllow(t, validate(t, w, request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{img}, nil, nil)}}))
	}
	// The repository must hold the digest.
	mustDeny(t, validate(t, w, request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{host + "/team/sidecar@" + d}, nil, nil)}}),
		"not held in repository team/sidecar")
}

// Deny messages name the container, the image, why, and what to deploy.
func TestDenyMessagesSayWhatToUse(t *testing.T) {
	e := newEnv(t, func(c *config.Config) { c.Import.Mappings = []string{"docker.io/library/=library/"} })
	lib := e.push(t, "library/nginx:1.27", true)
	w := e.webhook(t, opts{cfg: admission.Config{Mappings: map[string]string{"docker.io/library/": "library/"}}})
	d := e.approved["team/app:1"]
	for _, c := range []struct{ image, reason, use string }{
		{host + "/team/app:1", "is not pinned by digest", host + "/team/app:1@" + d},
		{host + "/team/app", "is not pinned by digest", host + "/team/app:latest@" + d},
		{"nginx:1.27", "is not from the private registry registry.local (its registry is docker.io)", host + "/library/nginx:1.27@" + lib},
		{"registry.local.evil.com/team/app:1", "is not from the private registry", ""},
		{e.ref("team/new:1"), "is not approved", ""},
		{host + "/team/app:1@" + e.approved["team/sidecar:2"], "not held in repository team/app", host + "/team/app:1@" + d},
	} {
		r := validate(t, w, request{kind: "Pod", name: "web-1", object: &corev1.Pod{Spec: spec([]string{c.image}, nil, nil)}})
		want := []string{`containers[0] "c0"`, `"` + c.image + `"`, c.reason, "Pod prod/web-1"}
		if c.use != "" {
			want = append(want, "use "+c.use)
		}
		mustDeny(t, r, want...)
		if c.use == "" && strings.Contains(message(r), "; use ") {
			t.Errorf("%s: suggests a reference though none is approved: %s", c.image, message(r))
		}
		if r.Result.Code != 403 {
			t.Errorf("status code %d, want 403", r.Result.Code)
		}
	}
}

// The mutating webhook pins private tags to their approved digest in every
// kind; the pinned object then passes validation.
func TestMutationPinsTags(t *testing.T) {
	e := newEnv(t, nil)
	w := e.webhook(t, opts{})
	d, sd := e.approved["team/app:1"], e.approved["team/sidecar:2"]
	for _, k := range kindCases {
		t.Run(k.kind, func(t *testing.T) {
			obj := k.build(spec([]string{host + "/team/app:1", e.ref("team/sidecar:2")}, []string{host + "/team/sidecar:2"}, []string{host + "/team/app"}))
			r := mutate(t, w, request{group: k.group, kind: k.kind, object: obj})
			mustAllow(t, r)
			if r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
				t.Fatalf("no JSONPatch: %+v", r)
			}
			var ops []admission.Patch
			if err := json.Unmarshal(r.Patch, &ops); err != nil {
				t.Fatal(err)
			}
			want := []admission.Patch{
				{Op: "replace", Path: k.prefix + "/containers/0/image", Value: host + "/team/app:1@" + d},
				{Op: "replace", Path: k.prefix + "/initContainers/0/image", Value: host + "/team/sidecar:2@" + sd},
				{Op: "replace", Path: k.prefix + "/ephemeralContainers/0/image", Value: host + "/team/app:latest@" + d},
			}
			if len(ops) != len(want) {
				t.Fatalf("patch %s, want %v", r.Patch, want)
			}
			for i := range want {
				if ops[i] != want[i] {
					t.Errorf("op %d = %+v, want %+v", i, ops[i], want[i])
				}
			}
			patched := applyPatch(t, obj, r.Patch)
			rv := request{group: k.group, kind: k.kind, object: json.RawMessage(patched)}
			mustAllow(t, validate(t, w, rv))
			// Pinned already: nothing more to do.
			if r2 := mutate(t, w, rv); r2.Patch != nil {
				t.Errorf("second mutation patched again: %s", r2.Patch)
			}
		})
	}
	// Tags without an approved digest are left for validation to deny.
	r := mutate(t, w, request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{host + "/team/new:1", host + "/team/none:1", "nginx:1"}, nil, nil)}})
	if r.Patch != nil || !r.Allowed {
		t.Errorf("unapprovable tags were rewritten: %s", r.Patch)
	}
}

// Pods-only mode: templates are validated but never rewritten; Pods are.
func TestPodsOnlyMutation(t *testing.T) {
	e := newEnv(t, nil)
	w := e.webhook(t, opts{cfg: admission.Config{PodsOnly: true}})
	for _, k := range kindCases {
		obj := k.build(spec([]string{host + "/team/app:1"}, nil, nil))
		r := mutate(t, w, request{group: k.group, kind: k.kind, object: obj})
		if k.kind == "Pod" {
			if r.Patch == nil {
				t.Errorf("Pod not pinned in pods-only mode")
			}
			continue
		}
		if r.Patch != nil {
			t.Errorf("%s rewritten in pods-only mode: %s", k.kind, r.Patch)
		}
		mustDeny(t, validate(t, w, request{group: k.group, kind: k.kind, object: obj}), "is not pinned by digest", "use "+host+"/team/app:1@")
	}
}

// Public references map to their approved private copy when asked.
func TestExternalMapping(t *testing.T) {
	e := newEnv(t, nil)
	lib := e.push(t, "docker.io/library/nginx:1.27", true) // import's default private name
	w := e.webhook(t, opts{cfg: admission.Config{MapExternal: true}})
	obj := &corev1.Pod{Spec: spec([]string{"nginx:1.27", "docker.io/library/nginx@" + lib, "ghcr.io/other/tool:1"}, nil, nil)}
	r := mutate(t, w, request{kind: "Pod", object: obj})
	var ops []admission.Patch
	if err := json.Unmarshal(r.Patch, &ops); err != nil {
		t.Fatalf("patch %q: %v", r.Patch, err)
	}
	want := []string{host + "/docker.io/library/nginx:1.27@" + lib, host + "/docker.io/library/nginx@" + lib}
	if len(ops) != 2 || ops[0].Value != want[0] || ops[1].Value != want[1] {
		t.Fatalf("patch %s, want values %q", r.Patch, want)
	}
	patched := applyPatch(t, obj, r.Patch)
	mustDeny(t, validate(t, w, request{kind: "Pod", object: json.RawMessage(patched)}), `containers[2] "c2"`, "ghcr.io/other/tool:1")
	// Without the switch, public references are not rewritten.
	off := e.webhook(t, opts{})
	if r := mutate(t, off, request{kind: "Pod", object: obj}); r.Patch != nil {
		t.Errorf("mapped without mapExternal: %s", r.Patch)
	}
}

// A revocation applies to the very next request, with no refresh or wait.
func TestRevocationTakesEffectAtOnce(t *testing.T) {
	e := newEnv(t, nil)
	w := e.webhook(t, opts{})
	pod := request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{e.ref("team/app:1")}, nil, nil)}}
	mustAllow(t, validate(t, w, pod))
	e.revoke(t, e.approved["team/app:1"])
	mustDeny(t, validate(t, w, pod), "is not approved")
	// The tag no longer pins either.
	if r := mutate(t, w, request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{host + "/team/app:1"}, nil, nil)}}); r.Patch != nil {
		t.Errorf("revoked digest still pinned: %s", r.Patch)
	}
	// An UPDATE that leaves the revoked image as it was (finalizers, labels)
	// is not blocked; one that sets it is.
	mustAllow(t, validate(t, w, request{kind: "Pod", op: admissionv1.Update, object: pod.object, old: pod.object}))
	old := &corev1.Pod{Spec: spec([]string{e.ref("team/sidecar:2")}, nil, nil)}
	mustDeny(t, validate(t, w, request{kind: "Pod", op: admissionv1.Update, object: pod.object, old: old}), "is not approved")
}

// An approval that expired denies, though nothing in the store changed.
func TestExpiredApproval(t *testing.T) {
	e := newEnv(t, nil)
	d := e.push(t, "team/short:1", false)
	if _, err := e.in.Client(e.in.AdminToken).Decide(context.Background(), d, "approve", server.DecisionRequest{Reason: "for a day", Expires: "24h"}); err != nil {
		t.Fatal(err)
	}
	w := e.webhook(t, opts{maxStale: 1000 * time.Hour})
	pod := request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{host + "/team/short:1@" + d}, nil, nil)}}
	mustAllow(t, validate(t, w, pod))
	e.clock.off = 25 * time.Hour
	mustDeny(t, validate(t, w, pod), "the approval of "+d+" expired at")
}

// The attestation must verify with the configured key; an approval without
// one (written to the store behind Airlock's back) does not count.
func TestAttestationMustVerify(t *testing.T) {
	e := newEnv(t, nil)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	w := e.webhook(t, opts{key: other.Public()})
	mustDeny(t, validate(t, w, request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{e.ref("team/app:1")}, nil, nil)}}),
		"does not verify with the configured key")

	d := e.push(t, "team/sneaky:1", false)
	if _, err := e.in.Server.Store.Transition(context.Background(), d, store.Approved, "mallory", "no vetting", nil); err != nil {
		t.Fatal(err)
	}
	good := e.webhook(t, opts{})
	mustDeny(t, validate(t, good, request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{host + "/team/sneaky:1@" + d}, nil, nil)}}),
		"has no approval attestation")
	mustAllow(t, validate(t, good, request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{e.ref("team/app:1")}, nil, nil)}}))
}

// When the store cannot be read and the index is older than its bound,
// every pod is denied; a pod with no images to judge is not affected.
func TestStoreDownDenies(t *testing.T) {
	e := newEnv(t, nil)
	// A second handle on the same database, as a replica or a restarted
	// process would have; closing it makes the store unreachable for the index.
	st, err := sqlite.Open(context.Background(), filepath.Join(e.in.Data, "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	w := e.webhook(t, opts{st: st, maxStale: time.Minute})
	pod := request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{e.ref("team/app:1")}, nil, nil)}}
	mustAllow(t, validate(t, w, pod))
	st.Close()
	if err := w.Index().Refresh(context.Background()); err == nil {
		t.Fatal("refresh of a closed store succeeded")
	}
	// Within the bound the index still answers (a blip does not stop a cluster).
	mustAllow(t, validate(t, w, pod))
	e.clock.off = 2 * time.Minute
	r := validate(t, w, pod)
	mustDeny(t, r, "cannot check images against approvals", "store")
	if r.Result.Code != 503 {
		t.Errorf("code %d, want 503", r.Result.Code)
	}
	// A brand-new webhook on an unreachable store denies from the start.
	fresh := e.webhook(t, opts{st: st})
	mustDeny(t, validate(t, fresh, pod), "cannot check images")
	if r := mutate(t, fresh, request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{host + "/team/app:1"}, nil, nil)}}); !r.Allowed || r.Patch != nil {
		t.Errorf("mutation with the store down: allowed %v patch %s", r.Allowed, r.Patch)
	}
}

// Warn and dry-run modes per namespace admit with warnings or silently;
// exemptions admit and are audited; enforce denies.
func TestModesAndExemptions(t *testing.T) {
	e := newEnv(t, nil)
	w := e.webhook(t, opts{cfg: admission.Config{
		Namespaces: []admission.NamespaceMode{{Glob: "staging-*", Mode: admission.Warn}, {Glob: "canary", Mode: admission.DryRun}},
		Exempt:     []string{"legacy-*"},
	}})
	badPod := &corev1.Pod{Spec: spec([]string{"nginx:1", e.ref("team/app:1")}, nil, nil)}
	goodPod := &corev1.Pod{Spec: spec([]string{e.ref("team/app:1")}, nil, nil)}

	mustDeny(t, validate(t, w, request{kind: "Pod", ns: "prod", object: badPod}), "nginx:1")

	r := validate(t, w, request{kind: "Pod", ns: "staging-eu", object: badPod})
	mustAllow(t, r)
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "warn mode") || !strings.Contains(r.Warnings[0], `"nginx:1"`) {
		t.Errorf("warnings %q", r.Warnings)
	}
	r = validate(t, w, request{kind: "Pod", ns: "canary", object: badPod})
	mustAllow(t, r)
	if len(r.Warnings) != 0 || !strings.Contains(r.AuditAnnotations["would-deny"], "nginx:1") {
		t.Errorf("dry-run: warnings %q, audit annotations %v", r.Warnings, r.AuditAnnotations)
	}

	audited := func() []store.AuditEntry {
		es, err := e.in.Server.Store.AuditEntries(context.Background(), store.AuditFilter{Action: admission.AuditActionExempted})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	mustAllow(t, validate(t, w, request{kind: "Pod", ns: "legacy-billing", name: "old-1", object: goodPod}))
	if n := len(audited()); n != 0 {
		t.Fatalf("a pod that needed no exemption was audited (%d entries)", n)
	}
	r = validate(t, w, request{kind: "Pod", ns: "legacy-billing", name: "old-1", object: badPod})
	mustAllow(t, r)
	if len(r.Warnings) == 0 || !strings.Contains(r.Warnings[0], "exempt") {
		t.Errorf("exemption without a warning: %q", r.Warnings)
	}
	es := audited()
	if len(es) != 1 || es[0].Subject != "legacy-billing/old-1" || es[0].Actor != "airlock admission" ||
		!strings.Contains(string(es[0].Detail), `"nginx:1"`) || !strings.Contains(string(es[0].Detail), `"alice"`) {
		t.Fatalf("audit entries %+v", es)
	}
	// A dry-run request (kubectl --dry-run=server) writes nothing.
	mustAllow(t, validate(t, w, request{kind: "Pod", ns: "legacy-billing", object: badPod, dryRun: true}))
	if n := len(audited()); n != 1 {
		t.Errorf("dry-run request audited: %d entries", n)
	}
	if _, err := e.in.Server.Store.VerifyAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Exempt namespaces are not rewritten either.
	if r := mutate(t, w, request{kind: "Pod", ns: "legacy-billing", object: &corev1.Pod{Spec: spec([]string{host + "/team/app:1"}, nil, nil)}}); r.Patch != nil {
		t.Errorf("exempt namespace mutated: %s", r.Patch)
	}
}

// kubectl debug adds an ephemeral container through the subresource; other
// subresources and operations carry no image to judge.
func TestEphemeralContainersSubresource(t *testing.T) {
	e := newEnv(t, nil)
	w := e.webhook(t, opts{})
	old := &corev1.Pod{Spec: spec([]string{e.ref("team/app:1")}, nil, nil)}
	withDebug := func(img string) *corev1.Pod {
		return &corev1.Pod{Spec: spec([]string{e.ref("team/app:1")}, nil, []string{img})}
	}
	up := func(img string) request {
		return request{kind: "Pod", sub: "ephemeralcontainers", op: admissionv1.Update, object: withDebug(img), old: old}
	}
	mustDeny(t, validate(t, w, up("busybox:1.36")), `ephemeralContainers[0] "e0"`, "busybox:1.36")
	mustAllow(t, validate(t, w, up(e.ref("team/sidecar:2"))))
	r := mutate(t, w, up(host+"/team/sidecar:2"))
	if !strings.Contains(string(r.Patch), `/spec/ephemeralContainers/0/image`) {
		t.Errorf("ephemeral container not pinned: %s", r.Patch)
	}
	mustAllow(t, validate(t, w, request{kind: "Pod", sub: "status", op: admissionv1.Update, object: withDebug("busybox"), old: old}))
	mustAllow(t, validate(t, w, request{kind: "Pod", op: admissionv1.Delete, old: withDebug("busybox")}))
	mustAllow(t, validate(t, w, request{kind: "ConfigMap", object: map[string]any{"data": map[string]string{"image": "busybox"}}}))
}

// An attestation that cannot be read (storage trouble) denies, and is read
// again on the next refresh even though the store did not change.
func TestUnreadableAttestationIsRetried(t *testing.T) {
	e := newEnv(t, nil)
	d := e.approved["team/sidecar:2"]
	atts, err := e.in.Server.Store.Attestations(context.Background(), d)
	if err != nil || len(atts) == 0 {
		t.Fatalf("attestations of %s: %v %v", d, atts, err)
	}
	hex := strings.TrimPrefix(atts[0].Manifest, "sha256:")
	blob := filepath.Join(e.in.Server.Config.Storage.Filesystem.RootDirectory, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
	if err := os.Rename(blob, blob+".away"); err != nil {
		t.Fatal(err)
	}
	w := e.webhook(t, opts{})
	pod := request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{e.ref("team/sidecar:2")}, nil, nil)}}
	mustDeny(t, validate(t, w, pod), "cannot be read from the registry")
	if err := os.Rename(blob+".away", blob); err != nil {
		t.Fatal(err)
	}
	mustDeny(t, validate(t, w, pod), "cannot be read") // nothing refreshed yet
	if err := w.Index().Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustAllow(t, validate(t, w, pod))
}

// Decisions run concurrently with store writes (the index is rebuilt under
// them); once a revocation has returned, no request admits the digest.
func TestConcurrentDecisionsAndRevocation(t *testing.T) {
	e := newEnv(t, nil)
	w := e.webhook(t, opts{})
	pod := request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{e.ref("team/app:1"), e.ref("team/sidecar:2")}, nil, nil)}}
	body := pod.review()
	var revoked atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				after := revoked.Load()
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodPost, admission.ValidatePath, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				w.ServeHTTP(rec, req)
				var rv admissionv1.AdmissionReview
				if err := json.Unmarshal(rec.Body.Bytes(), &rv); err != nil || rv.Response == nil {
					errs <- "bad response: " + rec.Body.String()
					return
				}
				if after && rv.Response.Allowed {
					errs <- "admitted after the revocation returned"
					return
				}
			}
		}()
	}
	for i := 0; i < 3; i++ {
		e.push(t, "team/churn:"+strconv.Itoa(i), true) // writes while deciding
	}
	e.revoke(t, e.approved["team/sidecar:2"])
	revoked.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
