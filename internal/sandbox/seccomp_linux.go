package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp filter traps only the calls a profile needs (SECCOMP_RET_USER_NOTIF:
// the supervisor reads the arguments and lets the call continue) and refuses
// the calls no image has a reason to make (EPERM, recorded as EventDenied).
// Everything else runs at full speed without the supervisor.

// traced are the calls reported to the supervisor, on every architecture.
var traced = map[uint32]string{
	unix.SYS_EXECVE:    "execve",
	unix.SYS_EXECVEAT:  "execveat",
	unix.SYS_OPENAT:    "openat",
	unix.SYS_OPENAT2:   "openat2",
	unix.SYS_UNLINKAT:  "unlinkat",
	unix.SYS_FCHMODAT:  "fchmodat",
	unix.SYS_FCHMODAT2: "fchmodat2",
	unix.SYS_RENAMEAT:  "renameat",
	unix.SYS_RENAMEAT2: "renameat2",
	unix.SYS_MKDIRAT:   "mkdirat",
	unix.SYS_SYMLINKAT: "symlinkat",
	unix.SYS_CONNECT:   "connect",
	unix.SYS_BIND:      "bind",
	unix.SYS_LISTEN:    "listen",
}

// denied are refused with EPERM: they change the kernel or the machine, or
// reach other processes' memory, or leave the sandbox's namespaces.
var denied = map[uint32]string{
	unix.SYS_MOUNT:             "mount",
	unix.SYS_UMOUNT2:           "umount2",
	unix.SYS_PIVOT_ROOT:        "pivot_root",
	unix.SYS_PTRACE:            "ptrace",
	unix.SYS_PROCESS_VM_READV:  "process_vm_readv",
	unix.SYS_PROCESS_VM_WRITEV: "process_vm_writev",
	unix.SYS_KEXEC_LOAD:        "kexec_load",
	unix.SYS_KEXEC_FILE_LOAD:   "kexec_file_load",
	unix.SYS_INIT_MODULE:       "init_module",
	unix.SYS_FINIT_MODULE:      "finit_module",
	unix.SYS_DELETE_MODULE:     "delete_module",
	unix.SYS_BPF:               "bpf",
	unix.SYS_PERF_EVENT_OPEN:   "perf_event_open",
	unix.SYS_SWAPON:            "swapon",
	unix.SYS_SWAPOFF:           "swapoff",
	unix.SYS_REBOOT:            "reboot",
	unix.SYS_SETNS:             "setns",
	unix.SYS_UNSHARE:           "unshare",
	unix.SYS_OPEN_BY_HANDLE_AT: "open_by_handle_at",
	unix.SYS_NAME_TO_HANDLE_AT: "name_to_handle_at",
	unix.SYS_KEYCTL:            "keyctl",
	unix.SYS_ADD_KEY:           "add_key",
	unix.SYS_REQUEST_KEY:       "request_key",
	unix.SYS_USERFAULTFD:       "userfaultfd",
	unix.SYS_ACCT:              "acct",
	unix.SYS_SETTIMEOFDAY:      "settimeofday",
	unix.SYS_CLOCK_SETTIME:     "clock_settime",
	unix.SYS_CLOCK_ADJTIME:     "clock_adjtime",
	unix.SYS_ADJTIMEX:          "adjtimex",
	unix.SYS_QUOTACTL:          "quotactl",
	unix.SYS_FSOPEN:            "fsopen",
	unix.SYS_FSCONFIG:          "fsconfig",
	unix.SYS_FSMOUNT:           "fsmount",
	unix.SYS_FSPICK:            "fspick",
	unix.SYS_MOVE_MOUNT:        "move_mount",
	unix.SYS_OPEN_TREE:         "open_tree",
	unix.SYS_MOUNT_SETATTR:     "mount_setattr",
	unix.SYS_SYSLOG:            "syslog",
	unix.SYS_PERSONALITY:       "personality",
	// io_uring opens files and connects sockets without system calls a
	// seccomp filter can see.
	unix.SYS_IO_URING_SETUP:    "io_uring_setup",
	unix.SYS_IO_URING_ENTER:    "io_uring_enter",
	unix.SYS_IO_URING_REGISTER: "io_uring_register",
}

const cloneNSFlags = unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
	unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP

func syscallName(nr uint32) string {
	if n, ok := traced[nr]; ok {
		return n
	}
	if n, ok := tracedLegacy[nr]; ok {
		return n
	}
	if n, ok := denied[nr]; ok {
		return n
	}
	if n, ok := deniedLegacy[nr]; ok {
		return n
	}
	if nr == unix.SYS_CLONE {
		return "clone"
	}
	if nr == unix.SYS_SENDTO {
		return "sendto"
	}
	return "syscall " + strconv.Itoa(int(nr))
}

func bpfStmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
func bpfJump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, K: k, Jt: jt, Jf: jf}
}

