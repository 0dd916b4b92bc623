package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// setupRoot builds the sandbox's file system inside the init's private
// mount namespace: the image directory as the read-only lower layer of an
// overlay whose upper layer lives on a size-limited tmpfs (so writes are
// captured and the image directory stays clean), a fresh /proc with the
// kernel knobs read-only, a small /dev, then pivot_root into it. Nothing of
// the host stays mounted.
func setupRoot(cfg *initConfig) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make the mount namespace private: %w", err)
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return fmt.Errorf("set the hostname: %w", err)
	}
	if err := setupLoopback(); err != nil {
		return err
	}
	s := cfg.Scratch
	if err := unix.Mount("tmpfs", s, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size="+strconv.FormatInt(cfg.Limits.DiskBytes, 10)); err != nil {
		return fmt.Errorf("mount the sandbox's tmpfs: %w", err)
	}
	upper, work, merged := filepath.Join(s, "upper"), filepath.Join(s, "work"), filepath.Join(s, "root")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if strings.ContainsAny(cfg.Rootfs, ",:\\") {
		return fmt.Errorf("rootfs path %q contains ',', ':' or '\\', which overlayfs cannot take: unpack the image elsewhere", cfg.Rootfs)
	}
	opts := "lowerdir=" + cfg.Rootfs + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount the overlay over the image (does the kernel have overlayfs?): %w", err)
	}
	mountDir := func(name string) (string, error) {
		p := filepath.Join(merged, name)
		st, err := os.Lstat(p)
		if err == nil && !st.IsDir() {
			// A file or symlink where a mount point goes: replaced (in the
			// overlay) so no mount follows a link out of the root.
			if err := os.Remove(p); err != nil {
				return "", err
			}
			err = os.ErrNotExist
		}
		if err != nil {
			if err := os.Mkdir(p, 0o755); err != nil {
				return "", fmt.Errorf("create mount point /%s: %w", name, err)
			}
		}
		return p, nil
	}
	proc, err := mountDir("proc")
	if err != nil {
		return err
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	for _, ro := range []string{"sys", "sysrq-trigger", "irq", "bus", "fs"} {
		p := filepath.Join(proc, ro)
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind /proc/%s: %w", ro, err)
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("make /proc/%s read-only: %w", ro, err)
		}
	}
	dev, err := mountDir("dev")
	if err != nil {
		return err
	}
	if err := setupDev(dev); err != nil {
		return err
	}
	for _, masked := range []string{"kcore", "keys", "timer_list", "sched_debug", "latency_stats", "kallsyms"} {
		p := filepath.Join(proc, masked)
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := unix.Mount(filepath.Join(dev, "null"), p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mask /proc/%s: %w", masked, err)
		}
	}
	sys, err := mountDir("sys")
	if err != nil {
		return err
	}
	// Read-only, as container runtimes do; the network namespace's own.
	if err := unix.Mount("sysfs", sys, "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /sys: %w", err)
	}

	// pivot_root(".", ".") stacks the old root on top of the new one;
	// detaching it leaves no host mount reachable.
	if err := unix.Chdir(merged); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into the sandbox: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host's root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}

	// Inside the root now: absolute symlinks of the image resolve here.
	if err := os.MkdirAll("/etc", 0o755); err != nil {
		return fmt.Errorf("create /etc: %w", err)
	}
	for name, content := range map[string]string{"/etc/hosts": sandboxHosts(cfg.Hostname), "/etc/resolv.conf": sandboxResolv, "/etc/hostname": cfg.Hostname + "\n"} {
		_ = os.RemoveAll(name)
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		// A dangling symlink: create what it names (inside the root now).
		target, lerr := os.Readlink(cfg.Dir)
		if lerr != nil {
			return fmt.Errorf("create the working directory %s: %w", cfg.Dir, err)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(cfg.Dir), target)
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("create the working directory %s (a symlink to %s): %w", cfg.Dir, target, err)
		}
	}
	if err := os.MkdirAll("/tmp", 0o1777); err == nil {
		_ = os.Chmod("/tmp", 0o1777)
	}
	return nil
}

// setupDev fills a small tmpfs /dev with the usual character devices, a
// private devpts and a size-limited /dev/shm.
func setupDev(dev string) error {
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=65536"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	old := unix.Umask(0)
	defer unix.Umask(old)
	for _, d := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}} {
		if err := unix.Mknod(filepath.Join(dev, d.name), unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			return fmt.Errorf("create /dev/%s: %w", d.name, err)
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return err
		}
	}
	if err := unix.Mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return fmt.Errorf("mount /dev/pts: %w", err)
	}
	if err := unix.Mount("shm", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=67108864"); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	for name, target := range map[string]string{"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	return nil
}

// dockerCaps is what a root user in the sandbox keeps: Docker's default set
// without CAP_MKNOD (no device cgroup guards device nodes here). Never
// SYS_ADMIN, SYS_PTRACE, SYS_MODULE or NET_ADMIN.
var dockerCaps = []int{
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FSETID, unix.CAP_FOWNER, unix.CAP_NET_RAW,
	unix.CAP_SETGID, unix.CAP_SETUID, unix.CAP_SETFCAP, unix.CAP_SETPCAP, unix.CAP_NET_BIND_SERVICE,
	unix.CAP_SYS_CHROOT, unix.CAP_KILL, unix.CAP_AUDIT_WRITE,
}

// dropCapabilities limits the calling thread's bounding set to what the
// image user gets (root: dockerCaps; anyone else: nothing) and clears the
// inheritable and ambient sets. The thread keeps its effective set so it
// can still switch to the image user when it forks; the exec then leaves
// the new process with at most the bounding set.
func dropCapabilities(root bool) error {
	keep := map[int]bool{}
	if root {
		for _, c := range dockerCaps {
			keep[c] = true
		}
	}
	last := unix.CAP_LAST_CAP
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	for c := 0; c <= last; c++ {
		if keep[c] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clear inheritable capabilities: %w", err)
	}
	return nil
}
