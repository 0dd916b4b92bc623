package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults of Spec and Limits.
const (
	DefaultDuration    = 30 * time.Second
	DefaultPids        = 256
	DefaultMemoryBytes = 512 << 20
	DefaultCPUPercent  = 100
	DefaultDiskBytes   = 256 << 20
	DefaultOpenFiles   = 1024
	outputMax          = 64 << 10
)

// Available tells why the sandbox cannot run on this host, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: the sandbox needs root (user-namespace mode is not implemented yet): run airlock profile as root", ErrUnsupported)
	}
	own, mounts, err := cgroupLayout()
	if err != nil {
		return err
	}
	if uni, ok := mounts[""]; !ok || !hasControllers(uni, own[""]) {
		for _, c := range cgroupControllers {
			if _, ok := mounts[c]; !ok {
				return fmt.Errorf("%w: no cgroup %s controller is available (neither delegated in cgroup v2 nor mounted as v1): the sandbox cannot limit the sample", ErrUnsupported, c)
			}
		}
	}
	if b, err := os.ReadFile("/proc/filesystems"); err == nil && !bytes.Contains(b, []byte("overlay")) {
		if err := exec.Command("modprobe", "overlay").Run(); err != nil {
			return fmt.Errorf("%w: the kernel has no overlayfs: load the overlay module", ErrUnsupported)
		}
	}
	return nil
}

func (s Spec) withDefaults() Spec {
	if s.Duration <= 0 {
		s.Duration = DefaultDuration
	}
	l := &s.Limits
	if l.Pids <= 0 {
		l.Pids = DefaultPids
	}
	if l.MemoryBytes <= 0 {
		l.MemoryBytes = DefaultMemoryBytes
	}
	if l.CPUPercent <= 0 {
		l.CPUPercent = DefaultCPUPercent
	}
	if l.DiskBytes <= 0 {
		l.DiskBytes = DefaultDiskBytes
	}
	if l.OpenFiles <= 0 {
		l.OpenFiles = DefaultOpenFiles
	}
	return s
}

// run is the supervisor's state of one sandboxed run.
type run struct {
	spec  Spec
	start time.Time

	mu      sync.Mutex
	events  []Event
	notes   []string
	exits   map[int]ExitStatus
	entry   int // PID (in the sandbox) of the entrypoint
	entryCh chan struct{}
	probes  map[int]chan ctrlMsg
	output  bytes.Buffer
	watched bool // exits come from procWatch
	dropped int  // events beyond MaxEvents
}

func (r *run) since() time.Duration { return time.Since(r.start) }

// MaxEvents bounds the events of one run: a sample that opens files in a
// loop must not exhaust the supervisor's memory. Later events are counted
// and dropped, and a note says so.
const MaxEvents = 200_000

func (r *run) emit(e Event) {
	r.mu.Lock()
	if len(r.events) < MaxEvents {
		r.events = append(r.events, e)
	} else {
		r.dropped++
	}
	r.mu.Unlock()
}

func (r *run) note(s string) {
	r.mu.Lock()
	r.notes = append(r.notes, s)
	r.mu.Unlock()
}

// Run executes spec's entrypoint in the sandbox until it exits (and the
// probes are done) or spec.Duration passes, then kills everything left and
// returns what happened. An error means the sandbox itself could not run;
// whatever the sampled program does is reported in the Result.
func Run(ctx context.Context, spec Spec) (*Result, error) {
	return runSandbox(ctx, spec, nil)
}

// runTrace tells tests what a run created on the host, so they can check
// it is all gone afterwards.
type runTrace struct {
	scratch    string
	cgroupDirs []string
	initPID    int
	pidNS      string // the sandbox's PID namespace, as readlink shows it
}

