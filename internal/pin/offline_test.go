package pin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/pin"
	"github.com/airlock-dev/airlock/internal/server"
)

func copyLock(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(corpusLock)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "airlock.lock")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPinOfflineGolden pins the corpus from the lock file alone (what the
// server run recorded) and gets the same golden files; twice is once.
func TestPinOfflineGolden(t *testing.T) {
	if *update {
		t.Skip("golden files are written by TestPinAgainstServer")
	}
	dir := copyTree(t, corpusDir)
	lock := copyLock(t)
	lockBefore, _ := os.ReadFile(lock)
	opts := pin.Options{Paths: []string{dir}, Mode: pin.ModeWrite, LockPath: lock, Offline: true}
	rep, err := pin.Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Offline || len(rep.Errors) != 0 {
		t.Fatalf("offline %v errors %v", rep.Offline, rep.Errors)
	}
	checkGolden(t, dir)
	before := snapshot(t, dir)
	rep2, err := pin.Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep2.Changed) != 0 {
		t.Errorf("second offline run changed %v", rep2.Changed)
	}
	for rel, b := range snapshot(t, dir) {
		if !bytes.Equal(b, before[rel]) {
			t.Errorf("%s changed on the second run", rel)
		}
	}
	if lockAfter, _ := os.ReadFile(lock); !bytes.Equal(lockBefore, lockAfter) {
		t.Error("an offline run must not rewrite the lock file")
	}
	// what remains is exactly what is not approved, not rewritable, or a script
	want := map[pin.Status]int{pin.StatusUnapproved: 0, pin.StatusManual: 0, pin.StatusScript: 0}
	for _, f := range rep2.Findings {
		if _, ok := want[f.Status]; ok {
			want[f.Status]++
		}
		if f.Status == pin.StatusUnpinned {
			t.Errorf("left unpinned after --write: %+v", f)
		}
	}
	if want[pin.StatusUnapproved] == 0 || want[pin.StatusManual] == 0 || want[pin.StatusScript] != 8 {
		t.Errorf("remaining findings: %v", want)
	}
}

