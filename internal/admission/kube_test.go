package admission_test

// Tests against a real control plane: kube-apiserver and etcd (built by
// .ci/kube.sh) call `airlock serve`'s webhook over TLS the way a cluster
// does, for Pods, workload templates and the pods/ephemeralcontainers
// subresource; then the ValidatingAdmissionPolicy alone, and the webhook
// down.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/airlock-dev/airlock/internal/admission"
	"github.com/airlock-dev/airlock/internal/admission/kubetest"
	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// kubeRegistry is the private registry as the pods of these tests name it;
// `airlock serve --registry-host` makes it the server's own name.
const kubeRegistry = "registry.airlock.invalid"

// kubeCluster is a control plane with airlock's admission configuration
// registered, and an `airlock serve` process holding real images.
type kubeCluster struct {
	cp        *kubetest.ControlPlane
	airlock   *servertest.Process
	api       *server.Client
	admission kubetest.Admission
	ns        string
	// approved and pending map repo:tag to the digest pushed there.
	approved, pending map[string]string
}

func TestKubeAPIServer(t *testing.T) {
	start := time.Now()
	cp := kubetest.Start(t)
	t.Logf("control plane up after %s", time.Since(start).Round(time.Millisecond))
	bin := servertest.Binary(t)
	t.Logf("airlock built after %s", time.Since(start).Round(time.Millisecond))
	data := t.TempDir()
	webhookAddr := kubeFreeAddr(t)
	// No --tls-cert: the server generates its webhook certificate into the
	// data directory on first start, and its CA is the caBundle, as in the docs.
	p := servertest.StartProcess(t, bin, data, "", "--registry-host", kubeRegistry, "--webhook-addr", webhookAddr,
		"--admission-namespaces", "canary=warn", "--admission-exempt", "tools")
	ca, err := os.ReadFile(filepath.Join(data, admission.CAFile))
	if err != nil {
		t.Fatalf("the webhook's generated CA bundle: %v", err)
	}
	c := &kubeCluster{cp: cp, airlock: p, api: server.NewClient(p.URL, p.AdminToken), ns: "shop",
		approved: map[string]string{}, pending: map[string]string{}}
	for _, rt := range []string{"team/app:1", "team/sidecar:2", "team/debug:1", "team/revoked:1"} {
		c.approved[rt] = c.push(t, rt, true)
	}
	c.pending["team/new:1"] = c.push(t, "team/new:1", false)

	c.admission = kubeManifests(t, "https://"+webhookAddr, ca)
	// The webhooks first: the policy, a validating plugin that runs before
	// them, would answer many denials in their place. testPolicyAlone adds it.
	cp.Install(t, kubetest.Admission{Validating: c.admission.Validating, Mutating: c.admission.Mutating})
	for _, ns := range []string{c.ns, "canary", "tools"} {
		c.createNamespace(t, ns)
	}
	c.waitWebhooks(t)
	t.Logf("images pushed and webhooks called after %s", time.Since(start).Round(time.Millisecond))

	// Order matters: the last subtests stop the webhook.
	t.Run("Pods", c.testPods)
	t.Run("Mutation", c.testMutation)
	t.Run("Workloads", c.testWorkloads)
	t.Run("EphemeralContainers", c.testEphemeral)
	t.Run("NamespaceModes", c.testNamespaceModes)
	t.Run("Revocation", c.testRevocation)
	t.Run("WebhookDown", c.testWebhookDown)
	t.Run("PolicyAlone", c.testPolicyAlone)
}

