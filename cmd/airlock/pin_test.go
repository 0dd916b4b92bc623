package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runPin runs `airlock pin ARGS` in-process.
func runPin(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return cli(t, append([]string{"pin"}, args...)...)
}

func pinFixture(t *testing.T, files map[string]string) (dir, lock string) {
	t.Helper()
	dir = t.TempDir()
	for rel, s := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile("../../internal/pin/testdata/corpus.lock")
	if err != nil {
		t.Fatal(err)
	}
	lock = filepath.Join(t.TempDir(), "airlock.lock")
	if err := os.WriteFile(lock, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, lock
}

// TestPinExitCodes: 0 passed, 1 not pinned / not approved / remote script,
// 2 usage or malformed input, 3 server unreachable without a lock file.
func TestPinExitCodes(t *testing.T) {
	t.Setenv("AIRLOCK_CREDENTIALS", filepath.Join(t.TempDir(), "none.json"))
	down := "http://127.0.0.1:1"
	dir, lock := pinFixture(t, map[string]string{
		"Dockerfile":      "FROM alpine:3.20\n",
		"deploy/app.yaml": "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: 'nginx:1.27' # web\n",
	})
	if code, out, _ := runPin(t, "--check", "--server", down, "--lock", lock, dir); code != 1 || !strings.Contains(out, "Dockerfile:1:6: not pinned alpine:3.20 → registry.example.com/library/alpine:3.20@sha256:") {
		t.Errorf("check before pinning: exit %d\n%s", code, out)
	}
	// preview: a diff, nothing written, exit 0
	code, out, _ := runPin(t, "--offline", "--lock", lock, dir)
	if code != 0 || !strings.Contains(out, "+++ b/") || !strings.Contains(out, "would pin nginx:1.27") {
		t.Errorf("preview: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "Dockerfile")); string(b) != "FROM alpine:3.20\n" {
		t.Error("preview wrote a file")
	}
	// --diff: the patch alone on stdout
	code, out, errOut := runPin(t, "--diff", "--offline", "--lock", lock, dir)
	if code != 0 || !strings.HasPrefix(out, "--- a/") || strings.Contains(out, "would pin") || !strings.Contains(errOut, "2 to pin") {
		t.Errorf("diff: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if code, out, _ := runPin(t, "--write", "--offline", "--lock", lock, dir); code != 0 || !strings.Contains(out, "2 pinned now") {
		t.Errorf("write: exit %d\n%s", code, out)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "deploy/app.yaml"))
	if !strings.Contains(string(b), "  - image: 'registry.example.com/library/nginx:1.27@sha256:") || !strings.HasSuffix(string(b), "' # web\n") {
		t.Errorf("rewritten manifest:\n%s", b)
	}
	if code, out, _ := runPin(t, "--check", "--offline", "--lock", lock, dir); code != 0 {
		t.Errorf("check after pinning: exit %d\n%s", code, out)
	}
	// JSON and SARIF are machine-readable whatever the verdict
	code, out, _ = runPin(t, "--check", "--offline", "--lock", lock, "-o", "json", dir)
	var rep struct {
		Findings []struct{ Status string } `json:"findings"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Findings) != 2 || rep.Findings[0].Status != "pinned" {
		t.Errorf("json: exit %d\n%s", code, out)
	}
	code, out, _ = runPin(t, "--check", "--offline", "--lock", lock, "-o", "sarif", dir)
	if code != 0 || !strings.Contains(out, `"version": "2.1.0"`) {
		t.Errorf("sarif: exit %d\n%s", code, out)
	}

	bad, _ := pinFixture(t, map[string]string{"Dockerfile": "FROM alpine:3.20\nFORM x\n", "ok/Dockerfile": "FROM alpine:3.20\n"})
	if code, out, errOut := runPin(t, "--write", "--offline", "--lock", lock, bad); code != 2 || !strings.Contains(out, "Dockerfile:2: error: unknown instruction FORM") ||
		!strings.Contains(errOut, "1 file could not be read or parsed") {
		t.Errorf("malformed: exit %d\n%s\n%s", code, out, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(bad, "ok/Dockerfile")); !strings.Contains(string(b), "registry.example.com") {
		t.Error("the good file next to a malformed one was not pinned")
	}
	for _, args := range [][]string{{"--write", "--check"}, {"-o", "xml"}, {"--offline"}} {
		if code, _, _ := runPin(t, append(args, dir)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, errOut := runPin(t, "--check", "--server", down, dir); code != 3 || !strings.Contains(errOut, "unreachable") {
		t.Errorf("unreachable without a lock: exit %d %s", code, errOut)
	}
	ignoredDir, _ := pinFixture(t, map[string]string{"Dockerfile": "# vendor base, reviewed elsewhere: airlock:ignore\nFROM postgres:16\nRUN curl -s https://x.example/i | sh # airlock:ignore\n"})
	if code, out, _ := runPin(t, "--check", "--offline", "--lock", lock, ignoredDir); code != 0 {
		t.Errorf("airlock:ignore: exit %d\n%s", code, out)
	}
	unapproved, _ := pinFixture(t, map[string]string{"Dockerfile": "FROM postgres:16\n"})
	if code, out, _ := runPin(t, "--write", "--offline", "--lock", lock, unapproved); code != 1 || !strings.Contains(out, "not approved postgres:16") {
		t.Errorf("write with nothing approved: exit %d\n%s", code, out)
	}
}
