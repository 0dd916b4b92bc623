package admission

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"
)

// The policy's pattern says yes exactly where the webhook's host and digest
// rules say yes (approval aside, which CEL cannot know).
func TestImagePatternAgreesWithWebhookForm(t *testing.T) {
	hosts := []string{"registry.local", "localhost:5000"}
	pat, err := ImagePattern(hosts)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(pat)
	hs, _ := newHostSet(hosts)
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, img := range []string{
		"registry.local/a@" + d, "registry.local/team/app:1.2@" + d, "localhost:5000/a__b/c-d--e.f@" + d,
		"registry.local/a", "registry.local/a:1", "registry.local.evil.com/a@" + d, "registry.local:5000/a@" + d,
		"evil.com/registry.local/a@" + d, "user@registry.local/a@" + d, "registry.local/A@" + d, "registry.local/a@sha256:" + strings.Repeat("A", 64),
		"registry.local/a@sha512:" + strings.Repeat("a", 128), "registry.localx/a@" + d, "xregistry.local/a@" + d, "nginx@" + d,
		"registry.local//a@" + d, "registry.local/a/@" + d, "registry.local/a@" + d + "\n", "registry.local/-a@" + d,
	} {
		webhook := false
		if im, err := ParseImage(img); err == nil && hs.has(im.Host) && im.Digest != "" && im.Host == strings.ToLower(im.Host) {
			webhook = true
		}
		if got := re.MatchString(img); got != webhook {
			t.Errorf("%q: policy says %v, webhook form says %v", img, got, webhook)
		}
	}
}

// The manifests parse as the Kubernetes types they claim to be, fail closed,
// exclude kube-system and airlock's namespace, cover every inspected kind,
// and carry the CA bundle when one is given.
func TestManifests(t *testing.T) {
	files, err := Manifests(ManifestOptions{RegistryHosts: []string{"registry.local"}, CABundle: []byte("CA"), TLSCert: []byte("C"), TLSKey: []byte("K")})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, doc := range bytes.Split(Join(files), []byte("\n---\n")) {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		kinds[meta.Kind]++
		switch meta.Kind {
		case "ValidatingWebhookConfiguration":
			var v admissionregistrationv1.ValidatingWebhookConfiguration
			if err := yaml.UnmarshalStrict(doc, &v); err != nil {
				t.Fatal(err)
			}
			w := v.Webhooks[0]
			if *w.FailurePolicy != admissionregistrationv1.Fail || string(w.ClientConfig.CABundle) != "CA" || *w.ClientConfig.Service.Path != ValidatePath ||
				*w.TimeoutSeconds > 10 || w.AdmissionReviewVersions[0] != "v1" {
				t.Errorf("validating webhook %+v", w)
			}
			checkRules(t, w.Rules)
			checkExcluded(t, w.NamespaceSelector.MatchExpressions[0].Values)
		case "MutatingWebhookConfiguration":
			var m admissionregistrationv1.MutatingWebhookConfiguration
			if err := yaml.UnmarshalStrict(doc, &m); err != nil {
				t.Fatal(err)
			}
			w := m.Webhooks[0]
			if *w.FailurePolicy != admissionregistrationv1.Fail || *w.SideEffects != admissionregistrationv1.SideEffectClassNone || *w.ClientConfig.Service.Path != MutatePath {
				t.Errorf("mutating webhook %+v", w)
			}
			checkRules(t, w.Rules)
			checkExcluded(t, w.NamespaceSelector.MatchExpressions[0].Values)
		case "ValidatingAdmissionPolicy":
			var p admissionregistrationv1.ValidatingAdmissionPolicy
			if err := yaml.UnmarshalStrict(doc, &p); err != nil {
				t.Fatal(err)
			}
			if *p.Spec.FailurePolicy != admissionregistrationv1.Fail || !strings.Contains(p.Spec.Variables[3].Expression, `registry\\.local`) {
				t.Errorf("policy %s: %+v", p.Name, p.Spec)
			}
		}
	}
	want := map[string]int{"Namespace": 1, "Secret": 1, "PersistentVolumeClaim": 1, "Deployment": 1, "Service": 2,
		"MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1, "ValidatingAdmissionPolicy": 3, "ValidatingAdmissionPolicyBinding": 3}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d %s, want %d (all: %v)", kinds[k], k, n, kinds)
		}
	}
	if _, err := Manifests(ManifestOptions{RegistryHosts: []string{"evil.com/x"}}); err == nil {
		t.Error("a host with a path was accepted")
	}
}

func checkRules(t *testing.T, rules []admissionregistrationv1.RuleWithOperations) {
	t.Helper()
	got := map[string]bool{}
	for _, r := range rules {
		for _, res := range r.Resources {
			got[r.APIGroups[0]+"/"+res] = true
		}
	}
	for k := range kinds {
		res := map[string]string{"Pod": "pods", "ReplicationController": "replicationcontrollers", "Deployment": "deployments", "StatefulSet": "statefulsets",
			"DaemonSet": "daemonsets", "ReplicaSet": "replicasets", "Job": "jobs", "CronJob": "cronjobs"}[k.kind]
		if !got[k.group+"/"+res] {
			t.Errorf("rules miss %s/%s: %v", k.group, res, got)
		}
	}
	if !got["/pods/ephemeralcontainers"] {
		t.Errorf("rules miss pods/ephemeralcontainers")
	}
	b, _ := json.Marshal(rules)
	if strings.Contains(string(b), `"*"`) {
		t.Errorf("rules use a wildcard: %s", b)
	}
}

func checkExcluded(t *testing.T, values []string) {
	t.Helper()
	if strings.Join(values, ",") != "kube-system,airlock" {
		t.Errorf("excluded namespaces %v", values)
	}
}
