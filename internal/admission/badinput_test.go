package admission_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"

	"github.com/airlock-dev/airlock/internal/admission"
)

// Bad requests get a clear 4xx and no decision; the API server then applies
// failurePolicy: Fail.
func TestBadRequests(t *testing.T) {
	e := newEnv(t, nil)
	w := e.webhook(t, opts{cfg: admission.Config{MaxRequestBytes: 64 << 10}})
	good := request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{e.ref("team/app:1")}, nil, nil)}}.review()
	huge := request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{strings.Repeat("a", 70<<10)}, nil, nil)}}.review()
	for _, c := range []struct {
		name, ctype, path string
		body              []byte
		status            int
		says              string
	}{
		{"not json", "application/json", admission.ValidatePath, []byte("{"), 400, "not an AdmissionReview"},
		{"wrong type", "text/plain", admission.ValidatePath, good, 400, "not application/json"},
		{"too big", "application/json", admission.ValidatePath, huge, 413, ""},
		{"v1beta1", "application/json", admission.ValidatePath, bytes.Replace(good, []byte("admission.k8s.io/v1"), []byte("admission.k8s.io/v1beta1"), 1), 400, "admissionReviewVersions"},
		{"no request", "application/json", admission.MutatePath, []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), 400, "no request"},
		{"no uid", "application/json", admission.ValidatePath, bytes.Replace(good, []byte(`"uid":"3f1c0d9e-uid"`), []byte(`"uid":""`), 1), 400, "uid"},
		{"duplicate key", "application/json", admission.ValidatePath, bytes.Replace(good, []byte(`"kind":"AdmissionReview"`), []byte(`"kind":"AdmissionReview","kind":"AdmissionReview"`), 1), 400, "duplicate"},
		{"GET", "", admission.ValidatePath, nil, 405, ""},
		{"unknown path", "application/json", "/admission/other", good, 404, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			method := http.MethodPost
			if c.body == nil {
				method = http.MethodGet
			}
			req := httptest.NewRequest(method, c.path, bytes.NewReader(c.body))
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			w.ServeHTTP(rec, req)
			if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.says) {
				t.Errorf("%d %q, want %d containing %q", rec.Code, rec.Body, c.status, c.says)
			}
		})
	}
	// An object that is not its kind is denied with a reason, not crashed on.
	for _, obj := range []string{`{"spec":{"containers":"x"}}`, `{"spec":{"containers":[{"image":1}]}}`, `{"spec":{"containers":[{"image":"a","image":"b"}]}}`} {
		r := validate(t, w, request{kind: "Pod", object: json.RawMessage(obj)})
		mustDeny(t, r, "not valid JSON of its kind")
	}
	// Keys are case-sensitive as in the API server: "Image" is not the image.
	obj := `{"spec":{"containers":[{"name":"c","image":"` + e.ref("team/app:1") + `","Image":"evil.com/x:1"}]}}`
	mustAllow(t, validate(t, w, request{kind: "Pod", object: json.RawMessage(obj)}))
}

// Served over TLS with a generated certificate (key 0600) that a client
// trusting the CA bundle accepts; metrics count each decision.
func TestServeTLSAndMetrics(t *testing.T) {
	e := newEnv(t, nil)
	dir := t.TempDir()
	cert, caPath, created, err := admission.LoadOrCreateCertificate(dir, []string{"localhost", "127.0.0.1"})
	if err != nil || !created {
		t.Fatalf("created %v: %v", created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, admission.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v: %v", fi.Mode(), err)
	}
	if _, _, again, err := admission.LoadOrCreateCertificate(dir, nil); err != nil || again {
		t.Fatalf("second start: created %v, %v", again, err)
	}
	reg := prometheus.NewRegistry()
	srv := e.in.Server
	idx, err := admission.NewIndex(admission.IndexOptions{Store: srv.Store, Key: srv.Decider.Signer.Public(), ReadManifest: srv.Registry.Image, ResolveTag: srv.Registry.ResolveTag})
	if err != nil {
		t.Fatal(err)
	}
	w, err := admission.New(admission.Config{RegistryHosts: []string{host}}, idx, nil, admission.NewMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Serve(ctx, ln, cert) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	ca, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	send := func(r request) string {
		resp, err := client.Post("https://"+ln.Addr().String()+admission.ValidatePath, "application/json", bytes.NewReader(r.review()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if b := send(request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{e.ref("team/app:1")}, nil, nil)}}); !strings.Contains(b, `"allowed":true`) {
		t.Fatalf("over TLS: %s", b)
	}
	if b := send(request{kind: "Pod", object: &corev1.Pod{Spec: spec([]string{"nginx"}, nil, nil)}}); !strings.Contains(b, `"allowed":false`) {
		t.Fatalf("over TLS: %s", b)
	}
	counts := map[string]float64{}
	var observed uint64
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetName() {
			case "airlock_admission_decisions_total":
				counts[labels["webhook"]+"/"+labels["result"]] = m.GetCounter().GetValue()
			case "airlock_admission_request_duration_seconds":
				observed += histogramCount(m)
			}
		}
	}
	if counts["validate/allowed"] != 1 || counts["validate/denied"] != 1 || observed != 2 {
		t.Errorf("decisions %v, latency observations %d; want one allowed, one denied, two observed", counts, observed)
	}
	// A client that does not trust the CA is refused.
	if _, err := http.Post("https://"+ln.Addr().String()+admission.ValidatePath, "application/json", nil); err == nil {
		t.Error("an untrusted client connected")
	}
}

func histogramCount(m *dto.Metric) uint64 { return m.GetHistogram().GetSampleCount() }
