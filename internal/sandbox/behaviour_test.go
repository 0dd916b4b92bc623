//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
)

// The programs the behaviour tests run, compiled for the test.
const (
	webServerSrc = `package main

import (
	"fmt"
	"net/http"
)

func main() {
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	fmt.Println(http.ListenAndServe(":8080", nil))
}
`
	helperSrc = `package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	run := func(args ...string) {
		out, err := exec.Command("/bin/busybox", args...).CombinedOutput()
		fmt.Printf("%v: %s %v\n", args, out, err)
	}
	run("touch", "/tmp/touched")
	run("mkdir", "/tmp/dir")
	if err := os.WriteFile("/tmp/written", []byte("data"), 0o640); err != nil {
		fmt.Println(err)
	}
	if err := os.Chmod("/tmp/written", 0o600); err != nil {
		fmt.Println(err)
	}
	if err := os.Rename("/tmp/written", "/tmp/renamed"); err != nil {
		fmt.Println(err)
	}
	if err := os.Symlink("/etc/passwd", "/tmp/link"); err != nil {
		fmt.Println(err)
	}
	if err := os.Remove("/tmp/touched"); err != nil {
		fmt.Println(err)
	}
	os.Chdir("/tmp")
	if _, err := os.ReadFile("relative-missing"); err == nil {
		fmt.Println("relative-missing exists")
	}
	run("rm", "-f", "/etc/group")
	// A path relative to a directory descriptor, and an exec of a missing file.
	if d, err := syscall.Open("/etc", syscall.O_RDONLY|syscall.O_DIRECTORY, 0); err == nil {
		if f, err := syscall.Openat(d, "passwd", syscall.O_RDONLY, 0); err == nil {
			syscall.Close(f)
		}
		syscall.Close(d)
	}
	_, err := syscall.ForkExec("/opt/missing-tool", []string{"missing-tool", "--flag"}, &syscall.ProcAttr{})
	fmt.Println("exec missing:", err)
	fmt.Println("done")
}
`
	minerSrc = `package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	addrs, err := net.LookupHost("pool.minexmr.invalid")
	if err != nil || len(addrs) == 0 {
		fmt.Println("resolve:", err)
		os.Exit(2)
	}
	c, err := net.Dial("tcp", net.JoinHostPort(addrs[0], "3333"))
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(3)
	}
	fmt.Fprint(c, ` + "`" + `{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"44wallet","pass":"x","agent":"xmrig/6.21.0"}}` + "\n`" + `)
	buf := make([]byte, 64)
	c.Read(buf)
	fmt.Println("resolved", addrs[0])

	// IPv6, a connected UDP socket and an unconnected one.
	if c6, err := net.Dial("tcp", "[2001:db8::1]:443"); err == nil {
		c6.Write([]byte("\x16\x03\x01 tls hello"))
		c6.Close()
	} else {
		fmt.Println("dial6:", err)
	}
	if u, err := net.Dial("udp", "198.51.100.7:5353"); err == nil {
		u.Write([]byte("connected datagram"))
		u.Close()
	}
	if u, err := net.ListenPacket("udp", ":0"); err == nil {
		u.WriteTo([]byte("unconnected datagram"), &net.UDPAddr{IP: net.ParseIP("203.0.113.9"), Port: 9999})
		u.Close()
	}
	time.Sleep(200 * time.Millisecond) // let the datagrams arrive before the run ends
}
`
	escapeSrc = `package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "sleep":
			select {}
		case "alloc":
			var blocks [][]byte
			for i := 0; i < 10*1024; i++ { // 10 GiB in 1 MiB blocks, touched
				b := make([]byte, 1<<20)
				for j := 0; j < len(b); j += 4096 {
					b[j] = 1
				}
				blocks = append(blocks, b)
			}
			fmt.Println("allocated 10 GiB", len(blocks))
			return
		}
	}
	say := func(what string, err error) { fmt.Printf("%s: %v\n", what, err) }

	c, err := net.Dial("tcp", "127.0.0.1:"+os.Getenv("HOST_PORT"))
	if err == nil {
		fmt.Fprint(c, "HELLO HOST")
		c.Close()
	}
	say("connect host", err)

	say("write /proc/sys/kernel/hostname", os.WriteFile("/proc/sys/kernel/hostname", []byte("pwned"), 0))
	say("mount", syscall.Mount("tmpfs", "/tmp", "tmpfs", 0, ""))
	_, _, errno := syscall.RawSyscall(syscall.SYS_PTRACE, syscall.PTRACE_TRACEME, 0, 0)
	say("ptrace", errno)
	say("unshare", syscall.Unshare(syscall.CLONE_NEWUSER))

	var sleepers []*exec.Cmd
	for n := 0; n < 10000; n++ {
		cmd := exec.Command("/proc/self/exe", "sleep")
		if err := cmd.Start(); err != nil {
			say("fork bomb stopped", err)
			break
		}
		sleepers = append(sleepers, cmd)
	}
	for _, c := range sleepers {
		c.Process.Kill()
		c.Wait()
	}

	out, err := exec.Command("/proc/self/exe", "alloc").CombinedOutput()
	say("alloc "+string(out), err)

	f, err := os.Create("/tmp/fill")
	if err == nil {
		buf := make([]byte, 1<<20)
		for i := 0; i < 10*1024; i++ {
			if _, err = f.Write(buf); err != nil {
				break
			}
		}
		f.Close()
	}
	say("fill disk", err)
}
`
)