func runSandbox(ctx context.Context, spec Spec, rt *runTrace) (*Result, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	spec = spec.withDefaults()
	if spec.Rootfs == "" {
		return nil, errors.New("no rootfs: unpack the image first (sandbox.Unpack) and pass its directory as Spec.Rootfs")
	}
	rootfs, err := filepath.Abs(spec.Rootfs)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(rootfs); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("rootfs %s is not a directory: unpack the image first", spec.Rootfs)
	}
	cred, err := resolveUser(rootfs, spec.User)
	if err != nil {
		return nil, err
	}
	argv := append(append([]string{}, spec.Entrypoint...), spec.Cmd...)
	if len(argv) == 0 {
		return nil, errors.New("the image has neither an entrypoint nor a cmd: nothing to run")
	}
	dir := spec.WorkingDir
	if dir == "" {
		dir = "/"
	}
	if !strings.HasPrefix(dir, "/") {
		dir = "/" + dir
	}
	hostname := sandboxHostname()
	cfg := &initConfig{Rootfs: rootfs, Argv: argv, Env: imageEnv(spec.Env, cred.home, hostname), Dir: filepath.Clean(dir),
		UID: cred.uid, GID: cred.gid, Groups: cred.groups, Limits: spec.Limits, Trace: spec.Trace, Hostname: hostname}

	r := &run{spec: spec, start: time.Now(), exits: map[int]ExitStatus{}, entryCh: make(chan struct{}), probes: map[int]chan ctrlMsg{}}
	sweepScratch()
	scratch, err := os.MkdirTemp("", fmt.Sprintf("airlock-sandbox-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("create the sandbox's scratch directory: %w", err)
	}
	defer os.RemoveAll(scratch)
	cfg.Scratch = scratch
	if rt != nil {
		rt.scratch = scratch
	}

	cg, err := newCgroup(spec.Limits)
	if err != nil {
		return nil, err
	}
	if rt != nil {
		rt.cgroupDirs = cg.dirs()
	}
	defer func() {
		if err := cg.remove(); err != nil {
			slog.Warn("sandbox cgroup left behind", "err", err)
		}
	}()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ctrl := &ctrlConn{fd: fds[0]}
	defer unix.Close(fds[0])
	childCtrl := os.NewFile(uintptr(fds[1]), "ctrl")
	outR, outW, err := os.Pipe()
	if err != nil {
		childCtrl.Close()
		return nil, err
	}
	var stderr bytes.Buffer

	// The init is started from a goroutine whose thread lives for the whole
	// run: Pdeathsig fires when the starting thread exits.
	started := make(chan error, 1)
	waited := make(chan error, 1)
	var cmd *exec.Cmd
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd = &exec.Cmd{
			Path:       "/proc/self/exe",
			Args:       []string{initArg0},
			Env:        []string{initEnv + "=1"},
			ExtraFiles: []*os.File{childCtrl, outW},
			Stderr:     &limitedBuffer{buf: &stderr, max: 8192},
			SysProcAttr: &syscall.SysProcAttr{
				Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET,
				Pdeathsig:  syscall.SIGKILL,
			},
		}
		err := cmd.Start()
		started <- err
		if err != nil {
			return
		}
		waited <- cmd.Wait()
	}()
	err = <-started
	childCtrl.Close()
	outW.Close()
	if err != nil {
		outR.Close()
		return nil, fmt.Errorf("start the sandbox init: %w", err)
	}
	initPID := cmd.Process.Pid
	if rt != nil {
		rt.initPID = initPID
		rt.pidNS, _ = os.Readlink("/proc/" + strconv.Itoa(initPID) + "/ns/pid")
	}
	killed := false
	killInit := func() {
		if !killed {
			killed = true
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		_, _ = io.Copy(&limitedBuffer{buf: &r.output, max: outputMax, mu: &r.mu}, outR)
		outR.Close()
	}()
	var tr *tracer
	var nw *network
	tracing := false
	stopTracer := make(chan struct{})
	tracerDone := make(chan struct{})
	// The control socket is closed by a defer; its reader must be done by
	// then, or the descriptor number could be reused under it.
	ctrlDone := make(chan struct{})
	close(ctrlDone)
	cleanup := func() {
		killInit()
		<-waited
		<-ctrlDone
		close(stopTracer)
		if tracing {
			<-tracerDone
		}
		if nw != nil {
			nw.close()
		}
		<-outDone
	}
	fail := func(err error) (*Result, error) {
		cleanup()
		if s := strings.TrimSpace(stderr.String()); s != "" {
			err = fmt.Errorf("%w (init: %s)", err, s)
		}
		return nil, err
	}
	if err := cg.add(initPID); err != nil {
		return fail(err)
	}
	if err := ctrl.send(ctrlMsg{Type: msgConfig, Config: cfg}); err != nil {
		return fail(fmt.Errorf("configure the sandbox init: %w", err))
	}
	expect := func(typ string) ([]int, error) {
		m, fds, err := ctrl.recv()
		if err != nil {
			return nil, fmt.Errorf("the sandbox init failed before %s: %w", typ, err)
		}
		if m.Type == msgError {
			return nil, fmt.Errorf("set up the sandbox: %s", m.Error)
		}
		if m.Type != typ {
			return nil, fmt.Errorf("the sandbox init sent %q, want %q", m.Type, typ)
		}
		return fds, nil
	}
	if _, err := expect(msgSetupDone); err != nil {
		return fail(err)
	}
	tr = &tracer{fd: -1, emit: r.emit, since: r.since, initPID: initPID, pids: map[int]pidInfo{}}
	watch, err := newProcWatch(initPID, r.emit, r.since, tr.known)
	if err != nil {
		slog.Warn("no process events connector: exits of processes the init does not reap are not recorded", "err", err)
	} else {
		r.watched = true
		defer func() {
			if watch != nil {
				watch.close()
			}
		}()
	}
	nsPath := "/proc/" + strconv.Itoa(initPID) + "/ns/net"
	nw = newNetwork(nsPath, r.emit, r.since)
	if err := nw.start(); err != nil {
		return fail(err)
	}
	if spec.Trace {
		fds, err := expect(msgSeccomp)
		if err != nil {
			return fail(err)
		}
		if len(fds) != 1 {
			return fail(errors.New("the sandbox init did not pass the seccomp listener"))
		}
		tr.fd, tr.net, tr.joinCPU = fds[0], nw, cg.addThread
		tracing = true
		go func() { tr.serve(stopTracer); close(tracerDone) }()
	}
	if err := ctrl.send(ctrlMsg{Type: msgGo}); err != nil {
		return fail(err)
	}

	// From here on the init reports asynchronously.
	ctrlDone = make(chan struct{})
	startErr := make(chan error, 1)
	go func() {
		defer close(ctrlDone)
		for {
			m, fds, err := ctrl.recv()
			for _, f := range fds {
				unix.Close(f)
			}
			if err != nil {
				return
			}
			r.handleCtrl(m, startErr)
		}
	}()
	deadline := time.NewTimer(spec.Duration)
	defer deadline.Stop()
	select {
	case err := <-startErr:
		if err != nil {
			return fail(err)
		}
	case <-deadline.C:
		return fail(errors.New("the sandbox did not start the entrypoint within the time limit"))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	startup := r.since()

	sampler := newSampler(cg, spec.Limits.CPUPercent)
	go sampler.loop()

	probesDone := make(chan []ProbeResult, 1)
	go func() { probesDone <- r.runProbes(ctx, ctrl, nsPath) }()

	var probeResults []ProbeResult
	timedOut := false
	probesFinished := false
	entryExited := false
	entryCh := r.entryCh
	for !(probesFinished && entryExited) && !timedOut {
		select {
		case probeResults = <-probesDone:
			probesFinished = true
		case <-entryCh:
			entryExited = true
			entryCh = nil
		case <-deadline.C:
			timedOut = true
		case <-ctx.Done():
			timedOut = true
		}
	}
	r.mu.Lock()
	_, entryDone := r.exits[r.entry]
	r.mu.Unlock()

	// Kill the sandbox's processes but the init first, so it reports their
	// exits, then the init.
	killWorkload(cg, initPID)
	sampler.stop()
	killInit()
	<-waited
	<-ctrlDone
	close(stopTracer)
	if tracing {
		<-tracerDone
	}
	nw.close()
	<-outDone
	if watch != nil {
		if watch.close() {
			r.note("the process events connector overflowed: some exits are missing")
		}
		watch = nil
	}
	if !probesFinished {
		probeResults = <-probesDone
	}

	res, oom := cg.resources(sampler.peakPids)
	res.CPUBusySeconds = sampler.busy.Seconds()
	out := &Result{Mode: "root", StartupTime: startup, Wall: r.since(), Probes: probeResults, Resources: res}
	r.mu.Lock()
	out.Events = r.events
	out.Notes = r.notes
	out.Output = append([]byte(nil), r.output.Bytes()...)
	exit, ok := r.exits[r.entry]
	r.mu.Unlock()
	if ok && entryDone {
		out.Exit = exit
	} else {
		out.Exit = ExitStatus{Code: 128 + int(syscall.SIGKILL), Signal: int(syscall.SIGKILL), TimedOut: true}
	}
	if oom && out.Exit.Signal == int(syscall.SIGKILL) {
		out.Exit.OOM = true
	}
	sort.SliceStable(out.Events, func(i, j int) bool { return out.Events[i].Time < out.Events[j].Time })
	out.Notes = append(out.Notes, resultNotes(out, spec)...)
	if r.dropped > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("event limit (%d) reached: %d later events were dropped", MaxEvents, r.dropped))
	}
	return out, nil
}

