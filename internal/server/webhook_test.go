package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/airlock-dev/airlock/internal/admission"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// The server's own webhook: a certificate generated into the data directory
// (key 0600), approvals from the server's store, decisions on /metrics.
func TestServerWebhook(t *testing.T) {
	in := servertest.Start(t, func(c *config.Config) { c.Admission.Exempt = []string{"legacy-*"} })
	es, err := in.Server.Store.AuditEntries(context.Background(), store.AuditFilter{Action: "serve.admission-exempt"})
	if err != nil || len(es) != 1 || es[0].Subject != "legacy-*" {
		t.Fatalf("configured exemption not audited at start: %+v %v", es, err)
	}
	if !in.Server.WebhookEnabled() {
		t.Fatal("the webhook is off by default")
	}
	pusher := in.Token(t, "ci", store.RolePusher)
	img := in.PushRandom(t, "team/app:1", "ci", pusher, 256, 1)
	d, _ := img.Digest()
	in.Approve(t, d.String())

	cert, createdCA, err := in.Server.WebhookCertificate()
	if err != nil || createdCA == "" {
		t.Fatalf("certificate: created %q, %v", createdCA, err)
	}
	if fi, err := os.Stat(filepath.Join(in.Data, admission.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Server.ServeWebhook(ctx, ln, cert) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	ca, _ := os.ReadFile(createdCA)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	review := func(image string) admissionv1.AdmissionResponse {
		pod, _ := json.Marshal(map[string]any{"spec": map[string]any{"containers": []map[string]string{{"name": "app", "image": image}}}})
		body, _ := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: "u1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
				Operation: admissionv1.Create, Namespace: "prod", Name: "p", Object: runtime.RawExtension{Raw: pod}},
		})
		resp, err := client.Post("https://"+ln.Addr().String()+admission.ValidatePath, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rv admissionv1.AdmissionReview
		if err := json.NewDecoder(resp.Body).Decode(&rv); err != nil || rv.Response == nil {
			t.Fatalf("decode: %v", err)
		}
		return *rv.Response
	}
	// registryHost defaults to the listen address, and so do the admission hosts.
	if r := review(in.Host + "/team/app@" + d.String()); !r.Allowed {
		t.Fatalf("approved image denied: %+v", r.Result)
	}
	if r := review(in.Host + "/team/app:1"); r.Allowed || !strings.Contains(r.Result.Message, "use "+in.Host+"/team/app:1@"+d.String()) {
		t.Fatalf("tag allowed or no pinned reference offered: %+v", r.Result)
	}
	resp, err := http.Get(in.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`airlock_admission_decisions_total{result="allowed",webhook="validate"} 1`, `airlock_admission_decisions_total{result="denied",webhook="validate"} 1`,
		"airlock_admission_index_digests 1", "airlock_admission_index_age_seconds "} {
		if !strings.Contains(string(m), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
