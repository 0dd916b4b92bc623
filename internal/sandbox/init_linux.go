package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Go cannot fork without exec, so Run re-executes /proc/self/exe in new
// namespaces with initEnv set; this package's init function notices and
// becomes the sandbox's PID 1 instead of running the program's main. It
// works the same in the airlock binary and in any test binary that imports
// the package.
const (
	initEnv  = "AIRLOCK_SANDBOX_INIT"
	initArg0 = "airlock-sandbox-init"
	ctrlFD   = 3
	outFD    = 4
)

func init() {
	if os.Getenv(initEnv) != "1" || os.Getpid() != 1 {
		return
	}
	os.Exit(sandboxInit())
}

// sandboxInit is PID 1 of the sandbox: it builds the root, starts the
// entrypoint and probe commands from one locked thread that carries the
// seccomp filter, reaps every process and reports their exits.
func sandboxInit() int {
	// A sample with CAP_KILL could otherwise end the sandbox early by
	// signalling its init.
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU)
	// The control socket and the output pipe must not leak into the
	// sandboxed processes (a sample could forge messages on it).
	// Nor may anything the supervisor's own parent leaked to it.
	if err := unix.CloseRange(ctrlFD, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return 3
	}
	ctrl := &ctrlConn{fd: ctrlFD}
	m, _, err := ctrl.recv()
	if err != nil || m.Type != msgConfig || m.Config == nil {
		return 3
	}
	cfg := m.Config
	fail := func(err error) int {
		_ = ctrl.send(ctrlMsg{Type: msgError, Error: err.Error()})
		return 3
	}
	if err := setupRoot(cfg); err != nil {
		return fail(err)
	}
	if err := ctrl.send(ctrlMsg{Type: msgSetupDone}); err != nil {
		return 3
	}

	r := &reaper{waiters: map[int]chan syscall.WaitStatus{}, done: map[int]syscall.WaitStatus{}, ctrl: ctrl}
	sigc := make(chan os.Signal, 64)
	signal.Notify(sigc, syscall.SIGCHLD)
	go r.loop(sigc)

	sp := &spawner{cfg: cfg, reqs: make(chan spawnReq)}
	ready := make(chan error, 1)
	go sp.run(ready, ctrl)
	if err := <-ready; err != nil {
		return fail(err)
	}
	m, _, err = ctrl.recv()
	if err != nil || m.Type != msgGo {
		return 3
	}
	pid, err := sp.spawn(cfg.Argv, outFD, outFD)
	if err != nil {
		return fail(err)
	}
	if err := ctrl.send(ctrlMsg{Type: msgStarted, PID: pid}); err != nil {
		return 3
	}
	for {
		m, _, err := ctrl.recv()
		if err != nil {
			return 0
		}
		if m.Type == msgProbe {
			go runProbe(ctrl, sp, r, m)
		}
	}
}

// runProbe runs one probe command and reports its exit code and output.
func runProbe(ctrl *ctrlConn, sp *spawner, r *reaper, m ctrlMsg) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		_ = ctrl.send(ctrlMsg{Type: msgProbeDone, ID: m.ID, Error: err.Error()})
		return
	}
	rd := os.NewFile(uintptr(p[0]), "probe")
	r.mu.Lock() // register before the child can exit
	pid, err := sp.spawn(m.Argv, p[1], p[1])
	var ch chan syscall.WaitStatus
	if err == nil {
		ch = r.waitFor(pid)
	}
	r.mu.Unlock()
	unix.Close(p[1])
	if err != nil {
		rd.Close()
		_ = ctrl.send(ctrlMsg{Type: msgProbeDone, ID: m.ID, Error: err.Error()})
		return
	}
	out := make([]byte, 4096)
	n := 0
	for n < len(out) {
		k, err := rd.Read(out[n:])
		n += k
		if err != nil {
			break
		}
	}
	go func() { // drain the rest so the probe does not block on a full pipe
		buf := make([]byte, 4096)
		for {
			if _, err := rd.Read(buf); err != nil {
				rd.Close()
				return
			}
		}
	}()
	ws := <-ch
	_ = ctrl.send(ctrlMsg{Type: msgProbeDone, ID: m.ID, PID: pid, Code: ws.ExitStatus(), Signal: signalOf(ws), Output: string(out[:n])})
}

func signalOf(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return int(ws.Signal())
	}
	return 0
}

// reaper waits for every process of the sandbox (PID 1 inherits orphans).
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
	done    map[int]syscall.WaitStatus
	ctrl    *ctrlConn
}

