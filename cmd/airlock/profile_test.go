package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/profile/profiletest"
	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// Usage errors exit 2 before anything runs; diff reads only profile documents.
func TestProfileCommandUsage(t *testing.T) {
	notProfile := filepath.Join(t.TempDir(), "x.json")
	if err := os.WriteFile(notProfile, []byte(`{"schemaVersion":"v0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"profile"},
		{"profile", "a", "b"},
		{"profile", "docker-archive:/nonexistent.tar", "-o", "sarif"},
		{"profile", "docker-archive:/nonexistent.tar", "--http-probe", "http"},
		{"profile", "docker-archive:/nonexistent.tar", "--probe-cmd", "sh -c 'x"},
		{"profile", "docker-archive:/nonexistent.tar", "--duration", "0s"},
		{"profile", "diff", notProfile},
		{"profile", "diff", notProfile, notProfile},
		{"profile", "diff", "/nonexistent.json", notProfile},
	} {
		if code, _, errs := cli(t, args...); code != exitUsage || !strings.Contains(errs, "airlock: ") {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, errs)
		}
	}
	code, out, _ := cli(t, "profile", "--help")
	if code != 0 || !strings.Contains(out, "airlock profile docker-archive:app.tar") || !strings.Contains(out, "--http-probe") {
		t.Errorf("help: %d\n%s", code, out)
	}
}

// airlock profile runs the clean and the trojaned service: 0 and 1, JSON
// documents that airlock profile diff compares.
func TestProfileCommand(t *testing.T) {
	profiletest.NeedSandbox(t)
	dir := t.TempDir()
	cleanTar, trojanTar := archive(t, profiletest.App(t, false)), archive(t, profiletest.App(t, true))
	cleanJSON, trojanJSON := filepath.Join(dir, "clean.json"), filepath.Join(dir, "trojan.json")

	code, out, errs := cli(t, "profile", "docker-archive:"+cleanTar, "--duration", "20s", "--out", cleanJSON)
	if code != 0 || !strings.Contains(out, "/usr/bin/helper") {
		t.Fatalf("clean: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = cli(t, "profile", "docker-archive:"+trojanTar, "-o", "json", "--out", trojanJSON)
	if code != exitDenied || !strings.Contains(errs, "stratum-login") {
		t.Fatalf("trojan: exit %d, want 1\n%s", code, errs)
	}
	var p profile.Profile
	if err := json.Unmarshal([]byte(out), &p); err != nil || len(p.Critical()) == 0 {
		t.Fatalf("trojan json: %v\n%s", err, out)
	}
	written, err := os.ReadFile(trojanJSON)
	if err != nil || string(written) != out {
		t.Fatalf("--out differs from -o json: %v", err)
	}

	code, out, _ = cli(t, "profile", "diff", cleanJSON, trojanJSON)
	if code != 0 || !strings.Contains(out, "+ executable  /tmp/.x/kworker\n") || !strings.Contains(out, "+ destination tcp pool.example.invalid:3333 stratum\n") {
		t.Fatalf("diff: exit %d\n%s", code, out)
	}
	code, out, _ = cli(t, "profile", "diff", cleanJSON, trojanJSON, "-o", "json", "--exit-code")
	var d profile.Diff
	if code != exitDenied || json.Unmarshal([]byte(out), &d) != nil || len(d.Executables.Added) != 1 {
		t.Fatalf("diff --exit-code -o json: exit %d\n%s", code, out)
	}
	if code, out, _ = cli(t, "profile", "diff", cleanJSON, cleanJSON, "--exit-code"); code != 0 || !strings.Contains(out, "no change") {
		t.Fatalf("diff of one profile with itself: exit %d\n%s", code, out)
	}

	// An image with nothing to run is an input error.
	empty := archive(t, sandboxtest.Image(t, v1.Config{}, sandboxtest.Layer(t, map[string]sandboxtest.File{"etc/": {Dir: true}})))
	if code, _, errs := cli(t, "profile", "docker-archive:"+empty); code != exitUsage || !strings.Contains(errs, "no entrypoint") {
		t.Fatalf("empty image: exit %d\n%s", code, errs)
	}
}

// airlock profile diff DIGEST DIGEST reads the profiles a server's pipeline recorded.
func TestProfileDiffFromServer(t *testing.T) {
	profiletest.NeedSandbox(t)
	up := servertest.StartUpstream(t)
	clean := up.Push(t, "apps/svc:1.0", profiletest.App(t, false), nil)
	trojan := up.Push(t, "apps/svc:1.1", profiletest.App(t, true), nil)
	in := servertest.Start(t, func(c *config.Config) { c.Pipeline.MaxAttempts = 1 })
	t.Setenv("AIRLOCK_SERVER", in.URL)
	t.Setenv("AIRLOCK_TOKEN", in.Token(t, "cli", store.RolePusher))
	t.Setenv("AIRLOCK_CREDENTIALS", filepath.Join(t.TempDir(), "creds.json"))
	for _, tag := range []string{"1.0", "1.1"} {
		if code, out, errs := cli(t, "import", up.Host+"/apps/svc:"+tag, "--insecure", "--wait"); code != exitDenied {
			t.Fatalf("import %s: exit %d\n%s\n%s", tag, code, out, errs)
		}
	}
	code, out, errs := cli(t, "profile", "diff", clean, trojan)
	if code != 0 || !strings.Contains(out, "profile diff "+clean+" → "+trojan+"\n") || !strings.Contains(out, "+ executable  /tmp/.x/kworker\n") ||
		!strings.Contains(out, "+ destination tcp pool.example.invalid:3333 stratum\n") {
		t.Fatalf("diff by digest: exit %d\n%s\n%s", code, out, errs)
	}
	unknown := "sha256:" + strings.Repeat("0", 64)
	if code, _, errs := cli(t, "profile", "diff", unknown, trojan); code != exitUsage || !strings.Contains(errs, "has no profile of "+unknown) {
		t.Fatalf("unknown digest: exit %d\n%s", code, errs)
	}
}
