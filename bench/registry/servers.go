package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/host"
)

// distributionVersion is the peer the issue names; .ci/tools.sh pins the same.
const distributionVersion = "v3.1.2"

// server is a registry process this run started.
type server struct {
	name string
	cmd  *exec.Cmd
	url  string // http://127.0.0.1:PORT
	data string
	log  string
	done <-chan struct{}
}

func moduleRoot(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run the benchmark inside the airlock repository (go run ./bench/registry)")
	}
	b, err := os.ReadFile(mod)
	if err != nil {
		return "", err
	}
	if !bytes.Contains(b, []byte("module github.com/airlock-dev/airlock\n")) {
		return "", fmt.Errorf("%s is not airlock's go.mod; run the benchmark inside the airlock repository", mod)
	}
	return filepath.Dir(mod), nil
}

// distributionBinary finds distribution's registry: the -registry flag, then
// AIRLOCK_TEST_TOOLS and PATH, and last .ci/tools.sh, which installs it.
func distributionBinary(ctx context.Context, root, flagPath string) (path, version string, err error) {
	var candidates []string
	if flagPath != "" {
		candidates = []string{flagPath}
	} else {
		if d := os.Getenv("AIRLOCK_TEST_TOOLS"); d != "" {
			candidates = append(candidates, filepath.Join(d, "registry"))
		}
		if p, err := exec.LookPath("registry"); err == nil {
			candidates = append(candidates, p)
		}
	}
	for _, c := range candidates {
		if v, err := binaryVersion(ctx, c); err == nil && (flagPath != "" || strings.Contains(v, "distribution/v3 "+distributionVersion)) {
			return c, v, nil
		}
	}
	if flagPath != "" {
		return "", "", fmt.Errorf("-registry %s: not a runnable registry binary", flagPath)
	}
	host.Logf("installing distribution %s with .ci/tools.sh", distributionVersion)
	tctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(tctx, filepath.Join(root, ".ci", "tools.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf(".ci/tools.sh: %w", err)
	}
	p := filepath.Join(strings.TrimSpace(string(out)), "registry")
	v, err := binaryVersion(ctx, p)
	if err != nil {
		return "", "", fmt.Errorf("registry from .ci/tools.sh: %w", err)
	}
	return p, v, nil
}

func binaryVersion(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", err
	}
	// "PATH github.com/distribution/distribution/v3 v3.1.2+unknown": keep module and version.
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return "", fmt.Errorf("%s --version: unexpected %q", path, out)
	}
	return strings.Join(f[1:], " "), nil
}

func buildAirlock(ctx context.Context, root, out string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/airlock")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/airlock: %w", err)
	}
	return nil
}

// startDistribution runs distribution's registry with filesystem storage, delete
// enabled and logging as quiet as airlock's own distribution handlers.
func startDistribution(ctx context.Context, bin, dir string) (*server, error) {
	addr, err := host.FreeAddr()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "storage")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: airlock-bench
`, data, addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	// distribution v3 traces every request with OpenTelemetry and by default
	// exports to an OTLP collector on localhost; with none there, that export
	// would only add failed connections. "none" keeps the peer at its best.
	cmd.Env = append(host.CleanEnv("REGISTRY_", "OTEL_"), "OTEL_TRACES_EXPORTER=none")
	return startServer(ctx, "distribution", cmd, "http://"+addr, data, filepath.Join(dir, "registry.log"))
}

// startAirlock runs `airlock serve` with a fresh data directory; repositories
// matching unvetted skip the gate.
func startAirlock(ctx context.Context, bin, data, unvetted string) (*server, error) {
	addr, err := host.FreeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data", data, "--allow-unvetted", unvetted, "--log-level", "error")
	cmd.Env = host.CleanEnv("AIRLOCK_")
	return startServer(ctx, "airlock", cmd, "http://"+addr, data, filepath.Join(filepath.Dir(data), "airlock.log"))
}

func startServer(ctx context.Context, name string, cmd *exec.Cmd, url, data, logPath string) (*server, error) {
	done, err := host.StartLogged(name, cmd, logPath)
	if err != nil {
		return nil, err
	}
	s := &server{name: name, cmd: cmd, url: url, data: data, log: logPath, done: done}
	if err := s.waitReady(ctx); err != nil {
		s.stop()
		return nil, err
	}
	host.Logf("%s listening on %s (pid %d)", name, url, cmd.Process.Pid)
	return s, nil
}

// waitReady polls /v2/ until the server answers anything at all.
func (s *server) waitReady(ctx context.Context) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("%s exited during start: %s", s.name, s.logTail())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if resp, err := c.Get(s.url + "/v2/"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer on %s within 30s: %s", s.name, s.url, s.logTail())
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop ends the process this run started: SIGTERM, then SIGKILL after 10s.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "(no output)"
	}
	return string(b)
}
