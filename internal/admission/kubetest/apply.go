package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

// Admission is the admission configuration a test registers with the API
// server: what `airlock admission manifests` prints, or a part of it.
type Admission struct {
	Validating []*admissionregistrationv1.ValidatingWebhookConfiguration
	Mutating   []*admissionregistrationv1.MutatingWebhookConfiguration
	Policies   []*admissionregistrationv1.ValidatingAdmissionPolicy
	Bindings   []*admissionregistrationv1.ValidatingAdmissionPolicyBinding
	// Other holds the documents of other kinds (Deployment, Service, …),
	// which a test against a bare API server does not create.
	Other []runtime.Object
}

// ParseAdmission decodes a multi-document YAML (or JSON) stream of manifests
// with the API server's own types; an unknown kind is an error.
func ParseAdmission(manifests []byte) (Admission, error) {
	var a Admission
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifests)))
	decode := scheme.Codecs.UniversalDeserializer().Decode
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return a, nil
		}
		if err != nil {
			return a, fmt.Errorf("read manifest document %d: %w", n, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || isComment(doc) {
			continue
		}
		obj, _, err := decode(doc, nil, nil)
		if err != nil {
			return a, fmt.Errorf("manifest document %d is not a Kubernetes object this API server knows: %w", n, err)
		}
		switch o := obj.(type) {
		case *admissionregistrationv1.ValidatingWebhookConfiguration:
			a.Validating = append(a.Validating, o)
		case *admissionregistrationv1.MutatingWebhookConfiguration:
			a.Mutating = append(a.Mutating, o)
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			a.Policies = append(a.Policies, o)
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			a.Bindings = append(a.Bindings, o)
		default:
			a.Other = append(a.Other, obj)
		}
	}
}

func isComment(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return false
		}
	}
	return true
}

// Webhooks points every webhook of a at url (same paths the manifests name
// for their Service, on url's host) with caBundle as the CA it trusts.
// The manifests address a Service in a cluster; a bare API server reaches the
// webhook by URL.
func (a Admission) Webhooks(base string, caBundle []byte) Admission {
	for _, c := range a.Validating {
		for i := range c.Webhooks {
			c.Webhooks[i].ClientConfig = urlConfig(c.Webhooks[i].ClientConfig, base, caBundle)
		}
	}
	for _, c := range a.Mutating {
		for i := range c.Webhooks {
			c.Webhooks[i].ClientConfig = urlConfig(c.Webhooks[i].ClientConfig, base, caBundle)
		}
	}
	return a
}

func urlConfig(cc admissionregistrationv1.WebhookClientConfig, base string, caBundle []byte) admissionregistrationv1.WebhookClientConfig {
	path := ""
	switch {
	case cc.Service != nil && cc.Service.Path != nil:
		path = *cc.Service.Path
	case cc.URL != nil:
		path = pathOf(*cc.URL)
	}
	u := base + path
	return admissionregistrationv1.WebhookClientConfig{URL: &u, CABundle: caBundle}
}

// pathOf returns the path of an absolute URL (scheme://host/path → /path).
func pathOf(u string) string {
	for i, slashes := 0, 0; i < len(u); i++ {
		if u[i] == '/' {
			if slashes++; slashes == 3 {
				return u[i:]
			}
		}
	}
	return ""
}

// Install creates the webhook configurations, policies and bindings of a
// (not Other) and deletes them when the test ends.
func (cp *ControlPlane) Install(t testing.TB, a Admission) {
	t.Helper()
	ctx := context.Background()
	ar := cp.Client.AdmissionregistrationV1()
	for _, o := range a.Policies {
		if _, err := ar.ValidatingAdmissionPolicies().Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create ValidatingAdmissionPolicy %s: %v", o.Name, err)
		}
		name := o.Name
		t.Cleanup(func() {
			_ = ar.ValidatingAdmissionPolicies().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
	}
	for _, o := range a.Bindings {
		if _, err := ar.ValidatingAdmissionPolicyBindings().Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create ValidatingAdmissionPolicyBinding %s: %v", o.Name, err)
		}
		name := o.Name
		t.Cleanup(func() {
			_ = ar.ValidatingAdmissionPolicyBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
	}
	for _, o := range a.Validating {
		if _, err := ar.ValidatingWebhookConfigurations().Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create ValidatingWebhookConfiguration %s: %v", o.Name, err)
		}
		name := o.Name
		t.Cleanup(func() {
			_ = ar.ValidatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
	}
	for _, o := range a.Mutating {
		if _, err := ar.MutatingWebhookConfigurations().Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create MutatingWebhookConfiguration %s: %v", o.Name, err)
		}
		name := o.Name
		t.Cleanup(func() {
			_ = ar.MutatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
	}
}

// DeleteWebhooks removes the webhook configurations of a, leaving its policies.
func (cp *ControlPlane) DeleteWebhooks(t testing.TB, a Admission) {
	t.Helper()
	ctx := context.Background()
	ar := cp.Client.AdmissionregistrationV1()
	for _, o := range a.Validating {
		if err := ar.ValidatingWebhookConfigurations().Delete(ctx, o.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete ValidatingWebhookConfiguration %s: %v", o.Name, err)
		}
	}
	for _, o := range a.Mutating {
		if err := ar.MutatingWebhookConfigurations().Delete(ctx, o.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete MutatingWebhookConfiguration %s: %v", o.Name, err)
		}
	}
}
