package admission_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/airlock-dev/airlock/internal/admission"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// host is the private registry as pods in these tests name it; the
// repositories behind it are those of a real server on 127.0.0.1.
const host = "registry.local"

// env is a real airlock server with approved images, and a webhook on it.
type env struct {
	in       *servertest.Instance
	pusher   string
	approved map[string]string // repo:tag → approved digest
	pending  map[string]string // repo:tag → quarantined digest
	clock    *clock
}

type clock struct{ off time.Duration }

func (c *clock) now() time.Time { return time.Now().Add(c.off) }

// newEnv starts a server holding team/app:1 and team/app:latest (approved),
// team/sidecar:2 (approved) and team/new:1 (quarantined).
func newEnv(t testing.TB, mutate func(*config.Config)) *env {
	t.Helper()
	e := &env{in: servertest.Start(t, mutate), approved: map[string]string{}, pending: map[string]string{}, clock: &clock{}}
	e.pusher = e.in.Token(t, "ci", store.RolePusher)
	for _, rt := range []string{"team/app:1", "team/sidecar:2"} {
		e.approved[rt] = e.push(t, rt, true)
	}
	// team/app:latest names the same approved digest as team/app:1.
	img, err := remote.Image(e.in.Ref(t, "team/app@"+e.approved["team/app:1"]), servertest.Auth("admin", e.in.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(e.in.Ref(t, "team/app:latest"), img, servertest.Auth("ci", e.pusher)); err != nil {
		t.Fatal(err)
	}
	e.approved["team/app:latest"] = e.approved["team/app:1"]
	e.pending["team/new:1"] = e.push(t, "team/new:1", false)
	return e
}

func (e *env) push(t testing.TB, repoTag string, approve bool) string {
	t.Helper()
	img := e.in.PushRandom(t, repoTag, "ci", e.pusher, 256, 1)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if approve {
		e.in.Approve(t, d.String())
	}
	return d.String()
}

func (e *env) revoke(t *testing.T, digest string) {
	t.Helper()
	if _, err := e.in.Client(e.in.AdminToken).Decide(context.Background(), digest, "revoke", server.DecisionRequest{Reason: "test revocation"}); err != nil {
		t.Fatal(err)
	}
}

// ref is host/repo:tag@digest of an approved or pending image.
func (e *env) ref(repoTag string) string {
	d := e.approved[repoTag]
	if d == "" {
		d = e.pending[repoTag]
	}
	return host + "/" + repoTag + "@" + d
}

type opts struct {
	cfg      admission.Config
	key      crypto.PublicKey
	st       store.Store
	maxStale time.Duration
}

// webhook builds a webhook on the env's server, as `airlock serve` does.
func (e *env) webhook(t testing.TB, o opts) *admission.Webhook {
	t.Helper()
	srv := e.in.Server
	if o.key == nil {
		o.key = srv.Decider.Signer.Public()
	}
	if o.st == nil {
		o.st = srv.Store
	}
	idx, err := admission.NewIndex(admission.IndexOptions{
		Store: o.st, Key: o.key, ReadManifest: srv.Registry.Image, ResolveTag: srv.Registry.ResolveTag,
		Now: e.clock.now, MaxStale: o.maxStale,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.cfg.RegistryHosts) == 0 {
		o.cfg.RegistryHosts = []string{host}
	}
	w, err := admission.New(o.cfg, idx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// request describes one admission request.
type request struct {
	group, kind, sub string
	op               admissionv1.Operation
	ns, name         string
	object, old      any
	dryRun           bool
}

func (r request) review() []byte {
	raw := func(v any) runtime.RawExtension {
		if v == nil {
			return runtime.RawExtension{}
		}
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		return runtime.RawExtension{Raw: b}
	}
	if r.op == "" {
		r.op = admissionv1.Create
	}
	if r.ns == "" {
		r.ns = "prod"
	}
	if r.name == "" {
		r.name = "x"
	}
	version := "v1"
	dry := r.dryRun
	rv := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:         "3f1c0d9e-uid",
			Kind:        metav1.GroupVersionKind{Group: r.group, Version: version, Kind: r.kind},
			SubResource: r.sub, Operation: r.op, Namespace: r.ns, Name: r.name,
			Object: raw(r.object), OldObject: raw(r.old), DryRun: &dry,
		},
	}
	rv.Request.UserInfo.Username = "alice"
	b, err := json.Marshal(rv)
	if err != nil {
		panic(err)
	}
	return b
}

// post sends body to the webhook's path and returns the response.
func post(t *testing.T, w http.Handler, path string, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body)
	}
	var rv admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &rv); err != nil {
		t.Fatal(err)
	}
	if rv.Response == nil || rv.Response.UID != "3f1c0d9e-uid" || rv.APIVersion != "admission.k8s.io/v1" || rv.Kind != "AdmissionReview" {
		t.Fatalf("response is not an AdmissionReview answering the request: %s", rec.Body)
	}
	return rv.Response
}

