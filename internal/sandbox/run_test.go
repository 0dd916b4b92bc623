//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// needSandbox skips where the sandbox cannot run; CI runs as root, where it
// must.
func needSandbox(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the sandbox must run in CI: %v", err)
		}
		t.Skip(err)
	}
}

// rootfsOf builds an image with busybox (as /bin/busybox and its applets'
// links) plus files, and unpacks it.
func rootfsOf(t *testing.T, files map[string]sandboxtest.File) string {
	t.Helper()
	all := map[string]sandboxtest.File{
		"bin":         {Dir: true},
		"bin/busybox": {Data: sandboxtest.Busybox(t), Mode: 0o755},
		"bin/sh":      {Symlink: "busybox"},
		"etc":         {Dir: true},
		"etc/passwd":  {Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n"), Mode: 0o644},
		"etc/group":   {Data: []byte("root:x:0:\nnogroup:x:65534:\napp:x:1000:\n"), Mode: 0o644},
		"tmp":         {Dir: true, Mode: 0o1777},
	}
	for k, v := range files {
		all[k] = v
	}
	img := sandboxtest.Image(t, v1.Config{}, sandboxtest.Layer(t, all))
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := Unpack(context.Background(), img, dir, UnpackLimits{Root: true}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRunBasics(t *testing.T) {
	needSandbox(t)
	root := rootfsOf(t, nil)
	script := "echo hello; id; hostname; grep -E 'Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp:' /proc/self/status; cat /proc/self/cgroup; ls /proc/self/fd; ls /; ls /dev; ls /sys; touch /sys/x; cat /etc/resolv.conf; pwd; echo data > /tmp/f; exit 7"
	for _, c := range []struct {
		user, id, capEff string
	}{
		// Docker's default set without CAP_MKNOD for root, nothing for anyone else.
		{"", "uid=0(root) gid=0(root) groups=0(root)", "00000000a00425fb"},
		{"app", "uid=1000(app) gid=1000(app) groups=1000(app)", "0000000000000000"},
		{"65534:1000", "uid=65534(nobody) gid=1000(app) groups=1000(app)", "0000000000000000"},
	} {
		t.Run("user="+c.user, func(t *testing.T) {
			res := runChecked(t, Spec{Rootfs: root, Entrypoint: []string{"/bin/busybox", "sh", "-c"}, Cmd: []string{script}, User: c.user,
				WorkingDir: "/work/dir", Duration: 20 * time.Second, Trace: true})
			out := string(res.Output)
			for _, want := range []string{"hello\n", c.id + "\n", "CapEff:\t" + c.capEff + "\n", "CapPrm:\t" + c.capEff + "\n", "CapBnd:\t" + c.capEff + "\n", "CapInh:\t0000000000000000\n",
				"CapAmb:\t0000000000000000\n", "NoNewPrivs:\t1\n", "Seccomp:\t2\n", "nameserver 127.0.0.53\n", "/work/dir\n", "kernel\n", "touch: /sys/x: Read-only file system\n",
				// only stdin, stdout, stderr and ls's own directory fd: nothing of the supervisor leaks in
				"0\n1\n2\n3\nbin\n"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			if lines := strings.Split(out, "\n"); len(lines) < 3 || len(lines[2]) != 12 {
				t.Errorf("hostname is not a container-like id: %q", lines)
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "airlock-sandbox") {
					t.Errorf("the sandbox sees the host's cgroup path: %s", line)
				}
			}
			for _, name := range []string{"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx"} {
				if !strings.Contains(out, "\n"+name+"\n") {
					t.Errorf("/dev lacks %s", name)
				}
			}
			if res.Exit.Code != 7 || res.Exit.TimedOut {
				t.Errorf("exit = %+v, want code 7", res.Exit)
			}
			sh := mustFind(t, res.Events, Event{Kind: EventExec, Path: "/bin/busybox", Argv: []string{"/bin/busybox", "sh", "-c"}})
			if sh.PPID != 1 {
				t.Errorf("entrypoint's parent = %d, want the init (1)", sh.PPID)
			}
			mustFind(t, res.Events, Event{Kind: EventCreate, Path: "/tmp/f"})
			mustFind(t, res.Events, Event{Kind: EventExec, Path: "/bin/busybox", Argv: []string{"cat", "/etc/resolv.conf"}})
			mustFind(t, res.Events, Event{Kind: EventOpen, Path: "/etc/resolv.conf"})
			exit := mustFind(t, res.Events, Event{Kind: EventExit})
			if exit.PID == 0 {
				t.Errorf("exit event without a pid: %+v", exit)
			}
			if res.StartupTime <= 0 || res.Mode != "root" {
				t.Errorf("startup %v mode %q", res.StartupTime, res.Mode)
			}
		})
	}
}

func TestRunUntraced(t *testing.T) {
	needSandbox(t)
	root := rootfsWith(t, escapeSrc)
	res := runChecked(t, Spec{Rootfs: root, Entrypoint: []string{"/app"}, Env: []string{"HOST_PORT=1"}, Duration: 60 * time.Second, Trace: false,
		Limits: Limits{Pids: 32, MemoryBytes: 128 << 20, DiskBytes: 32 << 20}})
	out := string(res.Output)
	for _, call := range []string{"mount", "ptrace", "unshare"} {
		if !strings.Contains(out, call+": operation not permitted") {
			t.Errorf("untraced: %s was not refused", call)
		}
	}
	for _, e := range res.Events {
		if e.Kind != EventExit && e.Kind != EventDNS && e.Kind != EventSinkhole {
			t.Errorf("untraced run recorded a traced event: %+v", e)
		}
	}
	if len(find(res.Events, Event{Kind: EventExit})) == 0 {
		t.Errorf("untraced run recorded no exits")
	}
}

func TestRunCPULimit(t *testing.T) {
	needSandbox(t)
	root := rootfsOf(t, nil)
	res := runChecked(t, Spec{Rootfs: root, Entrypoint: []string{"/bin/busybox", "sh", "-c", "while :; do :; done"}, Duration: 2 * time.Second, Trace: true,
		Limits: Limits{CPUPercent: 20}})
	if !res.Exit.TimedOut {
		t.Errorf("a busy loop ended by itself: %+v", res.Exit)
	}
	// The quota bounds CPU time from above whatever the machine's load:
	// 20% of one core over ~2 s, plus one CFS period of slack.
	if res.Resources.CPUSeconds <= 0 || res.Resources.CPUSeconds > 0.2*res.Wall.Seconds()+0.15 {
		t.Errorf("CPU seconds %.3f over %v wall, want at most 20%%", res.Resources.CPUSeconds, res.Wall)
	}
	mustFind(t, res.Events, Event{Kind: EventExit, Signal: 9})
	found := false
	for _, n := range res.Notes {
		found = found || strings.Contains(n, "time limit")
	}
	if !found {
		t.Errorf("no note about the time limit: %q", res.Notes)
	}
}

func TestRunRefusesBadSpecs(t *testing.T) {
	needSandbox(t)
	root := rootfsOf(t, nil)
	for name, spec := range map[string]Spec{
		"no rootfs":      {Entrypoint: []string{"/bin/busybox"}},
		"missing dir":    {Rootfs: filepath.Join(t.TempDir(), "nope"), Entrypoint: []string{"/bin/busybox"}},
		"nothing to run": {Rootfs: root},
		"unknown user":   {Rootfs: root, Entrypoint: []string{"/bin/busybox"}, User: "mallory"},
		"unknown group":  {Rootfs: root, Entrypoint: []string{"/bin/busybox"}, User: "app:wheel"},
		"not in PATH":    {Rootfs: root, Entrypoint: []string{"nosuchtool"}},
	} {
		t.Run(name, func(t *testing.T) {
			var rt runTrace
			res, err := runSandbox(context.Background(), spec, &rt)
			if err == nil {
				t.Fatalf("Run accepted a bad spec: %+v", res)
			}
			t.Log(err)
			if rt.scratch != "" {
				if _, err := os.Stat(rt.scratch); !os.IsNotExist(err) {
					t.Errorf("a refused run left its scratch directory behind")
				}
			}
			for _, d := range rt.cgroupDirs {
				if _, err := os.Stat(d); !os.IsNotExist(err) {
					t.Errorf("a refused run left its cgroup %s behind", d)
				}
			}
		})
	}
}

// TestRunHostileRootfs runs an image whose mount points and the files the
// sandbox writes are symlinks pointing at the host: the sandbox must mount
// and write inside its own root only.
func TestRunHostileRootfs(t *testing.T) {
	needSandbox(t)
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("host file"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := rootfsOf(t, map[string]sandboxtest.File{
		"proc":            {Symlink: "/"},
		"dev":             {Symlink: outside},
		"sys":             {Symlink: "../../../../../../" + outside},
		"etc/hosts":       {Symlink: victim},
		"etc/resolv.conf": {Symlink: "../../../../../../../../" + victim},
		"etc/hostname":    {Symlink: "/proc/1/root" + victim},
		"work":            {Symlink: "/../../../../" + outside},
	})
	res := runChecked(t, Spec{Rootfs: root, Entrypoint: []string{"/bin/busybox", "sh", "-c", "cat /etc/hosts; ls /proc/1/cmdline; echo x > /work/planted"},
		WorkingDir: "/work", Duration: 20 * time.Second, Trace: true})
	if res.Exit.Code != 0 {
		t.Errorf("exit = %+v, output %s", res.Exit, res.Output)
	}
	if b, _ := os.ReadFile(victim); string(b) != "host file" {
		t.Errorf("the host file behind a symlink was rewritten: %q", b)
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 1 {
		t.Errorf("the sandbox wrote into a host directory behind a symlink: %v", ents)
	}
	if !strings.Contains(string(res.Output), "localhost") {
		t.Errorf("the sandbox's /etc/hosts was not written inside the root: %s", res.Output)
	}
}

func TestAbandoned(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	dead := cmd.Process.Pid
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Minute)
	for name, want := range map[string]bool{
		fmt.Sprintf("airlock-sandbox-%d-abc", dead):         true,
		fmt.Sprintf("airlock-sandbox-%d-abc", os.Getpid()):  false, // this process's own runs
		fmt.Sprintf("airlock-sandbox-%d-abc", os.Getppid()): false, // a live supervisor
		"airlock-sandbox-1234567890":                        false, // no pid, younger than an hour
	} {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		if got := abandoned(p); got != want {
			t.Errorf("abandoned(%s) = %v, want %v", name, got, want)
		}
	}
	young := filepath.Join(dir, fmt.Sprintf("airlock-sandbox-%d-young", dead))
	os.Mkdir(young, 0o755)
	if abandoned(young) {
		t.Errorf("a directory younger than a minute counted as abandoned")
	}
}
