package sandbox

import (
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// procWatch follows the sandbox's process tree through the kernel's process
// events connector (netlink, CN_IDX_PROC): every fork below the init adds a
// process, every exit of one is reported with its code or signal — also
// for processes killed by a signal and reaped by their own parent, which
// neither the init nor the seccomp tracer would see.
type procWatch struct {
	fd      int
	initPID int
	emit    func(Event)
	since   func() time.Duration

	mu      sync.Mutex
	members map[int]int // host pid -> pid inside the sandbox
	lost    bool        // the socket overflowed: some events are missing
	done    chan struct{}
	stop    chan struct{}
	// lookup maps a host pid to the sandbox's pid when /proc no longer
	// can (the process is gone): the tracer remembers the ones it saw.
	lookup func(hostPID int) int
}

const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procEventFork     = 0x00000001
	procEventExit     = 0x80000000
)

func newProcWatch(initPID int, emit func(Event), since func() time.Duration, lookup func(int) int) (*procWatch, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc, Pid: 0}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// nlmsghdr + cn_msg + op
	msg := make([]byte, unix.SizeofNlMsghdr+20+4)
	binary.LittleEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.LittleEndian.PutUint16(msg[4:], unix.NLMSG_DONE)
	binary.LittleEndian.PutUint32(msg[12:], uint32(os.Getpid()))
	cn := msg[unix.SizeofNlMsghdr:]
	binary.LittleEndian.PutUint32(cn[0:], cnIdxProc)
	binary.LittleEndian.PutUint32(cn[4:], cnValProc)
	binary.LittleEndian.PutUint16(cn[16:], 4)
	binary.LittleEndian.PutUint32(cn[20:], procCnMcastListen)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	w := &procWatch{fd: fd, initPID: initPID, emit: emit, since: since, members: map[int]int{initPID: 1}, done: make(chan struct{}), stop: make(chan struct{}), lookup: lookup}
	go w.loop()
	return w, nil
}

func (w *procWatch) loop() {
	defer close(w.done)
	buf := make([]byte, 1<<16)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		pfd := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
		if k, err := unix.Poll(pfd, 50); err != nil || k == 0 {
			continue
		}
		n, _, err := unix.Recvfrom(w.fd, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			continue
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ENOBUFS) {
			w.mu.Lock()
			w.lost = true
			w.mu.Unlock()
			continue
		}
		if err != nil || n == 0 {
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			w.handle(m.Data)
		}
	}
}

func (w *procWatch) handle(d []byte) {
	if len(d) < 20+16 {
		return
	}
	ev := d[20:]
	what := binary.LittleEndian.Uint32(ev[0:])
	u := ev[16:]
	switch what {
	case procEventFork:
		if len(u) < 16 {
			return
		}
		parentTgid := int(binary.LittleEndian.Uint32(u[4:]))
		childPid := int(binary.LittleEndian.Uint32(u[8:]))
		childTgid := int(binary.LittleEndian.Uint32(u[12:]))
		if childPid != childTgid {
			return // a new thread
		}
		w.mu.Lock()
		_, ok := w.members[parentTgid]
		w.mu.Unlock()
		if !ok {
			return
		}
		ns := nsPID(childPid)
		if ns == 0 && w.lookup != nil {
			ns = w.lookup(childPid)
		}
		w.mu.Lock()
		w.members[childPid] = ns
		w.mu.Unlock()
	case procEventExit:
		if len(u) < 24 {
			return
		}
		pid := int(binary.LittleEndian.Uint32(u[0:]))
		tgid := int(binary.LittleEndian.Uint32(u[4:]))
		code := binary.LittleEndian.Uint32(u[8:])
		parent := int(binary.LittleEndian.Uint32(u[20:]))
		if pid != tgid || pid == w.initPID {
			return
		}
		w.mu.Lock()
		ns, ok := w.members[pid]
		pns := w.members[parent]
		delete(w.members, pid)
		w.mu.Unlock()
		if !ok {
			return
		}
		if ns == 0 && w.lookup != nil {
			ns = w.lookup(pid)
		}
		e := Event{Time: w.since(), Kind: EventExit, PID: ns, PPID: pns}
		if sig := int(code & 0x7f); sig != 0 {
			e.Signal = sig
		} else {
			e.ExitCode = int(code>>8) & 0xff
		}
		w.emit(e)
	}
}

// nsPID is the pid of a host process inside its own PID namespace.
func nsPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[len(f)-1])
				return n
			}
		}
	}
	return 0
}

// close stops the watch once the run's processes are gone and tells
// whether events were lost.
func (w *procWatch) close() bool {
	// Let the last exit events arrive; the socket is then shut down to
	// end the loop.
	time.Sleep(50 * time.Millisecond)
	close(w.stop)
	<-w.done
	unix.Close(w.fd)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost
}