// push builds a real image (Debian's busybox plus a file naming repoTag, so
// that every image has its own digest), pushes it to the server as admin and
// approves it when approve is set.
func (c *kubeCluster) push(t *testing.T, repoTag string, approve bool) string {
	t.Helper()
	img := sandboxtest.Image(t, v1.Config{Entrypoint: []string{"/bin/sh"}},
		sandboxtest.Layer(t, map[string]sandboxtest.File{
			"bin/":           {Dir: true},
			"bin/busybox":    {Data: sandboxtest.Busybox(t)},
			"bin/sh":         {Symlink: "busybox"},
			"etc/":           {Dir: true},
			"etc/image-name": {Data: []byte(repoTag + "\n"), Mode: 0o644},
		}))
	ref, err := name.ParseReference(c.airlock.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, servertest.Auth("admin", c.airlock.AdminToken)); err != nil {
		t.Fatalf("push %s: %v", repoTag, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if approve {
		if _, err := c.api.Decide(context.Background(), d.String(), "approve", server.DecisionRequest{Reason: "kube test"}); err != nil {
			t.Fatalf("approve %s: %v", repoTag, err)
		}
	}
	return d.String()
}

// pinned is the private reference of repo:tag by its digest.
func (c *kubeCluster) pinned(repoTag string) string {
	d, ok := c.approved[repoTag]
	if !ok {
		d = c.pending[repoTag]
	}
	repo, _, _ := strings.Cut(repoTag, ":")
	return kubeRegistry + "/" + repo + "@" + d
}

func (c *kubeCluster) createNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.cp.Client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitWebhooks waits until the API server calls the new webhooks: a pod by a
// public tag is denied by airlock, not admitted.
func (c *kubeCluster) waitWebhooks(t *testing.T) {
	t.Helper()
	probe := kubetest.Pod(c.ns, "probe", kubetest.PodSpec(kubetest.Container("app", "docker.io/library/busybox:1.36")))
	kubetest.Eventually(t, "the API server calls airlock's webhooks", func(ctx context.Context) error {
		_, err := c.cp.Client.CoreV1().Pods(c.ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			return kubetest.ErrNotYet
		}
		if !strings.Contains(err.Error(), admission.ValidatingName) && !strings.Contains(err.Error(), admission.MutatingName) {
			return fmt.Errorf("denied, but not by airlock: %w", err)
		}
		return nil
	})
}

// kubeDenied checks that err is the webhook's denial naming each of words.
func kubeDenied(t *testing.T, what string, err error, words ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: admitted, want denied", what)
		return
	}
	msg := err.Error()
	t.Logf("%s: %s", what, msg)
	for _, w := range words {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: denial %q does not name %q", what, msg, w)
		}
	}
}

func (c *kubeCluster) testPods(t *testing.T) {
	ctx := context.Background()
	pods := c.cp.Client.CoreV1().Pods(c.ns)
	good := kubetest.PodSpec(kubetest.Container("app", c.pinned("team/app:1")), kubetest.Container("sidecar", c.pinned("team/sidecar:2")))
	good.InitContainers = []corev1.Container{kubetest.Container("init", c.pinned("team/sidecar:2"))}
	got, err := pods.Create(ctx, kubetest.Pod(c.ns, "approved", good), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("pod of approved, pinned images: %v", err)
	}
	if got.Spec.Containers[0].Image != c.pinned("team/app:1") {
		t.Errorf("stored image %s, want %s unchanged", got.Spec.Containers[0].Image, c.pinned("team/app:1"))
	}

	approvedDigest := c.approved["team/app:1"]
	for _, tc := range []struct {
		name, container, image string
		init                   bool
		words                  []string
	}{
		{name: "unapproved", container: "app", image: c.pinned("team/new:1"), words: []string{c.pending["team/new:1"], "not approved"}},
		{name: "public-by-tag", container: "app", image: "docker.io/library/busybox:1.36"},
		{name: "public-by-digest", container: "app", image: "docker.io/library/busybox@" + approvedDigest},
		// Lookalikes of the private registry name the approved digest: only the host is wrong.
		{name: "lookalike-suffix", container: "app", image: kubeRegistry + ".evil.invalid/team/app@" + approvedDigest, words: []string{"not from the private registry"}},
		{name: "lookalike-prefix", container: "app", image: "evil-" + kubeRegistry + "/team/app@" + approvedDigest},
		{name: "lookalike-port", container: "app", image: kubeRegistry + ":5000/team/app@" + approvedDigest, words: []string{"not from the private registry"}},
		{name: "lookalike-userinfo-like-path", container: "app", image: "evil.invalid/" + kubeRegistry + "/team/app@" + approvedDigest},
		{name: "approved-digest-other-repository", container: "app", image: kubeRegistry + "/team/other@" + approvedDigest},
		{name: "private-tag-not-approved", container: "app", image: kubeRegistry + "/team/new:1"},
		{name: "init-container", container: "setup", image: c.pinned("team/new:1"), init: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := kubetest.PodSpec(kubetest.Container("ok", c.pinned("team/sidecar:2")))
			if tc.init {
				spec.InitContainers = []corev1.Container{kubetest.Container(tc.container, tc.image)}
			} else {
				spec.Containers = append(spec.Containers, kubetest.Container(tc.container, tc.image))
			}
			_, err := pods.Create(ctx, kubetest.Pod(c.ns, tc.name, spec), metav1.CreateOptions{})
			kubeDenied(t, tc.image, err, append([]string{admission.ValidatingName, tc.container, tc.image}, tc.words...)...)
			if _, gerr := pods.Get(ctx, tc.name, metav1.GetOptions{}); gerr == nil {
				t.Errorf("pod %s was stored", tc.name)
			}
		})
	}
}