// waitFor must be called with mu held.
func (r *reaper) waitFor(pid int) chan syscall.WaitStatus {
	ch := make(chan syscall.WaitStatus, 1)
	if ws, ok := r.done[pid]; ok {
		delete(r.done, pid)
		ch <- ws
		return ch
	}
	r.waiters[pid] = ch
	return ch
}

func (r *reaper) loop(sigc chan os.Signal) {
	for range sigc {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG|unix.WALL, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
			_ = r.ctrl.send(ctrlMsg{Type: msgExit, PID: pid, Code: ws.ExitStatus(), Signal: signalOf(ws)})
			r.mu.Lock()
			if ch, ok := r.waiters[pid]; ok {
				delete(r.waiters, pid)
				ch <- ws
			} else if len(r.done) < 4096 {
				r.done[pid] = ws
			}
			r.mu.Unlock()
		}
	}
}

// spawner owns the one locked OS thread that drops capabilities, carries
// the seccomp filter and forks every sandboxed process, so they all inherit
// exactly that thread's restrictions.
type spawner struct {
	cfg     *initConfig
	reqs    chan spawnReq
	devnull int
}

type spawnReq struct {
	argv   []string
	stdout int
	stderr int
	res    chan spawnRes
}

type spawnRes struct {
	pid int
	err error
}

func (s *spawner) run(ready chan<- error, ctrl *ctrlConn) {
	runtime.LockOSThread() // never unlocked: the thread dies with init
	if err := s.restrictThread(ctrl); err != nil {
		ready <- err
		return
	}
	ready <- nil
	for req := range s.reqs {
		pid, err := s.forkExec(req)
		req.res <- spawnRes{pid, err}
	}
}

func (s *spawner) spawn(argv []string, stdout, stderr int) (int, error) {
	res := make(chan spawnRes, 1)
	s.reqs <- spawnReq{argv: argv, stdout: stdout, stderr: stderr, res: res}
	r := <-res
	return r.pid, r.err
}

// restrictThread gives this thread its own cgroup namespace, the image
// user's capability bounding set, and the seccomp filter.
func (s *spawner) restrictThread(ctrl *ctrlConn) error {
	var err error
	if s.devnull, err = unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		return fmt.Errorf("open /dev/null: %w", err)
	}
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("new cgroup namespace: %w", err)
	}
	if err := dropCapabilities(s.cfg.UID == 0); err != nil {
		return err
	}
	var rl syscall.Rlimit
	rl = syscall.Rlimit{Cur: uint64(s.cfg.Limits.OpenFiles), Max: uint64(s.cfg.Limits.OpenFiles)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("set RLIMIT_NOFILE: %w", err)
	}
	_ = syscall.Setrlimit(unix.RLIMIT_CORE, &syscall.Rlimit{})
	fd, err := installFilter(s.cfg.Trace)
	if err != nil {
		return err
	}
	if fd >= 0 {
		err := ctrl.send(ctrlMsg{Type: msgSeccomp}, fd)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("pass the seccomp listener: %w", err)
		}
	}
	return nil
}

func (s *spawner) forkExec(req spawnReq) (int, error) {
	if len(req.argv) == 0 {
		return 0, errors.New("nothing to run: the image has neither an entrypoint nor a cmd")
	}
	bin, err := lookPath(req.argv[0], s.cfg.Env)
	if err != nil {
		return 0, err
	}
	devnull := s.devnull
	groups := s.cfg.Groups
	if groups == nil {
		groups = []uint32{}
	}
	pid, err := syscall.ForkExec(bin, req.argv, &syscall.ProcAttr{
		Dir:   s.cfg.Dir,
		Env:   s.cfg.Env,
		Files: []uintptr{uintptr(devnull), uintptr(req.stdout), uintptr(req.stderr)},
		Sys: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: s.cfg.UID, Gid: s.cfg.GID, Groups: groups},
			Setsid:     true,
			Pdeathsig:  syscall.SIGKILL,
		},
	})
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", req.argv[0], err)
	}
	return pid, nil
}

// lookPath finds argv0 in the image's PATH, inside the (already pivoted) root.
func lookPath(argv0 string, env []string) (string, error) {
	if strings.Contains(argv0, "/") {
		return argv0, nil
	}
	pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		p := path.Join(d, argv0)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("executable %q is not in the image's PATH (%s): fix the image's entrypoint or cmd", argv0, pathEnv)
}
