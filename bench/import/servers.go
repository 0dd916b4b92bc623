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

// Pinned versions of the peers: .ci/tools.sh pins the same registry and
// crane; skopeo is Debian's package (bench/import/skopeo.sh), because the Go
// module proxy reachable here refuses github.com/containers/skopeo.
const (
	distributionVersion = "v3.1.2"
	craneVersion        = "v0.22.1"
	skopeoVersion       = "1.9.3"
)

// tools are the peer binaries of the run and their versions.
type tools struct {
	registry, registryVersion string
	crane, craneVersion       string
	skopeo, skopeoVersion     string
	skopeoMissing             string // why skopeo is left out, if it is
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
		return "", fmt.Errorf("run the benchmark inside the airlock repository (go run ./bench/import)")
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

// findTools looks for each peer given by flag, then in AIRLOCK_TEST_TOOLS and
// on PATH at its pinned version, and installs what is missing with
// .ci/tools.sh (registry, crane) or bench/import/skopeo.sh.
func findTools(ctx context.Context, root string, o options) (*tools, error) {
	t := &tools{}
	var ciTools string // bin directory of .ci/tools.sh, once run
	ciBin := func(name string) (string, error) {
		if ciTools == "" {
			host.Logf("looking up the pinned peer tools with .ci/tools.sh (it installs what is missing)")
			out, err := runScript(ctx, filepath.Join(root, ".ci", "tools.sh"))
			if err != nil {
				return "", err
			}
			ciTools = out
		}
		return filepath.Join(ciTools, name), nil
	}

	var err error
	t.registry, t.registryVersion, err = findBinary(ctx, "registry", o.registry, registryVersionOf, "distribution/v3 "+distributionVersion, ciBin)
	if err != nil {
		return nil, err
	}
	host.Logf("distribution: %s (%s)", t.registry, t.registryVersion)
	t.crane, t.craneVersion, err = findBinary(ctx, "crane", o.crane, craneVersionOf, craneVersion, ciBin)
	if err != nil {
		return nil, err
	}
	host.Logf("crane: %s (%s)", t.crane, t.craneVersion)

	if o.skopeo == "none" {
		t.skopeoMissing = "left out with -skopeo none"
		return t, nil
	}
	t.skopeo, t.skopeoVersion, err = findBinary(ctx, "skopeo", o.skopeo, skopeoVersionOf, skopeoVersion, func(string) (string, error) {
		host.Logf("installing skopeo %s with bench/import/skopeo.sh", skopeoVersion)
		return runScript(ctx, filepath.Join(root, "bench", "import", "skopeo.sh"))
	})
	if err != nil {
		// The issue asks for both peers; without skopeo the table says so.
		t.skopeo, t.skopeoMissing = "", err.Error()
		host.Logf("skopeo left out: %v", err)
		return t, nil
	}
	host.Logf("skopeo: %s (%s)", t.skopeo, t.skopeoVersion)
	return t, nil
}

// findBinary returns the flag's binary (any version), else the first of
// AIRLOCK_TEST_TOOLS and PATH whose version contains want, else what install gives.
func findBinary(ctx context.Context, name, flagPath string, version func(context.Context, string) (string, error), want string, install func(string) (string, error)) (string, string, error) {
	if flagPath != "" {
		v, err := version(ctx, flagPath)
		if err != nil {
			return "", "", fmt.Errorf("-%s %s: not a runnable %s binary: %w", name, flagPath, name, err)
		}
		return flagPath, v, nil
	}
	var candidates []string
	if d := os.Getenv("AIRLOCK_TEST_TOOLS"); d != "" {
		candidates = append(candidates, filepath.Join(d, name))
	}
	if p, err := exec.LookPath(name); err == nil {
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		if v, err := version(ctx, c); err == nil && strings.Contains(v, want) {
			return c, v, nil
		}
	}
	p, err := install(name)
	if err != nil {
		return "", "", err
	}
	if !filepath.IsAbs(p) || filepath.Base(p) != name {
		p = filepath.Join(p, name)
	}
	v, err := version(ctx, p)
	if err != nil {
		return "", "", fmt.Errorf("%s after installing: %w", name, err)
	}
	if !strings.Contains(v, want) {
		return "", "", fmt.Errorf("%s after installing is %s, not %s", name, v, want)
	}
	return p, v, nil
}

// runScript runs an install script and returns the path it prints.
func runScript(ctx context.Context, script string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func commandOutput(ctx context.Context, path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).Output()
	return strings.TrimSpace(string(out)), err
}

// registryVersionOf keeps module and version of "PATH github.com/distribution/distribution/v3 v3.1.2+unknown".
func registryVersionOf(ctx context.Context, path string) (string, error) {
	out, err := commandOutput(ctx, path, "--version")
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	if len(f) < 3 {
		return "", fmt.Errorf("%s --version: unexpected %q", path, out)
	}
	return strings.Join(f[1:], " "), nil
}

func craneVersionOf(ctx context.Context, path string) (string, error) {
	return commandOutput(ctx, path, "version")
}

// skopeoVersionOf is "skopeo version 1.9.3", with the Debian package version when it is one.
func skopeoVersionOf(ctx context.Context, path string) (string, error) {
	out, err := commandOutput(ctx, path, "--version")
	if err != nil {
		return "", err
	}
	if deb, err := commandOutput(ctx, "dpkg-query", "-S", path); err == nil && strings.HasPrefix(deb, "skopeo:") {
		if v, err := commandOutput(ctx, "dpkg-query", "-W", "-f=${Version}", "skopeo"); err == nil {
			out += " (Debian " + v + ")"
		}
	}
	return out, nil
}

// buildAirlock builds the binary as `make build` does, version included.
func buildAirlock(ctx context.Context, root, out, version string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X github.com/airlock-dev/airlock/internal/server.Version="+version, "-o", out, "./cmd/airlock")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/airlock: %w", err)
	}
	return nil
}

// server is a registry process this run started.
type server struct {
	name string
	cmd  *exec.Cmd
	host string // 127.0.0.1:PORT
	dir  string // everything the server wrote
	log  string
	done <-chan struct{}
}

// startDistribution runs distribution's registry with filesystem storage in
// dir, logging as quietly as airlock's own distribution handlers.
func startDistribution(ctx context.Context, bin, dir, name string) (*server, error) {
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
	return startServer(ctx, name, cmd, addr, dir)
}

// startAirlock runs `airlock serve` with a fresh data directory in dir.
func startAirlock(ctx context.Context, bin, dir string) (*server, error) {
	addr, err := host.FreeAddr()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data", data, "--log-level", "error")
	cmd.Env = append(host.CleanEnv("AIRLOCK_"), "HOME="+dir) // no docker credentials of this machine
	return startServer(ctx, "airlock", cmd, addr, dir)
}

func startServer(ctx context.Context, name string, cmd *exec.Cmd, addr, dir string) (*server, error) {
	logPath := filepath.Join(dir, name+".log")
	done, err := host.StartLogged(name, cmd, logPath)
	if err != nil {
		return nil, err
	}
	s := &server{name: name, cmd: cmd, host: addr, dir: dir, log: logPath, done: done}
	if err := s.waitReady(ctx); err != nil {
		s.stop()
		return nil, err
	}
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
		if resp, err := c.Get("http://" + s.host + "/v2/"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer on %s within 30s: %s", s.name, s.host, s.logTail())
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