// testMutation: a private tag whose digest is approved is pinned by the
// mutating webhook, and the stored object shows it.
func (c *kubeCluster) testMutation(t *testing.T) {
	ctx := context.Background()
	pods := c.cp.Client.CoreV1().Pods(c.ns)
	tagged := kubeRegistry + "/team/app:1"
	want := kubeRegistry + "/team/app:1@" + c.approved["team/app:1"]
	if _, err := pods.Create(ctx, kubetest.Pod(c.ns, "by-tag", kubetest.PodSpec(kubetest.Container("app", tagged))), metav1.CreateOptions{}); err != nil {
		t.Fatalf("pod by an approved private tag: %v", err)
	}
	got, err := pods.Get(ctx, "by-tag", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := got.Spec.Containers[0].Image; img != want {
		t.Errorf("stored image %s, want %s", img, want)
	}
}

func (c *kubeCluster) testWorkloads(t *testing.T) {
	ctx := context.Background()
	deployments := c.cp.Client.AppsV1().Deployments(c.ns)
	cronJobs := c.cp.Client.BatchV1().CronJobs(c.ns)
	bad := c.pinned("team/new:1")

	_, err := deployments.Create(ctx, kubetest.Deployment(c.ns, "bad", kubetest.PodSpec(
		kubetest.Container("app", c.pinned("team/app:1")), kubetest.Container("worker", bad))), metav1.CreateOptions{})
	kubeDenied(t, "deployment with an unapproved image", err, admission.ValidatingName, "worker", bad)
	_, err = cronJobs.Create(ctx, kubetest.CronJob(c.ns, "bad", kubetest.PodSpec(kubetest.Container("report", "docker.io/library/busybox:1.36"))), metav1.CreateOptions{})
	kubeDenied(t, "cron job with a public image", err, admission.ValidatingName, "report", "docker.io/library/busybox:1.36")

	// Templates by tag are pinned like pods (the default is not pods-only).
	d, err := deployments.Create(ctx, kubetest.Deployment(c.ns, "web", kubetest.PodSpec(
		kubetest.Container("app", kubeRegistry+"/team/app:1"), kubetest.Container("sidecar", c.pinned("team/sidecar:2")))), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("deployment of approved images: %v", err)
	}
	if img, want := d.Spec.Template.Spec.Containers[0].Image, kubeRegistry+"/team/app:1@"+c.approved["team/app:1"]; img != want {
		t.Errorf("stored deployment image %s, want %s", img, want)
	}
	cj, err := cronJobs.Create(ctx, kubetest.CronJob(c.ns, "nightly", kubetest.PodSpec(kubetest.Container("report", kubeRegistry+"/team/sidecar:2"))), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("cron job of an approved image: %v", err)
	}
	if img, want := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image, kubeRegistry+"/team/sidecar:2@"+c.approved["team/sidecar:2"]; img != want {
		t.Errorf("stored cron job image %s, want %s", img, want)
	}

	// Every kind with a pod template is sent to the webhook.
	for _, w := range kubetest.Workloads(c.cp.Client, c.ns, "bad-every-kind", kubetest.PodSpec(
		kubetest.Container("app", c.pinned("team/app:1")), kubetest.Container("worker", bad))) {
		err := w.Create(ctx, metav1.CreateOptions{})
		kubeDenied(t, w.Kind+" with an unapproved image", err, admission.ValidatingName, w.Kind, "worker", bad)
	}

	// An update that swaps in a bad image is denied too.
	d.Spec.Template.Spec.Containers[1].Image = bad
	_, err = deployments.Update(ctx, d, metav1.UpdateOptions{})
	kubeDenied(t, "deployment updated to an unapproved image", err, admission.ValidatingName, "sidecar", bad)
}

// testEphemeral: `kubectl debug` adds an ephemeral container through the
// pods/ephemeralcontainers subresource, an UPDATE many controllers miss.
func (c *kubeCluster) testEphemeral(t *testing.T) {
	ctx := context.Background()
	pods := c.cp.Client.CoreV1().Pods(c.ns)
	pod, err := pods.Create(ctx, kubetest.Pod(c.ns, "debuggee", kubetest.PodSpec(kubetest.Container("app", c.pinned("team/app:1")))), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := "docker.io/library/busybox:1.36"
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{kubetest.EphemeralContainer("debugger", bad)}
	_, err = pods.UpdateEphemeralContainers(ctx, pod.Name, pod, metav1.UpdateOptions{})
	kubeDenied(t, "ephemeral container of a public image", err, admission.ValidatingName, "debugger", bad)

	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{kubetest.EphemeralContainer("debugger", c.pinned("team/debug:1"))}
	got, err := pods.UpdateEphemeralContainers(ctx, pod.Name, pod, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("ephemeral container of an approved image: %v", err)
	}
	if n := len(got.Spec.EphemeralContainers); n != 1 {
		t.Fatalf("stored pod has %d ephemeral containers, want 1", n)
	}

	// By an approved private tag: pinned by the mutating webhook like any container.
	got.Spec.EphemeralContainers = append(got.Spec.EphemeralContainers, kubetest.EphemeralContainer("tagged", kubeRegistry+"/team/debug:1"))
	got, err = pods.UpdateEphemeralContainers(ctx, pod.Name, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("ephemeral container by an approved private tag: %v", err)
	}
	if img, want := got.Spec.EphemeralContainers[1].Image, kubeRegistry+"/team/debug:1@"+c.approved["team/debug:1"]; img != want {
		t.Errorf("stored ephemeral container image %s, want %s", img, want)
	}
}

// warnings collects the Warning headers the API server sends a client.
type warnings struct {
	mu   sync.Mutex
	text []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.text = append(w.text, text)
}

func (w *warnings) all() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.text, "\n")
}