// buildFilter assembles the classic BPF program. trace selects user
// notification for traced and denied calls; without it traced calls run
// freely and denied calls fail with EPERM silently.
func buildFilter(trace bool) []unix.SockFilter {
	const (
		ldW   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		jset  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
		allow = unix.SECCOMP_RET_ALLOW
	)
	eperm := uint32(unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM))
	enosys := uint32(unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS))
	notify := uint32(unix.SECCOMP_RET_USER_NOTIF)
	deny := eperm
	if trace {
		deny = notify
	}
	p := []unix.SockFilter{
		bpfStmt(ldW, 4), // arch
		bpfJump(jeq, auditArch, 1, 0),
		bpfStmt(ret, unix.SECCOMP_RET_KILL_PROCESS),
		bpfStmt(ldW, 0), // nr
	}
	if x32Bit != 0 {
		p = append(p, bpfJump(jge, x32Bit, 0, 1), bpfStmt(ret, eperm))
	}
	// clone with namespace flags is refused (clone3 hides its flags in
	// memory, so it reports ENOSYS and libcs fall back to clone).
	p = append(p,
		bpfJump(jeq, unix.SYS_CLONE3, 0, 1), bpfStmt(ret, enosys),
		bpfJump(jeq, unix.SYS_CLONE, 0, 4),
		bpfStmt(ldW, 16), // args[0], low word (little endian)
		bpfJump(jset, cloneNSFlags, 0, 1),
		bpfStmt(ret, deny),
		bpfStmt(ret, allow),
	)
	if trace {
		// sendto with a destination (unconnected UDP): the only way to
		// reach an address without connect.
		p = append(p,
			bpfJump(jeq, unix.SYS_SENDTO, 0, 6),
			bpfStmt(ldW, 16+4*8), // args[4], low word
			bpfJump(jeq, 0, 0, 3),
			bpfStmt(ldW, 16+4*8+4), // high word
			bpfJump(jeq, 0, 0, 1),
			bpfStmt(ret, allow),
			bpfStmt(ret, notify),
		)
	}
	add := func(m map[uint32]string, action uint32) {
		nrs := make([]uint32, 0, len(m))
		for nr := range m {
			nrs = append(nrs, nr)
		}
		for _, nr := range sortedU32(nrs) {
			p = append(p, bpfJump(jeq, nr, 0, 1), bpfStmt(ret, action))
		}
	}
	add(denied, deny)
	add(deniedLegacy, deny)
	if trace {
		add(traced, notify)
		add(tracedLegacy, notify)
	}
	return append(p, bpfStmt(ret, allow))
}

func sortedU32(s []uint32) []uint32 {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// installFilter sets no_new_privs and loads the filter on the calling
// thread (which must be locked to its goroutine), returning the listener fd
// when trace is set.
func installFilter(trace bool) (int, error) {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return -1, fmt.Errorf("set no_new_privs: %w", err)
	}
	prog := buildFilter(trace)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	var flags uintptr
	if trace {
		flags = unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
	}
	fd, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return -1, fmt.Errorf("load the seccomp filter: %w", errno)
	}
	if !trace {
		return -1, nil
	}
	return int(fd), nil
}

// Kernel structures of seccomp user notification (identical on amd64 and arm64).
type seccompData struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

