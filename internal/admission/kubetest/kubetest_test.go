package kubetest_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/airlock-dev/airlock/internal/admission/kubetest"
)

// digestPolicy is a ValidatingAdmissionPolicy of the test's own: pods' images
// must be pinned by digest. It checks that the harness installs what it parses
// and that the API server it starts enforces it.
const digestPolicy = `
# a comment-only document is skipped
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: kubetest-digests
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["pods"]
  validations:
  - expression: "object.spec.containers.all(c, c.image.contains('@sha256:'))"
    messageExpression: "'kubetest: every image must be pinned by digest'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: kubetest-digests
spec:
  policyName: kubetest-digests
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels:
        kubetest: enforced
---
apiVersion: v1
kind: Service
metadata:
  name: other
spec:
  ports:
  - port: 443
`

func TestParseAdmission(t *testing.T) {
	a, err := kubetest.ParseAdmission([]byte(digestPolicy))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Policies) != 1 || len(a.Bindings) != 1 || len(a.Other) != 1 || len(a.Validating)+len(a.Mutating) != 0 {
		t.Fatalf("parsed %d policies, %d bindings, %d others, %d+%d webhooks; want 1, 1, 1, 0",
			len(a.Policies), len(a.Bindings), len(a.Other), len(a.Validating), len(a.Mutating))
	}
	for _, bad := range []string{
		"kind: Nonsense\napiVersion: example.invalid/v1\n",
		"apiVersion: v1\nkind: Pod\nmetadata: [",
	} {
		if _, err := kubetest.ParseAdmission([]byte(bad)); err == nil {
			t.Errorf("ParseAdmission(%q) = nil error, want one", bad)
		}
	}
}

const webhooks = `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: v}
webhooks:
- name: v.example.invalid
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig:
    service: {name: s, namespace: airlock, path: /admission/validate}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: m}
webhooks:
- name: m.example.invalid
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig:
    url: https://webhook.example.invalid:8443/admission/mutate
`

func TestWebhooksByURL(t *testing.T) {
	a, err := kubetest.ParseAdmission([]byte(webhooks))
	if err != nil {
		t.Fatal(err)
	}
	a = a.Webhooks("https://127.0.0.1:9443", []byte("CA"))
	v := a.Validating[0].Webhooks[0].ClientConfig
	m := a.Mutating[0].Webhooks[0].ClientConfig
	if v.Service != nil || *v.URL != "https://127.0.0.1:9443/admission/validate" || string(v.CABundle) != "CA" {
		t.Errorf("validating client config = %+v", v)
	}
	if *m.URL != "https://127.0.0.1:9443/admission/mutate" || string(m.CABundle) != "CA" {
		t.Errorf("mutating client config = %+v", m)
	}
}

// FuzzParseAdmission: manifests are read with the API server's decoder;
// whatever the bytes, an error or objects, never a panic.
func FuzzParseAdmission(f *testing.F) {
	f.Add([]byte(digestPolicy))
	f.Add([]byte(webhooks))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("{\"apiVersion\":\"v1\",\"kind\":\"Pod\"}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = kubetest.ParseAdmission(b)
	})
}

// TestControlPlane starts the API server, installs a policy through it and
// sees it enforced: the harness the admission tests stand on.
func TestControlPlane(t *testing.T) {
	cp := kubetest.Start(t)
	ctx := context.Background()
	a, err := kubetest.ParseAdmission([]byte(digestPolicy))
	if err != nil {
		t.Fatal(err)
	}
	cp.Install(t, a)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "enforced", Labels: map[string]string{"kubetest": "enforced"}}}
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := cp.Client.CoreV1().Pods("enforced")
	tagged := kubetest.Pod("enforced", "tagged", kubetest.PodSpec(kubetest.Container("app", "registry.example.invalid/app:1")))
	// A new policy is enforced once the API server's informer has compiled it.
	kubetest.Eventually(t, "the policy denies a pod by tag", func(ctx context.Context) error {
		_, err := pods.Create(ctx, tagged, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			return kubetest.ErrNotYet
		}
		if !strings.Contains(err.Error(), "kubetest: every image must be pinned by digest") {
			t.Fatalf("pod by tag denied for another reason: %v", err)
		}
		return nil
	})
	pinned := kubetest.Pod("enforced", "pinned", kubetest.PodSpec(kubetest.Container("app",
		"registry.example.invalid/app:1@sha256:"+strings.Repeat("ab", 32))))
	if _, err := pods.Create(ctx, pinned, metav1.CreateOptions{}); err != nil {
		t.Fatalf("pod by digest: %v", err)
	}
	// Namespaces the binding does not select are not affected.
	if _, err := cp.Client.CoreV1().Pods("default").Create(ctx, kubetest.Pod("default", "tagged", tagged.Spec), metav1.CreateOptions{}); err != nil {
		t.Fatalf("pod by tag in default: %v", err)
	}
}