// TestCheckFindsEverything lists, for the untouched corpus, every reference
// that is not a private approved digest, with file:line:col and the
// suggested replacement.
func TestCheckFindsEverything(t *testing.T) {
	dir := copyTree(t, corpusDir)
	rep, err := pin.Run(context.Background(), pin.Options{Paths: []string{dir}, Mode: pin.ModeCheck, LockPath: copyLock(t), Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Failed() {
		t.Fatal("check must fail on the corpus")
	}
	find := func(rel string, line, col int) pin.Finding {
		t.Helper()
		for _, f := range rep.Findings {
			if f.Path == filepath.Join(dir, rel) && f.Line == line && f.Col == col {
				return f
			}
		}
		t.Fatalf("no finding at %s:%d:%d", rel, line, col)
		return pin.Finding{}
	}
	for _, tc := range []struct {
		rel       string
		line, col int
		status    pin.Status
		want      string // in the suggestion or message
	}{
		{"Dockerfile", 1, 10, pin.StatusUnpinned, "registry.example.com/docker.io/docker/dockerfile:1.7@sha256:"},
		{"Dockerfile", 3, 14, pin.StatusUnpinned, "registry.example.com/library/golang:1.22@sha256:"},
		{"Dockerfile", 10, 28, pin.StatusUnpinned, "library/busybox:1.36@"},
		{"Dockerfile", 12, 5, pin.StatusScript, "https://install.example.com/tool.sh"},
		{"services/api/Dockerfile", 1, 29, pin.StatusUnpinned, "@sha256:f69c4a122f02dcc80ff683a118cc592147fdf7d77dcf0792c12cc4132d4d8b81"},
		{"services/api/Dockerfile", 10, 5, pin.StatusScript, "--checksum"},
		{"services/web/Containerfile", 4, 6, pin.StatusManual, "registry.example.com/library/node:22-alpine@sha256:"},
		{"services/web/Containerfile", 15, 6, pin.StatusNote, "no ARG default"},
		{"deploy/k8s/app.yaml", 29, 18, pin.StatusUnapproved, "quarantined"},
		{"deploy/k8s/app.yaml", 52, 36, pin.StatusScript, "report.example.com"},
		{"deploy/k8s/app.yaml", 54, 20, pin.StatusPinned, ""},
		{"deploy/k8s/debug.yaml", 35, 14, pin.StatusUnapproved, "airlock import"},
		{"charts/web/values.yaml", 6, 15, pin.StatusUnpinned, "registry.example.com/docker.io/bitnami/nginx:1.27.0@"},
		{"charts/web/values.yaml", 27, 15, pin.StatusNote, "appVersion"},
		{"charts/web/templates/deployment.yaml", 10, 19, pin.StatusNote, "templated"},
		{"docker-compose.yml", 21, 12, pin.StatusNote, "templated"},
		{"overlays/prod/kustomization.yaml", 9, 11, pin.StatusUnapproved, ""},
		{"overlays/prod/kustomization.yaml", 15, 12, pin.StatusManual, "flow-style"},
		{".github/workflows/ci.yml", 23, 11, pin.StatusScript, "codecov.io"},
		{".github/workflows/ci.yml", 30, 14, pin.StatusNote, "matrix.image"},
		{".gitlab-ci.yml", 31, 13, pin.StatusUnapproved, ""},
		{"tekton/task.yaml", 14, 9, pin.StatusScript, "get.example.com/installer"},
	} {
		f := find(tc.rel, tc.line, tc.col)
		if f.Status != tc.status || !strings.Contains(f.Suggestion+" "+f.Message, tc.want) {
			t.Errorf("%s:%d:%d: got %s %q %q, want %s %q", tc.rel, tc.line, tc.col, f.Status, f.Suggestion, f.Message, tc.status, tc.want)
		}
	}
	for _, f := range rep.Findings {
		for _, skipped := range []string{"vendor", "node_modules", "docs", "Dockerfile.bin"} {
			if strings.Contains(f.Path, skipped) {
				t.Errorf("%s must not be read: %+v", skipped, f)
			}
		}
	}
	// the files on disk are untouched
	orig := snapshot(t, corpusDir)
	for rel, b := range snapshot(t, dir) {
		if !bytes.Equal(b, orig[rel]) {
			t.Errorf("--check changed %s", rel)
		}
	}
}

// TestMalformedInput: a malformed file gets an error naming it and the
// line, stays byte for byte as it was, and the other files are still pinned.
func TestMalformedInput(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"deploy/bad.yaml":         "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    image: nginx:1.27\n   bad: [unclosed\n",
		"Dockerfile":              "FROM alpine:3.20\nFORM nginx:1.27\n",
		"Containerfile":           "FROM alpine:3.20\nRUN <<EOF\necho never ends\n",
		"build/Dockerfile":        "FROM alpine:3.20 AS a b\n",
		"compose.yaml":            "services:\n  web:\n    image: nginx:1.27\n  - oops\n",
		"values.yaml":             "image: {repository: nginx, tag: \"1.27\"\n",
		"deploy/good.yaml":        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    image: nginx:1.27\n",
		"ok/Dockerfile":           "FROM alpine:3.20\n",
		"huge/kustomization.yaml": "images: []\n",
	}
	for rel, s := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// a file too large to read is an error too, not a hang
	big := filepath.Join(dir, "huge/kustomization.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("# padding\n"), 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := pin.Run(context.Background(), pin.Options{Paths: []string{dir}, Mode: pin.ModeWrite, LockPath: copyLock(t), Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		line int
		msg  string
	}{
		"deploy/bad.yaml":         {7, "malformed YAML"},
		"Dockerfile":              {2, "unknown instruction FORM"},
		"Containerfile":           {2, "never terminated"},
		"build/Dockerfile":        {1, "FROM needs an image"},
		"compose.yaml":            {4, "malformed YAML"},
		"values.yaml":             {1, "malformed YAML"},
		"huge/kustomization.yaml": {0, "larger than"},
	}
	got := map[string]pin.FileError{}
	for _, e := range rep.Errors {
		rel, _ := filepath.Rel(dir, e.Path)
		got[filepath.ToSlash(rel)] = e
	}
	for rel, w := range want {
		e, ok := got[rel]
		if !ok {
			t.Errorf("%s: no error reported", rel)
			continue
		}
		if (w.line != 0 && e.Line != w.line) || !strings.Contains(e.Message, w.msg) {
			t.Errorf("%s: got %s, want line %d and %q", rel, e.String(), w.line, w.msg)
		}
		b, _ := os.ReadFile(filepath.Join(dir, rel))
		if rel != "huge/kustomization.yaml" && string(b) != files[rel] {
			t.Errorf("%s was changed", rel)
		}
	}
	if len(rep.Errors) != len(want) {
		t.Errorf("errors: %v", rep.Errors)
	}
	for _, rel := range []string{"deploy/good.yaml", "ok/Dockerfile"} {
		b, _ := os.ReadFile(filepath.Join(dir, rel))
		if !strings.Contains(string(b), "registry.example.com/library/") {
			t.Errorf("%s next to malformed files was not pinned:\n%s", rel, b)
		}
	}
}

// TestServerUnreachable: with a lock file the run goes on offline and says
// so; without one it fails with ErrUnreachable.
func TestServerUnreachable(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM alpine:3.20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	down := server.NewClient("http://127.0.0.1:1", "")
	rep, err := pin.Run(context.Background(), pin.Options{Paths: []string{dir}, Mode: pin.ModeCheck, Resolver: down, LockPath: copyLock(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Offline || len(rep.Warnings) != 1 || rep.Count(pin.StatusUnpinned) != 1 {
		t.Errorf("fallback to the lock file: %+v", rep)
	}
	_, err = pin.Run(context.Background(), pin.Options{Paths: []string{dir}, Mode: pin.ModeCheck, Resolver: down})
	if !errors.Is(err, pin.ErrUnreachable) {
		t.Errorf("without a lock file: %v", err)
	}
}

// TestSymlinks: links are not followed; one leading out of the tree is noted.
func TestSymlinks(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "Dockerfile"), []byte("FROM alpine:3.20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(outside, "Dockerfile"), filepath.Join(dir, "Dockerfile")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "linked")); err != nil {
		t.Fatal(err)
	}
	rep, err := pin.Run(context.Background(), pin.Options{Paths: []string{dir}, Mode: pin.ModeWrite, LockPath: copyLock(t), Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "Dockerfile")); string(b) != "FROM alpine:3.20\n" {
		t.Errorf("a file outside the tree was rewritten through a symlink: %s", b)
	}
	if rep.Count(pin.StatusNote) != 2 || rep.Files != 0 {
		t.Errorf("symlinks: %+v", rep.Findings)
	}
}

// TestSARIF checks the shape code-scanning UIs need.
func TestSARIF(t *testing.T) {
	dir := copyTree(t, corpusDir)
	rep, err := pin.Run(context.Background(), pin.Options{Paths: []string{dir}, Mode: pin.ModeCheck, LockPath: copyLock(t), Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteSARIF(&buf, "test"); err != nil {
		t.Fatal(err)
	}
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID string `json:"id"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Level     string `json:"level"`
				Message   struct {
					Text string `json:"text"`
				} `json:"message"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region struct {
							StartLine   int `json:"startLine"`
							StartColumn int `json:"startColumn"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Tool.Driver.Rules) == 0 || len(log.Runs[0].Results) == 0 {
		t.Fatalf("SARIF shape: %s", buf.String()[:min(buf.Len(), 2000)])
	}
	rules := log.Runs[0].Tool.Driver.Rules
	for _, r := range log.Runs[0].Results {
		if r.RuleIndex >= len(rules) || rules[r.RuleIndex].ID != r.RuleID || r.Message.Text == "" || len(r.Locations) != 1 ||
			r.Locations[0].PhysicalLocation.Region.StartLine < 1 || r.Locations[0].PhysicalLocation.ArtifactLocation.URI == "" {
			t.Errorf("result: %+v", r)
		}
		if r.Level != "error" && r.Level != "note" {
			t.Errorf("level %q", r.Level)
		}
	}
}