// handleCtrl records one asynchronous message of the init.
func (r *run) handleCtrl(m ctrlMsg, startErr chan<- error) {
	switch m.Type {
	case msgStarted:
		r.mu.Lock()
		r.entry = m.PID
		_, done := r.exits[m.PID]
		r.mu.Unlock()
		if done {
			close(r.entryCh)
		}
		startErr <- nil
	case msgError:
		startErr <- fmt.Errorf("start the entrypoint: %s", m.Error)
	case msgExit:
		r.mu.Lock()
		// Without the process events connector only the init's own
		// children and orphans are seen exiting.
		if !r.watched && len(r.events) < MaxEvents {
			r.events = append(r.events, Event{Time: r.since(), Kind: EventExit, PID: m.PID, PPID: 1, ExitCode: m.Code, Signal: m.Signal})
		}
		st := ExitStatus{Code: m.Code, Signal: m.Signal}
		if m.Signal != 0 {
			st.Code = 128 + m.Signal // as shells and container engines report it
		}
		r.exits[m.PID] = st
		isEntry := r.entry != 0 && m.PID == r.entry
		r.mu.Unlock()
		if isEntry {
			close(r.entryCh)
		}
	case msgProbeDone:
		r.mu.Lock()
		ch := r.probes[m.ID]
		r.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
}

// killWorkload kills every process of the cgroup but the init and waits
// (briefly) until the init has reaped them.
func killWorkload(cg *cgroup, initPID int) {
	for i := 0; i < 200; i++ {
		left := 0
		for _, d := range cg.dirs() {
			b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				pid, err := strconv.Atoi(f)
				if err != nil || pid == initPID {
					continue
				}
				left++
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			break // the processes are the same in every hierarchy
		}
		if left == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runProbes sends the HTTP probes from inside the sandbox's network
// namespace (retrying until the port answers), then runs the probe commands
// inside the sandbox.
func (r *run) runProbes(ctx context.Context, ctrl *ctrlConn, nsPath string) []ProbeResult {
	end := r.start.Add(r.spec.Duration)
	var out []ProbeResult
	for _, p := range r.spec.HTTPProbes {
		out = append(out, r.httpProbe(ctx, nsPath, p, end))
	}
	if len(r.spec.ProbeCmds) > 0 {
		// Probe commands run after start-up: once the entrypoint has
		// exited, or after a settling time.
		settle := r.spec.Duration / 4
		if settle > 2*time.Second {
			settle = 2 * time.Second
		}
		timer := time.NewTimer(settle)
		select {
		case <-r.entryCh:
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
	}
	for i, argv := range r.spec.ProbeCmds {
		pr := ProbeResult{Kind: "cmd", Target: strings.Join(argv, " ")}
		ch := make(chan ctrlMsg, 1)
		id := i + 1
		r.mu.Lock()
		r.probes[id] = ch
		r.mu.Unlock()
		if err := ctrl.send(ctrlMsg{Type: msgProbe, ID: id, Argv: argv}); err != nil {
			pr.Error = err.Error()
			out = append(out, pr)
			continue
		}
		select {
		case m := <-ch:
			pr.Status, pr.Output, pr.Error = m.Code, m.Output, m.Error
			pr.OK = m.Error == "" && m.Code == 0 && m.Signal == 0
		case <-time.After(time.Until(end)):
			pr.Error = "the probe command did not finish within the run's duration"
		case <-ctx.Done():
			pr.Error = ctx.Err().Error()
		}
		out = append(out, pr)
	}
	return out
}

func (r *run) httpProbe(ctx context.Context, nsPath string, p HTTPProbe, end time.Time) ProbeResult {
	pathPart := p.Path
	if !strings.HasPrefix(pathPart, "/") {
		pathPart = "/" + pathPart
	}
	pr := ProbeResult{Kind: "http", Target: strconv.Itoa(p.Port) + pathPart}
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := inNetns(nsPath, func() error {
				var err error
				c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	url := "http://127.0.0.1:" + strconv.Itoa(p.Port) + pathPart
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			pr.Error = err.Error()
			return pr
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			pr.Status, pr.Output, pr.Error = resp.StatusCode, string(body), ""
			pr.OK = resp.StatusCode < 400
			return pr
		}
		pr.Error = err.Error()
		r.mu.Lock()
		_, exited := r.exits[r.entry]
		r.mu.Unlock()
		if exited && r.entry != 0 {
			pr.Error = "the entrypoint exited before the probe got an answer: " + err.Error()
			return pr
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return pr
		}
		if time.Now().After(end) {
			return pr
		}
	}
}

// sampler follows CPU use and the number of processes during the run.
type sampler struct {
	cg       *cgroup
	limit    float64 // CPU seconds per second
	peakPids int
	busy     time.Duration
	done     chan struct{}
	stopped  chan struct{}
}

func newSampler(cg *cgroup, cpuPercent int) *sampler {
	return &sampler{cg: cg, limit: float64(cpuPercent) / 100, done: make(chan struct{}), stopped: make(chan struct{})}
}

func (s *sampler) loop() {
	defer close(s.stopped)
	const every = 250 * time.Millisecond
	lastCPU, lastT := s.cg.cpuNanos(), time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			if n := s.cg.pidsCurrent(); n > s.peakPids {
				s.peakPids = n
			}
			cpu := s.cg.cpuNanos()
			dt := now.Sub(lastT)
			if dt > 0 && float64(cpu-lastCPU)/float64(dt) >= 0.9*s.limit {
				s.busy += dt
			}
			lastCPU, lastT = cpu, now
		}
	}
}

func (s *sampler) stop() {
	close(s.done)
	<-s.stopped
}

// resultNotes are the sandbox's own observations.
func resultNotes(res *Result, spec Spec) []string {
	var notes []string
	if res.Exit.TimedOut {
		notes = append(notes, fmt.Sprintf("still running at the time limit (%s): killed", spec.Duration))
	}
	if res.Resources.PidsLimitHit {
		notes = append(notes, fmt.Sprintf("process limit (%d) reached: a fork was refused", spec.Limits.Pids))
	}
	if res.Exit.OOM {
		notes = append(notes, fmt.Sprintf("killed for exceeding the memory limit (%d bytes)", spec.Limits.MemoryBytes))
	} else if res.Resources.MemoryLimitHit {
		notes = append(notes, fmt.Sprintf("memory limit (%d bytes) reached", spec.Limits.MemoryBytes))
	}
	denied := map[string]int{}
	for _, e := range res.Events {
		if e.Kind == EventDenied {
			denied[e.Name]++
		}
	}
	names := make([]string, 0, len(denied))
	for n := range denied {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		notes = append(notes, fmt.Sprintf("refused %s (%d times)", n, denied[n]))
	}
	if res.Resources.CPUBusySeconds >= 5 {
		notes = append(notes, fmt.Sprintf("CPU pegged at %d%% for %.0f s", spec.Limits.CPUPercent, res.Resources.CPUBusySeconds))
	}
	return notes
}

// limitedBuffer keeps the first max bytes and discards the rest.
type limitedBuffer struct {
	buf *bytes.Buffer
	max int
	mu  *sync.Mutex
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.mu != nil {
		b.mu.Lock()
		defer b.mu.Unlock()
	}
	if room := b.max - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}