func validate(t *testing.T, w http.Handler, r request) *admissionv1.AdmissionResponse {
	t.Helper()
	return post(t, w, admission.ValidatePath, r.review())
}

func mutate(t *testing.T, w http.Handler, r request) *admissionv1.AdmissionResponse {
	t.Helper()
	return post(t, w, admission.MutatePath, r.review())
}

func message(r *admissionv1.AdmissionResponse) string {
	if r.Result == nil {
		return ""
	}
	return r.Result.Message
}

func mustAllow(t *testing.T, r *admissionv1.AdmissionResponse) {
	t.Helper()
	if !r.Allowed {
		t.Fatalf("denied, want allowed: %s", message(r))
	}
}

func mustDeny(t *testing.T, r *admissionv1.AdmissionResponse, want ...string) {
	t.Helper()
	if r.Allowed {
		t.Fatalf("allowed, want denied (warnings %q)", r.Warnings)
	}
	for _, w := range want {
		if !strings.Contains(message(r), w) {
			t.Errorf("deny message lacks %q:\n%s", w, message(r))
		}
	}
}

// spec is a pod spec with the given images in containers, initContainers
// and ephemeralContainers (named c0.., i0.., e0..).
func spec(containers, inits, ephemeral []string) corev1.PodSpec {
	var s corev1.PodSpec
	for i, im := range containers {
		s.Containers = append(s.Containers, corev1.Container{Name: "c" + strconv.Itoa(i), Image: im})
	}
	for i, im := range inits {
		s.InitContainers = append(s.InitContainers, corev1.Container{Name: "i" + strconv.Itoa(i), Image: im})
	}
	for i, im := range ephemeral {
		s.EphemeralContainers = append(s.EphemeralContainers, corev1.EphemeralContainer{
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "e" + strconv.Itoa(i), Image: im}})
	}
	return s
}

// kindCase builds an object of one kind around a pod spec, and says where
// the pod spec is in it.
type kindCase struct {
	group, kind string
	prefix      string
	build       func(corev1.PodSpec) any
}

func tmpl(s corev1.PodSpec) corev1.PodTemplateSpec { return corev1.PodTemplateSpec{Spec: s} }

var kindCases = []kindCase{
	{"", "Pod", "/spec", func(s corev1.PodSpec) any { return &corev1.Pod{Spec: s} }},
	{"apps", "Deployment", "/spec/template/spec", func(s corev1.PodSpec) any {
		return &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: tmpl(s)}}
	}},
	{"apps", "StatefulSet", "/spec/template/spec", func(s corev1.PodSpec) any {
		return &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Template: tmpl(s)}}
	}},
	{"apps", "DaemonSet", "/spec/template/spec", func(s corev1.PodSpec) any {
		return &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: tmpl(s)}}
	}},
	{"apps", "ReplicaSet", "/spec/template/spec", func(s corev1.PodSpec) any {
		return &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Template: tmpl(s)}}
	}},
	{"", "ReplicationController", "/spec/template/spec", func(s corev1.PodSpec) any {
		t := tmpl(s)
		return &corev1.ReplicationController{Spec: corev1.ReplicationControllerSpec{Template: &t}}
	}},
	{"batch", "Job", "/spec/template/spec", func(s corev1.PodSpec) any {
		return &batchv1.Job{Spec: batchv1.JobSpec{Template: tmpl(s)}}
	}},
	{"batch", "CronJob", "/spec/jobTemplate/spec/template/spec", func(s corev1.PodSpec) any {
		return &batchv1.CronJob{Spec: batchv1.CronJobSpec{Schedule: "* * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl(s)}}}}
	}},
}

// applyPatch applies a JSONPatch of "replace" operations on string values
// (all the webhook makes) to a JSON document.
func applyPatch(t *testing.T, doc any, patch []byte) []byte {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var root any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	var ops []struct{ Op, Path, Value string }
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if op.Op != "replace" {
			t.Fatalf("unexpected patch op %q", op.Op)
		}
		parts := strings.Split(strings.TrimPrefix(op.Path, "/"), "/")
		cur := root
		for i, p := range parts {
			last := i == len(parts)-1
			switch c := cur.(type) {
			case map[string]any:
				if _, ok := c[p]; !ok {
					t.Fatalf("patch path %s: no %q", op.Path, p)
				}
				if last {
					c[p] = op.Value
				} else {
					cur = c[p]
				}
			case []any:
				n, err := strconv.Atoi(p)
				if err != nil || n >= len(c) {
					t.Fatalf("patch path %s: bad index %q", op.Path, p)
				}
				if last {
					c[n] = op.Value
				} else {
					cur = c[n]
				}
			default:
				t.Fatalf("patch path %s walks into a %T", op.Path, cur)
			}
		}
	}
	out, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