type seccompNotif struct {
	ID    uint64
	PID   uint32
	Flags uint32
	Data  seccompData
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// tracer answers the filter's notifications and turns them into events.
type tracer struct {
	fd      int
	emit    func(Event)
	since   func() time.Duration
	net     *network // sinkhole listeners opened on demand for connects
	initPID int      // host pid of the sandbox init: its own calls are not events
	// joinCPU moves the serving thread into the run's CPU cgroup, so the
	// work a sample causes here counts against its own CPU quota.
	joinCPU func(tid int) (undo func())

	mu   sync.Mutex
	pids map[int]pidInfo

	// Only the serving goroutine touches these.
	mems map[int]*os.File // /proc/PID/mem per process, until it execs
	root int              // the sandbox root (/proc/INIT/root), for Missing
	sent map[string]bool  // sendto destinations already recorded
}

type pidInfo struct{ ns, ppid, tgid int }

// serve handles notifications until the filter has no users left or stop
// is closed.
func (t *tracer) serve(stop <-chan struct{}) {
	// Every trapped call waits for this loop: no hand-offs between threads.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer unix.Close(t.fd)
	tid := unix.Gettid()
	if t.joinCPU != nil {
		defer t.joinCPU(tid)()
	}
	defer unix.Setpriority(unix.PRIO_PROCESS, tid, 0)
	t.mems = map[int]*os.File{}
	t.sent = map[string]bool{}
	t.root = -1
	// Hand the CPU straight from the trapped process to this thread and
	// back (Linux 6.6+): a trapped call then costs two switches on one CPU
	// instead of two cross-CPU wake-ups. Older kernels refuse; it only
	// changes speed.
	_, _, _ = unix.Syscall(unix.SYS_IOCTL, uintptr(t.fd), unix.SECCOMP_IOCTL_NOTIF_SET_FLAGS, unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
	// Every trapped call waits for this thread: on a busy machine it must
	// not queue behind other work for a time slice (root may raise it).
	_ = unix.Setpriority(unix.PRIO_PROCESS, tid, -10)
	if fd, err := unix.Open("/proc/"+strconv.Itoa(t.initPID)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		t.root = fd
		defer unix.Close(fd)
	}
	defer func() {
		for _, f := range t.mems {
			f.Close()
		}
	}()
	for {
		select {
		case <-stop:
			return
		default:
		}
		pfd := []unix.PollFd{{Fd: int32(t.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 200)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if n == 0 {
			continue
		}
		if pfd[0].Revents&unix.POLLIN == 0 {
			if pfd[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
				return
			}
			continue
		}
		var req seccompNotif
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(t.fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req))); errno != 0 {
			if errno == unix.EINTR || errno == unix.ENOENT {
				continue
			}
			return
		}
		t.handle(&req)
	}
}

func (t *tracer) respond(id uint64, errno unix.Errno) {
	resp := seccompNotifResp{ID: id}
	if errno != 0 {
		resp.Error = -int32(errno)
	} else {
		resp.Flags = unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE
	}
	_, _, _ = unix.Syscall(unix.SYS_IOCTL, uintptr(t.fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp)))
}

// valid tells whether the notification is still pending: arguments read
// from the process's memory are trusted only if it is (the process could
// have died and its pid been reused while we read).
func (t *tracer) valid(id uint64) bool {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(t.fd), unix.SECCOMP_IOCTL_NOTIF_ID_VALID, uintptr(unsafe.Pointer(&id)))
	return errno == 0
}

// mem reads the traced process's memory.
type mem struct{ f *os.File }

// mem returns the process's memory file, opened once per process image.
func (t *tracer) mem(pid int) (*mem, error) {
	if f, ok := t.mems[pid]; ok {
		return &mem{f}, nil
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mem")
	if err != nil {
		return nil, err
	}
	if len(t.mems) > 4096 {
		for p, f := range t.mems {
			f.Close()
			delete(t.mems, p)
		}
	}
	t.mems[pid] = f
	return &mem{f}, nil
}

// forget drops the cached memory file (the process execs or is gone).
func (t *tracer) forget(pid int) {
	if f, ok := t.mems[pid]; ok {
		f.Close()
		delete(t.mems, pid)
	}
}

func (m *mem) read(addr uint64, n int) ([]byte, error) {
	b := make([]byte, n)
	got, err := m.f.ReadAt(b, int64(addr))
	if got == n {
		return b, nil
	}
	return b[:got], err
}

// str reads a NUL-terminated string of at most 4096 bytes, page by page so
// an unmapped page after the string does not fail the read.
func (m *mem) str(addr uint64) (string, error) {
	if addr == 0 {
		return "", errors.New("null pointer")
	}
	var out []byte
	for len(out) < 4096 {
		chunk := 4096 - int(addr%4096)
		if chunk > 256 {
			chunk = 256
		}
		b, err := m.read(addr, chunk)
		if i := indexNUL(b); i >= 0 {
			return string(append(out, b[:i]...)), nil
		}
		if err != nil || len(b) == 0 {
			return string(out), fmt.Errorf("read string: %v", err)
		}
		out = append(out, b...)
		addr += uint64(len(b))
	}
	return string(out), nil
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// argv reads a NULL-terminated array of string pointers (at most 256).
func (m *mem) argv(addr uint64) []string {
	var out []string
	for i := 0; i < 256 && addr != 0; i++ {
		b, err := m.read(addr+uint64(i*8), 8)
		if err != nil || len(b) < 8 {
			break
		}
		p := binary.LittleEndian.Uint64(b)
		if p == 0 {
			break
		}
		s, _ := m.str(p)
		out = append(out, s)
	}
	return out
}

func (t *tracer) info(pid int, refresh bool) pidInfo {
	t.mu.Lock()
	in, ok := t.pids[pid]
	t.mu.Unlock()
	if ok && !refresh {
		return in
	}
	in = pidInfo{ns: pid}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err == nil {
		var hostPPID int
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					in.ns, _ = strconv.Atoi(f[len(f)-1])
				}
			}
			if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
				in.tgid, _ = strconv.Atoi(strings.TrimSpace(v))
			}
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				hostPPID, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if in.tgid > 0 && in.tgid != pid {
			// A thread: events name its process.
			p := t.info(in.tgid, refresh)
			in.ns, in.ppid = p.ns, p.ppid
		} else if hostPPID == t.initPID {
			in.ppid = 1
		} else if hostPPID > 0 {
			in.ppid = t.info(hostPPID, false).ns
		}
	}
	t.mu.Lock()
	t.pids[pid] = in
	t.mu.Unlock()
	return in
}