// testNamespaceModes: a namespace in warn mode admits a pod the webhook
// would deny and the client sees why in the API server's warnings; an exempt
// namespace admits it and the exemption is in airlock's audit log.
func (c *kubeCluster) testNamespaceModes(t *testing.T) {
	ctx := context.Background()
	seen := &warnings{}
	cfg := rest.CopyConfig(c.cp.Config)
	cfg.WarningHandler = seen
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bad := c.pinned("team/new:1")
	spec := kubetest.PodSpec(kubetest.Container("app", bad))
	if _, err := cs.CoreV1().Pods("canary").Create(ctx, kubetest.Pod("canary", "would-deny", spec), metav1.CreateOptions{}); err != nil {
		t.Fatalf("pod in a warn-mode namespace: %v", err)
	}
	if w := seen.all(); !strings.Contains(w, "warn mode") || !strings.Contains(w, bad) || !strings.Contains(w, "app") {
		t.Errorf("warnings %q do not say what would be denied", w)
	}
	if _, err := cs.CoreV1().Pods("tools").Create(ctx, kubetest.Pod("tools", "exempt", spec), metav1.CreateOptions{}); err != nil {
		t.Fatalf("pod in an exempt namespace: %v", err)
	}
	entries, err := c.api.Audit(ctx, store.AuditFilter{Action: admission.AuditActionExempted})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !strings.Contains(string(entries[0].Detail), bad) || !strings.Contains(entries[0].Subject+string(entries[0].Detail), "tools") {
		t.Errorf("audit of the exemption: %+v", entries)
	}
	// Enforcing namespaces are not affected.
	_, err = cs.CoreV1().Pods(c.ns).Create(ctx, kubetest.Pod(c.ns, "would-deny", spec), metav1.CreateOptions{})
	kubeDenied(t, "the same pod in an enforcing namespace", err, admission.ValidatingName, bad)
}