// rootfsWith builds an image holding one compiled program (plus busybox)
// and unpacks it.
func rootfsWith(t *testing.T, src string) string {
	t.Helper()
	return rootfsOf(t, map[string]sandboxtest.File{"app": {Data: sandboxtest.GoProgram(t, src), Mode: 0o755}})
}

// hostState is what a run must leave as it was.
type hostState struct {
	hostname  string
	mountinfo string
}

func hostNow(t *testing.T) hostState {
	t.Helper()
	h, _ := os.Hostname()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return hostState{hostname: h, mountinfo: string(mi)}
}

// runChecked runs spec and asserts that the host is untouched afterwards:
// hostname, mount table, scratch directory, cgroups, and no process left
// in the sandbox's PID namespace.
func runChecked(t *testing.T, spec Spec) *Result {
	t.Helper()
	before := hostNow(t)
	var rt runTrace
	res, err := runSandbox(context.Background(), spec, &rt)
	if err != nil {
		t.Fatal(err)
	}
	after := hostNow(t)
	if after.hostname != before.hostname {
		t.Errorf("host hostname changed from %q to %q", before.hostname, after.hostname)
	}
	// Other work on the machine may mount things meanwhile; what must not
	// appear is anything of this run.
	for _, line := range strings.Split(after.mountinfo, "\n") {
		if !strings.Contains(before.mountinfo, line) && (strings.Contains(line, rt.scratch) || strings.Contains(line, spec.Rootfs) || strings.Contains(line, "overlay") || strings.Contains(line, " proc ")) {
			t.Errorf("a sandbox mount is visible on the host: %s", line)
		}
	}
	if _, err := os.Stat(rt.scratch); !os.IsNotExist(err) {
		t.Errorf("scratch directory %s left behind (%v)", rt.scratch, err)
	}
	for _, d := range rt.cgroupDirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left behind", d)
		}
	}
	// Every sandboxed process is in the run's cgroup and cannot leave it
	// (the cgroup hierarchy is not mounted inside); the cgroup could only
	// be removed once it was empty, so no process outlived the run. The
	// init itself must be gone too (PID namespace inodes are reused by
	// later namespaces, so they prove nothing).
	if _, err := os.Stat("/proc/" + strconv.Itoa(rt.initPID)); err == nil {
		if ns, _ := os.Readlink("/proc/" + strconv.Itoa(rt.initPID) + "/ns/pid"); ns == rt.pidNS {
			t.Errorf("sandbox init %d is still alive", rt.initPID)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("output:\n%s", res.Output)
		for _, e := range res.Events {
			t.Logf("event %s pid=%d ppid=%d path=%s target=%s argv=%q proto=%s addr=%s port=%d name=%s qtype=%s data=%q exit=%d sig=%d missing=%v mode=%o",
				e.Kind, e.PID, e.PPID, e.Path, e.Target, e.Argv, e.Proto, e.Addr, e.Port, e.Name, e.QType, e.Data, e.ExitCode, e.Signal, e.Missing, e.Mode)
		}
		t.Logf("exit %+v resources %+v notes %q startup %v", res.Exit, res.Resources, res.Notes, res.StartupTime)
	}
	return res
}

