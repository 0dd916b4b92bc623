package servertest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the airlock binary built for the tests that are running; the
// last of them to finish removes it, so nothing is left in the temp directory.
var binary struct {
	sync.Mutex
	dir   string
	users int
}

// Binary builds cmd/airlock once for all tests running at the same time and
// returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	binary.Lock()
	defer binary.Unlock()
	if binary.users == 0 {
		gobin, err := exec.LookPath("go")
		if err != nil {
			t.Fatalf("building airlock needs the go command: %v", err)
		}
		dir, err := os.MkdirTemp("", "airlock-bin-")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, gobin, "build", "-o", filepath.Join(dir, "airlock"), "github.com/airlock-dev/airlock/cmd/airlock")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			t.Fatalf("go build ./cmd/airlock: %v\n%s", err, out)
		}
		binary.dir = dir
	}
	binary.users++
	dir := binary.dir
	t.Cleanup(func() {
		binary.Lock()
		defer binary.Unlock()
		if binary.users--; binary.users == 0 {
			os.RemoveAll(binary.dir)
			binary.dir = ""
		}
	})
	return filepath.Join(dir, "airlock")
}

// Process is `airlock serve` running as a child process, for tests that kill
// and restart it.
type Process struct {
	URL        string // http://127.0.0.1:PORT
	Host       string // 127.0.0.1:PORT
	Data       string
	AdminToken string

	bin    string
	args   []string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *syncBuffer
}

// StartProcess runs bin serve on addr (empty: a free loopback port) with data
// as data directory and extra flags args, and waits until /healthz answers.
// The process is stopped when the test ends; its log is shown if the test failed.
func StartProcess(t testing.TB, bin, data, addr string, args ...string) *Process {
	t.Helper()
	if addr != "" {
		p, err := startProcess(t, bin, data, addr, args)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A free port can be taken by someone else before the server binds it; try a few.
	var err error
	for range 3 {
		var p *Process
		if p, err = startProcess(t, bin, data, freeAddr(t), args); err == nil {
			return p
		}
	}
	t.Fatal(err)
	return nil
}

// Restart starts the server again on the same address, data and flags. The
// previous process must have exited (Kill).
func (p *Process) Restart(t testing.TB) *Process {
	t.Helper()
	return StartProcess(t, p.bin, p.Data, p.Host, p.args...)
}

// Kill ends the process with SIGKILL, as a crash or the OOM killer would, and waits for it.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	<-p.exited
}

// Log returns what the process wrote to stderr so far.
func (p *Process) Log() string { return p.log.String() }

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startProcess(t testing.TB, bin, data, addr string, args []string) (*Process, error) {
	p := &Process{URL: "http://" + addr, Host: addr, Data: data, bin: bin, args: args, exited: make(chan struct{}), log: &syncBuffer{}}
	p.cmd = exec.Command(bin, append([]string{"serve", "--addr", addr, "--data", data,
		// Many servers run at once: the admission webhook takes any free loopback port.
		"--webhook-addr", "127.0.0.1:0"}, args...)...)
	// The developer's AIRLOCK_* settings must not reach the server under test.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AIRLOCK_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
		if t.Failed() {
			t.Logf("airlock serve --addr %s log:\n%s", addr, p.log.String())
		}
	})
	if err := p.waitHealthy(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		return nil, err
	}
	p.AdminToken = strings.TrimSpace(string(b))
	// Whoever answered /healthz must be this server, not another one that took the port.
	req, err := http.NewRequest(http.MethodGet, p.URL+"/api/v1/whoami", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+p.AdminToken)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("the server on " + addr + " does not know the admin token of " + data + ": " + resp.Status)
	}
	return p, nil
}

// waitHealthy polls /healthz until it answers 200 or the process exits. The
// bound only keeps a hung start from hanging the test run.
func (p *Process) waitHealthy() error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return errors.New("airlock serve exited before it was healthy:\n" + p.log.String())
		default:
		}
		resp, err := c.Get(p.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return errors.New("airlock serve did not become healthy:\n" + p.log.String())
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