// testRevocation: once a digest is revoked, the very next admission is
// denied — no cache outlives the revocation.
func (c *kubeCluster) testRevocation(t *testing.T) {
	ctx := context.Background()
	pods := c.cp.Client.CoreV1().Pods(c.ns)
	img := c.pinned("team/revoked:1")
	spec := kubetest.PodSpec(kubetest.Container("app", img))
	if _, err := pods.Create(ctx, kubetest.Pod(c.ns, "before-revocation", spec), metav1.CreateOptions{}); err != nil {
		t.Fatalf("pod of the approved digest: %v", err)
	}
	if _, err := c.api.Decide(ctx, c.approved["team/revoked:1"], "revoke", server.DecisionRequest{Reason: "kube test: compromised"}); err != nil {
		t.Fatal(err)
	}
	_, err := pods.Create(ctx, kubetest.Pod(c.ns, "after-revocation", spec), metav1.CreateOptions{})
	kubeDenied(t, "pod of a digest revoked a moment ago", err, admission.ValidatingName, "app", img)
}

// testWebhookDown: with the server stopped, failurePolicy Fail makes the API
// server deny even a pod that would be admitted.
func (c *kubeCluster) testWebhookDown(t *testing.T) {
	c.airlock.Kill(t)
	_, err := c.cp.Client.CoreV1().Pods(c.ns).Create(context.Background(),
		kubetest.Pod(c.ns, "webhook-down", kubetest.PodSpec(kubetest.Container("app", c.pinned("team/app:1")))), metav1.CreateOptions{})
	kubeDenied(t, "pod while the webhook is down", err, "failed calling webhook")
}