// find returns the events matching every non-zero field of want (Argv and
// Data by prefix/containment).
func find(events []Event, want Event) []Event {
	var out []Event
	for _, e := range events {
		if want.Kind != "" && e.Kind != want.Kind ||
			want.Path != "" && e.Path != want.Path ||
			want.Target != "" && e.Target != want.Target ||
			want.Name != "" && e.Name != want.Name ||
			want.Addr != "" && e.Addr != want.Addr ||
			want.Port != 0 && e.Port != want.Port ||
			want.Proto != "" && e.Proto != want.Proto ||
			want.QType != "" && e.QType != want.QType ||
			want.Mode != 0 && e.Mode != want.Mode ||
			want.Missing && !e.Missing ||
			want.Signal != 0 && e.Signal != want.Signal ||
			len(want.Data) > 0 && !bytes.Contains(e.Data, want.Data) {
			continue
		}
		if len(want.Argv) > 0 && (len(e.Argv) < len(want.Argv) || fmt.Sprint(e.Argv[:len(want.Argv)]) != fmt.Sprint(want.Argv)) {
			continue
		}
		out = append(out, e)
	}
	return out
}

func mustFind(t *testing.T, events []Event, want Event) Event {
	t.Helper()
	got := find(events, want)
	if len(got) == 0 {
		t.Errorf("no event like %+v", want)
		return Event{}
	}
	return got[0]
}

func TestRunWebServer(t *testing.T) {
	needSandbox(t)
	root := rootfsWith(t, webServerSrc)
	// The probe command stops the server once the HTTP probe is answered,
	// so the run ends then and not at the (generous) time limit.
	res := runChecked(t, Spec{Rootfs: root, Entrypoint: []string{"/app"}, User: "app", Duration: 60 * time.Second, Trace: true,
		HTTPProbes: []HTTPProbe{{Port: 8080, Path: "/healthz"}},
		ProbeCmds:  [][]string{{"/bin/busybox", "killall", "-TERM", "app"}}})
	if len(res.Probes) != 2 || !res.Probes[0].OK || res.Probes[0].Status != 200 || res.Probes[0].Output != "ok" {
		t.Errorf("probes = %+v, want 200 ok", res.Probes)
	}
	if testing.Verbose() {
		t.Logf("probes %+v", res.Probes)
	}
	mustFind(t, res.Events, Event{Kind: EventExec, Path: "/app"})
	mustFind(t, res.Events, Event{Kind: EventBind, Port: 8080})
	mustFind(t, res.Events, Event{Kind: EventListen, Port: 8080})
	if res.Exit.TimedOut || res.Exit.Signal != 15 {
		t.Errorf("exit = %+v, want SIGTERM from the probe command", res.Exit)
	}
	mustFind(t, res.Events, Event{Kind: EventExit, Signal: 15})
}