// process is the thread group (process) a trapped thread belongs to:
// pidfd_open takes only those.
func (t *tracer) process(tid int) int {
	if in := t.info(tid, false); in.tgid > 0 {
		return in.tgid
	}
	return tid
}

// known is the sandbox pid of a host pid the tracer has seen, or 0.
func (t *tracer) known(pid int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pids[pid].ns
}

// base is the directory a relative path of pid is resolved against.
func base(pid int, dirfd int32) string {
	var link string
	if dirfd == unix.AT_FDCWD {
		link = "/proc/" + strconv.Itoa(pid) + "/cwd"
	} else {
		link = "/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(int(dirfd))
	}
	s, err := os.Readlink(link)
	if err != nil || !strings.HasPrefix(s, "/") {
		return "/"
	}
	return s
}

func sandboxPath(pid int, dirfd int32, p string) string {
	if p == "" {
		return ""
	}
	if !strings.HasPrefix(p, "/") {
		p = base(pid, dirfd) + "/" + p
	}
	return path.Clean(p)
}

// exists tells whether p exists inside pid's root (resolved by the kernel
// inside that root, the last component followed or not).
func (t *tracer) exists(p string, follow bool) bool {
	if p == "/proc" || p == "/dev" || strings.HasPrefix(p, "/proc/") || strings.HasPrefix(p, "/dev/") {
		return true // kernel file systems with magic links: not judged
	}
	root := t.root
	if root < 0 {
		return true // unknown: do not claim it is missing
	}
	flags := uint64(unix.O_PATH | unix.O_CLOEXEC)
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Openat2(root, "."+p, &unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return !(errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR))
	}
	unix.Close(fd)
	return true
}

