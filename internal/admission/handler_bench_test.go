package admission_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/airlock-dev/airlock/internal/admission"
)

// BenchmarkHandlerPaths is the handler alone (no TLS, no network) for a
// 5-container pod: the part of bench/admission's latency that is Airlock's.
func BenchmarkHandlerPaths(b *testing.B) {
	e := newEnv(b, nil)
	w := e.webhook(b, opts{})
	good := e.ref("team/app:1")
	bad := e.ref("team/new:1")
	tag := host + "/team/app:1"
	for _, c := range []struct {
		name, path string
		images     []string
	}{
		{"validate-allowed", admission.ValidatePath, []string{good, good, good, good, good}},
		{"validate-denied", admission.ValidatePath, []string{good, good, good, good, bad}},
		{"mutate-tags", admission.MutatePath, []string{tag, tag, tag, tag, tag}},
	} {
		body := request{kind: "Pod", object: &corev1.Pod{Spec: spec(c.images, nil, nil)}}.review()
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodPost, c.path, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				w.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatal(rec.Body)
				}
			}
		})
	}
}