// testPolicyAlone: with the webhook configurations gone, the
// ValidatingAdmissionPolicy (CEL in the API server, no network) still admits
// only the private registry by digest.
func (c *kubeCluster) testPolicyAlone(t *testing.T) {
	if len(c.admission.Policies) == 0 {
		t.Fatal("the manifests have no ValidatingAdmissionPolicy")
	}
	c.cp.Install(t, kubetest.Admission{Policies: c.admission.Policies, Bindings: c.admission.Bindings})
	c.cp.DeleteWebhooks(t, c.admission)
	ctx := context.Background()
	pods := c.cp.Client.CoreV1().Pods(c.ns)
	// Each kind's policy is named PolicyName-KIND.
	policy := "ValidatingAdmissionPolicy '" + admission.PolicyName
	good := kubetest.Pod(c.ns, "policy-alone", kubetest.PodSpec(kubetest.Container("app", c.pinned("team/app:1"))))
	probe := kubetest.Pod(c.ns, "policy-probe", kubetest.PodSpec(kubetest.Container("app", "docker.io/library/busybox:1.36")))
	// A new policy is enforced once the API server has compiled it, and the
	// webhook configurations' removal reaches its informer a moment later:
	// until then the stopped webhook denies everything.
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	public := kubetest.PodSpec(kubetest.Container("app", "docker.io/library/busybox:1.36"))
	kubetest.Eventually(t, "the policies alone enforce", func(ctx context.Context) error {
		if _, err := pods.Create(ctx, good, dryRun); err != nil {
			return fmt.Errorf("pinned private pod: %w", err)
		}
		if _, err := pods.Create(ctx, probe, dryRun); err == nil || !strings.Contains(err.Error(), policy) {
			return fmt.Errorf("public pod not denied by the policy yet: %v", err)
		}
		// Each kind has its own policy, compiled on its own.
		for _, w := range kubetest.Workloads(c.cp.Client, c.ns, "policy-probe", public) {
			if err := w.Create(ctx, dryRun); err == nil || !strings.Contains(err.Error(), policy) {
				return fmt.Errorf("public %s not denied by the policy yet: %v", w.Kind, err)
			}
		}
		return nil
	})
	approvedDigest := c.approved["team/app:1"]
	for _, img := range []string{
		kubeRegistry + "/team/app:1",
		"docker.io/library/busybox:1.36",
		"docker.io/library/busybox@" + approvedDigest,
		kubeRegistry + ".evil.invalid/team/app@" + approvedDigest,
		"evil.invalid/" + kubeRegistry + "/team/app@" + approvedDigest,
	} {
		_, err := pods.Create(ctx, kubetest.Pod(c.ns, "policy-bad", kubetest.PodSpec(kubetest.Container("app", img))), metav1.CreateOptions{})
		kubeDenied(t, img+" with the policy alone", err, policy)
	}
	spec := kubetest.PodSpec(kubetest.Container("app", c.pinned("team/app:1")))
	spec.InitContainers = []corev1.Container{kubetest.Container("setup", "docker.io/library/busybox:1.36")}
	_, err := pods.Create(ctx, kubetest.Pod(c.ns, "policy-bad-init", spec), metav1.CreateOptions{})
	kubeDenied(t, "init container with the policy alone", err, policy)
	for _, w := range kubetest.Workloads(c.cp.Client, c.ns, "policy-bad", kubetest.PodSpec(
		kubetest.Container("app", c.pinned("team/app:1")), kubetest.Container("worker", kubeRegistry+"/team/app:1"))) {
		err := w.Create(ctx, metav1.CreateOptions{})
		kubeDenied(t, w.Kind+" by tag with the policy alone", err, policy, "worker="+kubeRegistry+"/team/app:1")
	}
	// kubectl debug with a public image.
	debuggee, err := pods.Create(ctx, kubetest.Pod(c.ns, "policy-debuggee", good.Spec), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	debuggee.Spec.EphemeralContainers = []corev1.EphemeralContainer{kubetest.EphemeralContainer("debugger", "docker.io/library/busybox:1.36")}
	_, err = pods.UpdateEphemeralContainers(ctx, debuggee.Name, debuggee, metav1.UpdateOptions{})
	kubeDenied(t, "ephemeral container with the policy alone", err, policy, "debugger=docker.io/library/busybox:1.36")
	if _, err := pods.Create(ctx, good, metav1.CreateOptions{}); err != nil {
		t.Fatalf("pinned private pod with the policy alone: %v", err)
	}
}

func kubeFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// kubeManifests returns the admission configuration `airlock admission
// manifests` prints — both webhook configurations, the
// ValidatingAdmissionPolicies and their bindings — with the webhooks pointed
// at base and trusting caBundle.
func kubeManifests(t *testing.T, base string, caBundle []byte) kubetest.Admission {
	t.Helper()
	files, err := admission.Manifests(admission.ManifestOptions{RegistryHosts: []string{kubeRegistry}, CABundle: caBundle})
	if err != nil {
		t.Fatal(err)
	}
	a, err := kubetest.ParseAdmission(admission.Join(files))
	if err != nil {
		t.Fatalf("the manifests do not parse as the API server's objects: %v", err)
	}
	if len(a.Validating) == 0 || len(a.Mutating) == 0 || len(a.Policies) == 0 || len(a.Policies) != len(a.Bindings) {
		t.Fatalf("the manifests have %d validating and %d mutating webhook configurations, %d policies and %d bindings",
			len(a.Validating), len(a.Mutating), len(a.Policies), len(a.Bindings))
	}
	return a.Webhooks(base, caBundle)
}
