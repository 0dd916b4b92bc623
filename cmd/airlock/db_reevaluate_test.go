package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

const denyVulnerabilities = `apiVersion: airlock.dev/policy/v1
name: deny-vulnerabilities
default: review
reevaluation:
  revoke: deny
  grace: 24h
rules:
  - name: known-vulnerability
    effect: deny
    when: findings.exists(f, f.type == "vulnerability")
    message: a known vulnerability
`

// approvedPythonApp imports an image holding requests 2.30.0 into a server
// with no advisory data yet, and approves it.
func approvedPythonApp(t *testing.T, mutate func(*config.Config)) (*servertest.Instance, string) {
	t.Helper()
	up := servertest.StartUpstream(t)
	img := servertest.Image(t, v1.Platform{OS: "linux", Architecture: "amd64"}, map[string][]byte{
		"usr/local/lib/python3.11/site-packages/requests-2.30.0.dist-info/METADATA": []byte("Metadata-Version: 2.1\nName: requests\nVersion: 2.30.0\n"),
	}, []string{"/usr/bin/python3"}, nil)
	want := up.Push(t, "team/py:1", img, nil)
	in := servertest.Start(t, func(c *config.Config) {
		c.Pipeline.MaxAttempts = 1
		if mutate != nil {
			mutate(c)
		}
	})
	t.Setenv("AIRLOCK_SERVER", in.URL)
	t.Setenv("AIRLOCK_TOKEN", in.AdminToken)
	t.Setenv("AIRLOCK_CREDENTIALS", filepath.Join(t.TempDir(), "creds.json"))
	if out, code := run(t, "import", up.Host+"/team/py:1", "--insecure", "--wait"); code != 1 || !strings.Contains(out, want) {
		t.Fatalf("import: %d\n%s", code, out)
	}
	if out, code := run(t, "approve", want, "--reason", "reviewed"); code != 0 {
		t.Fatalf("approve: %d\n%s", code, out)
	}
	return in, want
}

func webhook(t *testing.T) (*httptest.Server, func() []server.Alert) {
	var mu sync.Mutex
	var got []server.Alert
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a server.Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
	}))
	t.Cleanup(s.Close)
	return s, func() []server.Alert { mu.Lock(); defer mu.Unlock(); return append([]server.Alert(nil), got...) }
}

// TestDBImportReevaluatesOnServer: db import with a server asks it to
// re-evaluate; the new finding on the approved digest exits 1.
func TestDBImportReevaluatesOnServer(t *testing.T) {
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte(denyVulnerabilities), 0o644); err != nil {
		t.Fatal(err)
	}
	hook, alerts := webhook(t)
	in, want := approvedPythonApp(t, func(c *config.Config) { c.Policy.File = pol; c.Alerts.Webhook = hook.URL })

	code, out, errs := runDB(t, "import", filepath.Join(osvData, "pypi", "requests"), "--data", in.Data)
	if code != 1 || !strings.Contains(out, "NEW PYSEC-2023-74 ") || !strings.Contains(out, "revocation scheduled for") ||
		!strings.Contains(errs, "new findings on 1 approved digest") {
		t.Fatalf("db import with a server: exit %d\n%s%s", code, out, errs)
	}
	if a := alerts(); len(a) != 1 || a[0].Digest != want || a[0].Kind != server.AlertNewFindings {
		t.Fatalf("webhook got %+v", a)
	}
	out, code = run(t, "queue")
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "REVOKE") {
		t.Fatalf("queue: %d\n%s", code, out)
	}
	out, code = run(t, "show", want)
	if code != 0 || !strings.Contains(out, "Revocation:   scheduled") || !strings.Contains(out, "PYSEC-2023-74") {
		t.Fatalf("show: %d\n%s", code, out)
	}
	// The server reading other advisory data is refused, not ignored.
	other := t.TempDir()
	code, _, errs = runDB(t, "import", filepath.Join(osvData, "crates"), "--data", other)
	if code != 2 || !strings.Contains(errs, "import into the server's data directory") {
		t.Fatalf("db import into another data directory: exit %d %s", code, errs)
	}
}

// TestDBImportReevaluatesOffline: without a server, db import opens the
// data directory's store and registry and re-evaluates there.
func TestDBImportReevaluatesOffline(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte(denyVulnerabilities), 0o644); err != nil {
		t.Fatal(err)
	}
	hook, alerts := webhook(t)
	in, want := approvedPythonApp(t, nil)
	if err := in.Server.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "airlock.yaml")
	if err := os.WriteFile(cfg, []byte("policy:\n  file: "+pol+"\nalerts:\n  webhook: "+hook.URL+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Unsetenv("AIRLOCK_SERVER")
	code, out, errs := runDB(t, "import", filepath.Join(osvData, "pypi", "requests"), "--data", in.Data, "--config", cfg, "-o", "json")
	if code != 1 {
		t.Fatalf("offline db import: exit %d\n%s%s", code, out, errs)
	}
	var rep struct {
		Snapshot     string
		Reevaluation server.ReevaluationReport
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r := rep.Reevaluation
	if r.Snapshot != rep.Snapshot || len(r.Images) != 1 || r.Images[0].Digest != want || r.Images[0].Revocation == nil || r.Images[0].State != store.Approved {
		t.Fatalf("offline re-evaluation %+v", r)
	}
	if a := alerts(); len(a) != 1 || a[0].Digest != want {
		t.Fatalf("webhook got %+v", a)
	}
	// Again: the same data, nothing new, exit 0.
	if code, out, errs := runDB(t, "import", filepath.Join(osvData, "pypi", "requests"), "--data", in.Data, "--config", cfg); code != 0 || !strings.Contains(out, "0 matched again") {
		t.Fatalf("second offline import: exit %d\n%s%s", code, out, errs)
	}
}