func TestRunHelpersAndFiles(t *testing.T) {
	needSandbox(t)
	root := rootfsWith(t, helperSrc)
	res := runChecked(t, Spec{Rootfs: root, Entrypoint: []string{"/app"}, Duration: 20 * time.Second, Trace: true,
		ProbeCmds: [][]string{{"/bin/busybox", "cat", "/tmp/renamed"}}})
	if res.Exit.Code != 0 || res.Exit.TimedOut {
		t.Errorf("exit = %+v, want 0", res.Exit)
	}
	ev := res.Events
	app := mustFind(t, ev, Event{Kind: EventExec, Path: "/app"})
	touch := mustFind(t, ev, Event{Kind: EventExec, Path: "/bin/busybox", Argv: []string{"/bin/busybox", "touch", "/tmp/touched"}})
	if touch.PPID != app.PID || app.PPID != 1 {
		t.Errorf("process tree: app pid %d ppid %d, touch ppid %d", app.PID, app.PPID, touch.PPID)
	}
	mustFind(t, ev, Event{Kind: EventCreate, Path: "/tmp/touched"})
	mustFind(t, ev, Event{Kind: EventExec, Argv: []string{"/bin/busybox", "mkdir", "/tmp/dir"}})
	mustFind(t, ev, Event{Kind: EventMkdir, Path: "/tmp/dir"})
	mustFind(t, ev, Event{Kind: EventCreate, Path: "/tmp/written", Mode: 0o640})
	mustFind(t, ev, Event{Kind: EventChmod, Path: "/tmp/written", Mode: 0o600})
	mustFind(t, ev, Event{Kind: EventRename, Path: "/tmp/written", Target: "/tmp/renamed"})
	mustFind(t, ev, Event{Kind: EventSymlink, Path: "/tmp/link", Target: "/etc/passwd"})
	mustFind(t, ev, Event{Kind: EventUnlink, Path: "/tmp/touched"})
	mustFind(t, ev, Event{Kind: EventOpen, Path: "/tmp/relative-missing", Missing: true})
	mustFind(t, ev, Event{Kind: EventUnlink, Path: "/etc/group"})
	if got := find(ev, Event{Kind: EventOpen, Path: "/etc/passwd"}); len(got) == 0 {
		t.Errorf("openat relative to a directory descriptor not resolved to /etc/passwd")
	}
	missing := mustFind(t, ev, Event{Kind: EventExec, Path: "/opt/missing-tool", Missing: true})
	if len(missing.Argv) != 2 || missing.Argv[1] != "--flag" {
		t.Errorf("exec of a missing file: argv %q", missing.Argv)
	}
	if len(res.Probes) != 1 || !res.Probes[0].OK || res.Probes[0].Output != "data" {
		t.Errorf("probe command = %+v, want the renamed file's content", res.Probes)
	}
	mustFind(t, ev, Event{Kind: EventExec, Argv: []string{"/bin/busybox", "cat", "/tmp/renamed"}})
	// Writes went to the overlay, not to the image directory.
	if _, err := os.Stat(filepath.Join(root, "etc/group")); err != nil {
		t.Errorf("the image directory was changed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "tmp/renamed")); !os.IsNotExist(err) {
		t.Errorf("a sandbox write reached the image directory: %v", err)
	}
}

func TestRunMiner(t *testing.T) {
	needSandbox(t)
	root := rootfsWith(t, minerSrc)
	res := runChecked(t, Spec{Rootfs: root, Entrypoint: []string{"/app"}, User: "65534", Duration: 20 * time.Second, Trace: true})
	if res.Exit.Code != 0 {
		t.Errorf("exit = %+v, want 0", res.Exit)
	}
	dns := mustFind(t, res.Events, Event{Kind: EventDNS, Name: "pool.minexmr.invalid", QType: "A"})
	if !strings.HasPrefix(dns.Addr, "198.18.") {
		t.Errorf("sinkhole address %q, want one of 198.18.0.0/15", dns.Addr)
	}
	mustFind(t, res.Events, Event{Kind: EventConnect, Proto: "tcp", Addr: dns.Addr, Port: 3333, Name: "pool.minexmr.invalid"})
	mustFind(t, res.Events, Event{Kind: EventSinkhole, Proto: "tcp", Addr: dns.Addr, Port: 3333, Name: "pool.minexmr.invalid", Data: []byte(`"method":"login"`)})
	mustFind(t, res.Events, Event{Kind: EventConnect, Proto: "tcp6", Addr: "2001:db8::1", Port: 443})
	mustFind(t, res.Events, Event{Kind: EventSinkhole, Proto: "tcp6", Addr: "2001:db8::1", Port: 443, Data: []byte("tls hello")})
	mustFind(t, res.Events, Event{Kind: EventConnect, Proto: "udp", Addr: "198.51.100.7", Port: 5353})
	mustFind(t, res.Events, Event{Kind: EventSinkhole, Proto: "udp", Addr: "198.51.100.7", Port: 5353, Data: []byte("connected datagram")})
	mustFind(t, res.Events, Event{Kind: EventConnect, Addr: "203.0.113.9", Port: 9999})
	mustFind(t, res.Events, Event{Kind: EventSinkhole, Proto: "udp", Addr: "203.0.113.9", Port: 9999, Data: []byte("unconnected datagram")})
	if e := mustFind(t, res.Events, Event{Kind: EventExec, Path: "/app"}); e.Comm != "app" {
		t.Errorf("exec comm = %q", e.Comm)
	}
}

func TestRunEscape(t *testing.T) {
	needSandbox(t)
	// A listener on the host's loopback that must hear nothing.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	root := rootfsWith(t, escapeSrc)
	res := runChecked(t, Spec{Rootfs: root, Entrypoint: []string{"/app"}, Env: []string{"HOST_PORT=" + strconv.Itoa(port)}, Duration: 60 * time.Second, Trace: true,
		Limits: Limits{Pids: 32, MemoryBytes: 128 << 20, DiskBytes: 32 << 20}})
	if n := accepted.Load(); n != 0 {
		t.Errorf("the host's listener accepted %d connections from the sandbox", n)
	}
	out := string(res.Output)
	ev := res.Events
	mustFind(t, ev, Event{Kind: EventConnect, Addr: "127.0.0.1", Port: port})
	mustFind(t, ev, Event{Kind: EventSinkhole, Addr: "127.0.0.1", Port: port, Data: []byte("HELLO HOST")})
	if !strings.Contains(out, "write /proc/sys/kernel/hostname: open /proc/sys/kernel/hostname: read-only file system") {
		t.Errorf("writing /proc/sys did not fail read-only")
	}
	mustFind(t, ev, Event{Kind: EventWrite, Path: "/proc/sys/kernel/hostname"})
	for _, call := range []string{"mount", "ptrace", "unshare"} {
		mustFind(t, ev, Event{Kind: EventDenied, Name: call, Target: "EPERM"})
		if !strings.Contains(out, call+": operation not permitted") {
			t.Errorf("%s did not fail with EPERM", call)
		}
	}
	if !strings.Contains(out, "fork bomb stopped: fork/exec /proc/self/exe: resource temporarily unavailable") || !res.Resources.PidsLimitHit {
		t.Errorf("the fork bomb was not stopped by the pids limit (PidsLimitHit=%v)", res.Resources.PidsLimitHit)
	}
	if !strings.Contains(out, "alloc : signal: killed") || !res.Resources.MemoryLimitHit {
		t.Errorf("the 10 GiB allocation was not killed by the memory limit (MemoryLimitHit=%v)", res.Resources.MemoryLimitHit)
	}
	mustFind(t, ev, Event{Kind: EventExit, Signal: 9})
	if !strings.Contains(out, "fill disk: write /tmp/fill: no space left on device") {
		t.Errorf("filling the disk did not hit the tmpfs limit")
	}
	mustFind(t, ev, Event{Kind: EventCreate, Path: "/tmp/fill"})
	if res.Exit.Code != 0 || res.Exit.TimedOut {
		t.Errorf("exit = %+v, want 0 (every attempt failed and was reported)", res.Exit)
	}
}