func (t *tracer) handle(req *seccompNotif) {
	nr := uint32(req.Data.Nr)
	pid := int(req.PID)
	a := req.Data.Args
	name := syscallName(nr)
	_, isDenied := denied[nr]
	if _, ok := deniedLegacy[nr]; ok {
		isDenied = true
	}
	if nr == unix.SYS_CLONE {
		isDenied = true // the filter only notifies clone with namespace flags
	}
	if isDenied {
		in := t.info(pid, false)
		t.respond(req.ID, unix.EPERM)
		t.emit(Event{Time: t.since(), Kind: EventDenied, PID: in.ns, PPID: in.ppid, Name: name, Target: "EPERM"})
		return
	}
	if pid == t.initPID || t.info(pid, false).tgid == t.initPID {
		t.respond(req.ID, 0) // the init's own calls
		return
	}
	m, err := t.mem(pid)
	if err != nil {
		t.respond(req.ID, 0)
		return
	}
	if name == "execve" || name == "execveat" {
		defer t.forget(pid) // the next image has another address space
	}
	// str reads a string argument; a cached memory file of an earlier
	// process with the same pid fails to read and is opened again.
	str := func(addr uint64) string {
		s, err := m.str(addr)
		if err != nil {
			t.forget(pid)
			if m2, err := t.mem(pid); err == nil {
				m = m2
				s, _ = m.str(addr)
			}
		}
		return s
	}
	at := int32(unix.AT_FDCWD)
	// pathMode reads the (path, mode) arguments of chmod and mkdir, or
	// the (dirfd, path, mode) ones of their *at forms.
	pathMode := func(plain bool) (int32, string, uint64) {
		if plain {
			return at, str(a[0]), a[1]
		}
		return int32(a[0]), str(a[1]), a[2]
	}
	ev := Event{}
	var connectTo *netip.AddrPort
	var connectProto string
	switch name {
	case "execve", "execveat":
		var p string
		var argvAddr uint64
		if name == "execve" {
			p = str(a[0])
			argvAddr = a[1]
		} else {
			at = int32(a[0])
			p = str(a[1])
			argvAddr = a[2]
			if p == "" && a[4]&unix.AT_EMPTY_PATH != 0 {
				p = base(pid, at)
			}
		}
		if p == "/proc/self/exe" || p == "/proc/"+strconv.Itoa(t.info(pid, false).ns)+"/exe" {
			// Re-executing oneself (busybox does for applets): name the file.
			if real, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil && strings.HasPrefix(real, "/") {
				p = real
			}
		}
		ev = Event{Kind: EventExec, Path: sandboxPath(pid, at, p), Argv: m.argv(argvAddr)}
		if c := path.Base(ev.Path); len(c) > 15 { // what the kernel will name the process
			ev.Comm = c[:15]
		} else {
			ev.Comm = c
		}
		ev.Missing = !t.exists(ev.Path, true)
	case "open", "openat", "openat2", "creat":
		var p string
		var flags, mode uint64
		switch name {
		case "open":
			p = str(a[0])
			flags, mode = a[1], a[2]
		case "creat":
			p = str(a[0])
			flags, mode = unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC, a[1]
		case "openat":
			at = int32(a[0])
			p = str(a[1])
			flags, mode = a[2], a[3]
		case "openat2":
			at = int32(a[0])
			p = str(a[1])
			if b, err := m.read(a[2], 16); err == nil && len(b) == 16 {
				flags, mode = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
			}
		}
		ev = Event{Path: sandboxPath(pid, at, p), Flags: int(flags)}
		present := t.exists(ev.Path, flags&unix.O_NOFOLLOW == 0)
		switch {
		case flags&unix.O_CREAT != 0 && !present:
			ev.Kind, ev.Mode = EventCreate, uint32(mode)&0o7777
		case flags&(unix.O_WRONLY|unix.O_RDWR|unix.O_TRUNC|unix.O_APPEND) != 0:
			ev.Kind, ev.Missing = EventWrite, !present
		default:
			ev.Kind, ev.Missing = EventOpen, !present
		}
	case "unlink", "unlinkat", "rmdir":
		var p string
		if name == "unlinkat" {
			at = int32(a[0])
			p = str(a[1])
		} else {
			p = str(a[0])
		}
		ev = Event{Kind: EventUnlink, Path: sandboxPath(pid, at, p)}
		ev.Missing = !t.exists(ev.Path, false)
	case "chmod", "fchmodat", "fchmodat2":
		var p string
		var mode uint64
		at, p, mode = pathMode(name == "chmod")
		ev = Event{Kind: EventChmod, Path: sandboxPath(pid, at, p), Mode: uint32(mode) & 0o7777}
		ev.Missing = !t.exists(ev.Path, true)
	case "rename", "renameat", "renameat2":
		var oldp, newp string
		newAt := int32(unix.AT_FDCWD)
		if name == "rename" {
			oldp = str(a[0])
			newp = str(a[1])
		} else {
			at, newAt = int32(a[0]), int32(a[2])
			oldp = str(a[1])
			newp = str(a[3])
		}
		ev = Event{Kind: EventRename, Path: sandboxPath(pid, at, oldp), Target: sandboxPath(pid, newAt, newp)}
		ev.Missing = !t.exists(ev.Path, false)
	case "mkdir", "mkdirat":
		var p string
		var mode uint64
		at, p, mode = pathMode(name == "mkdir")
		ev = Event{Kind: EventMkdir, Path: sandboxPath(pid, at, p), Mode: uint32(mode) & 0o7777}
	case "symlink", "symlinkat":
		var target, p string
		target = str(a[0])
		if name == "symlink" {
			p = str(a[1])
		} else {
			at = int32(a[1])
			p = str(a[2])
		}
		ev = Event{Kind: EventSymlink, Path: sandboxPath(pid, at, p), Target: target}
	case "connect", "bind", "sendto":
		addr, n := a[1], a[2]
		if name == "sendto" {
			addr, n = a[4], a[5]
		}
		if n > 128 {
			n = 128
		}
		b, _ := m.read(addr, int(n))
		ev = Event{Kind: EventConnect}
		if name == "bind" {
			ev.Kind = EventBind
		}
		family, ap, unixPath := parseSockaddr(b)
		switch family {
		case unix.AF_INET, unix.AF_INET6:
			ev.Addr, ev.Port = ap.Addr().String(), int(ap.Port())
			ev.Proto = socketProto(t.process(pid), int(a[0]), family)
			if ev.Kind == EventConnect {
				connectTo, connectProto = &ap, ev.Proto
			}
			if name == "sendto" {
				// Recorded once per process and destination: a chatty UDP
				// client must not flood the events.
				k := strconv.Itoa(pid) + " " + ev.Proto + " " + ap.String()
				if t.sent[k] || len(t.sent) > 65536 {
					t.respond(req.ID, 0)
					return
				}
				t.sent[k] = true
			}
		case unix.AF_UNIX:
			ev.Proto, ev.Addr = "unix", unixPath
		default:
			t.respond(req.ID, 0)
			return // netlink and other families are not network destinations
		}
	case "listen":
		ev = Event{Kind: EventListen}
		family, ap, unixPath := socketName(t.process(pid), int(a[0]))
		switch family {
		case unix.AF_INET, unix.AF_INET6:
			ev.Addr, ev.Port = ap.Addr().String(), int(ap.Port())
			ev.Proto = "tcp"
			if family == unix.AF_INET6 {
				ev.Proto = "tcp6"
			}
		case unix.AF_UNIX:
			ev.Proto, ev.Addr = "unix", unixPath
		}
	}
	if !t.valid(req.ID) {
		return // the process is gone; what we read may belong to another
	}
	if ev.Kind == "" {
		t.respond(req.ID, 0)
		return
	}
	in := t.info(pid, ev.Kind == EventExec)
	ev.PID, ev.PPID = in.ns, in.ppid
	ev.Time = t.since()
	if ev.Kind == EventBind && t.net != nil && ev.Port != 0 {
		t.net.release(ev.Proto, ev.Port)
	}
	if connectTo != nil && t.net != nil {
		ev.Name = t.net.nameOf(connectTo.Addr())
		t.net.ensure(connectProto, *connectTo)
	}
	t.emit(ev)
	t.respond(req.ID, 0)
}

