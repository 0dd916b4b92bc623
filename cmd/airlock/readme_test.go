package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadmeQuickStart runs the README's quick start verbatim in a copy of the
// repository, with HOME and GOPATH in a temporary directory, and checks that
// it shows the denial, the approval and a verified audit log.
func TestReadmeQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds airlock and crane")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Quick start.*?```sh\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no quick start shell block")
	}
	script := string(m[1])

	tmp := t.TempDir()
	repo := filepath.Join(tmp, "repo")
	cp := exec.Command("cp", "-r", "../..", repo)
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("copy repo: %v\n%s", err, out)
	}
	_ = os.RemoveAll(filepath.Join(repo, "airlock-data"))
	goenv := func(k string) string {
		out, err := exec.Command("go", "env", k).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	home := filepath.Join(tmp, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(),
		"HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"GOPATH="+filepath.Join(tmp, "gopath"), "GOMODCACHE="+goenv("GOMODCACHE"), "GOCACHE="+goenv("GOCACHE"),
		"AIRLOCK_TOKEN=", "AIRLOCK_SERVER=", "GOFLAGS=-buildvcs=false",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the server, if the script did not stop it
	text := out.String()
	t.Logf("quick start output:\n%s", text)
	if err != nil {
		t.Fatalf("quick start failed: %v", err)
	}
	for _, want := range []string{
		"quarantined",
		"DENIED",
		"pending vetting; approve with `airlock approve sha256:",
		"approved",
		"pulled",
		"quarantined → approved  by admin: quick start",
		"audit log verifies",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("quick start output lacks %q", want)
		}
	}
}