func parseSockaddr(b []byte) (family int, ap netip.AddrPort, unixPath string) {
	if len(b) < 2 {
		return -1, ap, ""
	}
	family = int(binary.LittleEndian.Uint16(b))
	switch family {
	case unix.AF_INET:
		if len(b) < 8 {
			return -1, ap, ""
		}
		ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:4]))
	case unix.AF_INET6:
		if len(b) < 24 {
			return -1, ap, ""
		}
		ap = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])).Unmap(), binary.BigEndian.Uint16(b[2:4]))
	case unix.AF_UNIX:
		p := b[2:]
		if len(p) > 0 && p[0] == 0 {
			return family, ap, "@" + string(trimNUL(p[1:]))
		}
		return family, ap, string(trimNUL(p))
	}
	return family, ap, ""
}

func trimNUL(b []byte) []byte {
	if i := indexNUL(b); i >= 0 {
		return b[:i]
	}
	return b
}

// peerSocket duplicates fd of pid into the supervisor (pidfd_getfd).
func peerSocket(pid, fd int) (int, error) {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	return unix.PidfdGetfd(pfd, fd, 0)
}

func socketProto(pid, fd, family int) string {
	proto := "tcp"
	if s, err := peerSocket(pid, fd); err == nil {
		if typ, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TYPE); err == nil && typ == unix.SOCK_DGRAM {
			proto = "udp"
		}
		unix.Close(s)
	}
	if family == unix.AF_INET6 {
		proto += "6"
	}
	return proto
}

func socketName(pid, fd int) (int, netip.AddrPort, string) {
	s, err := peerSocket(pid, fd)
	if err != nil {
		return -1, netip.AddrPort{}, ""
	}
	defer unix.Close(s)
	sa, err := unix.Getsockname(s)
	if err != nil {
		return -1, netip.AddrPort{}, ""
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return unix.AF_INET, netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), ""
	case *unix.SockaddrInet6:
		return unix.AF_INET6, netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)), ""
	case *unix.SockaddrUnix:
		return unix.AF_UNIX, netip.AddrPort{}, sa.Name
	}
	return -1, netip.AddrPort{}, ""
}
