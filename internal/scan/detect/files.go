package detect

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/airlock-dev/airlock/internal/scan"
)

// fileDetector looks at the file tree rather than file content: setuid and
// setgid files no package installed, executables in places programs do not
// live or named like kernel threads and system daemons, extra uid-0 users,
// baked-in SSH authorized_keys, and devices outside /dev.
type fileDetector struct{}

func newFiles(Config) (scan.Detector, error) { return &fileDetector{}, nil }

func (d *fileDetector) Name() string         { return "files" }
func (d *fileDetector) Want(*scan.File) bool { return false }
func (d *fileDetector) Content(context.Context, *scan.File, io.Reader) ([]scan.Finding, error) {
	return nil, nil
}

// Directories no executable belongs in.
var scratchDirs = []string{"/tmp/", "/var/tmp/", "/dev/shm/", "/run/", "/var/run/", "/dev/mqueue/"}

// Process names malware borrows to hide in a process list.
var kernelThreads = []string{"kworker", "kthreadd", "ksoftirqd", "kswapd", "kdevtmpfs", "migration", "watchdog", "rcu_sched", "kauditd", "khugepaged", "kblockd", "jbd2"}
var daemons = []string{"sshd", "crond", "cron", "systemd", "systemd-journald", "systemd-logind", "dbus-daemon", "rsyslogd", "udevd", "init", "agetty", "atd", "dhclient", "networkd", "containerd", "dockerd", "kubelet", "-bash", "bash"}

// Where system daemons live when a package installs them.
var systemDirs = []string{"/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/", "/usr/local/sbin/", "/usr/lib/", "/usr/libexec/", "/lib/", "/usr/lib64/", "/lib64/", "/opt/"}

func (d *fileDetector) Image(_ context.Context, im *scan.Image) ([]scan.Finding, error) {
	var out []scan.Finding
	add := func(id, sev, title string, f *scan.File, ev string) {
		out = append(out, scan.Finding{Type: scan.TypeMalware, Detector: "files", Severity: sev, ID: id, Title: title,
			Location: scan.Location{Path: f.Path, Layer: f.Layer}, Evidence: ev})
	}
	if im.Tree == nil {
		return nil, nil
	}
	for _, f := range im.Tree.Sorted() {
		_, owned := im.Owned[f.Path]
		hidden := hiddenDir(f.Path) || strings.HasPrefix(path.Base(f.Path), ".")
		scratch := hasPrefixAny(f.Path, scratchDirs)
		if f.IsRegular() && f.Mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			bits := "setuid"
			if f.Mode&fs.ModeSetuid == 0 {
				bits = "setgid"
			}
			switch {
			case owned:
			case scratch || hidden:
				add("AIRLOCK-FILE-SUID-ODD-PLACE", "critical", "Set"+bits[3:]+" executable in a scratch or hidden directory", f,
					fmt.Sprintf("%s %s owner uid %d", f.Mode, bits, f.UID))
			case len(im.Owned) > 0:
				add("AIRLOCK-FILE-SUID-UNPACKAGED", "high", "Set"+bits[3:]+" file no package installed", f,
					fmt.Sprintf("%s %s owner uid %d, not owned by any distro package", f.Mode, bits, f.UID))
			default:
				add("AIRLOCK-FILE-SUID", "medium", "Set"+bits[3:]+" file", f, fmt.Sprintf("%s %s owner uid %d (the image has no package database to vouch for it)", f.Mode, bits, f.UID))
			}
		}
		if f.ELF && !owned {
			base := path.Base(f.Path)
			switch {
			case scratch:
				add("AIRLOCK-FILE-ELF-SCRATCH", "high", "Executable in a scratch directory", f, "ELF file under "+path.Dir(f.Path))
			case hidden:
				add("AIRLOCK-FILE-ELF-HIDDEN", "medium", "Hidden executable", f, "ELF file hidden by a leading dot in "+f.Path)
			}
			if name := imitates(base); name != "" {
				sev := "medium"
				if isKernelThread(name) || scratch || hidden || !hasPrefixAny(f.Path, systemDirs) {
					sev = "high"
				}
				add("AIRLOCK-FILE-DAEMON-NAME", sev, "Executable named like a system process", f,
					fmt.Sprintf("%q imitates %q and no package installed it", base, name))
			}
		}
		if (f.Type == tar.TypeChar || f.Type == tar.TypeBlock) && !strings.HasPrefix(f.Path, "/dev/") {
			out = append(out, scan.Finding{Type: scan.TypeMisconfig, Detector: "files", Severity: "medium", ID: "AIRLOCK-FILE-DEVICE",
				Title: "Device file outside /dev", Location: scan.Location{Path: f.Path, Layer: f.Layer}})
		}
		if f.IsRegular() && (path.Base(f.Path) == "authorized_keys" || path.Base(f.Path) == "authorized_keys2") {
			out = append(out, scan.Finding{Type: scan.TypeMalware, Detector: "files", Severity: "high", ID: "AIRLOCK-FILE-AUTHORIZED-KEYS",
				Title:    "SSH authorized_keys baked into the image",
				Location: scan.Location{Path: f.Path, Layer: f.Layer}, Evidence: "whoever holds the matching key can log in to every container"})
		}
	}
	if f, ok := im.Tree.Files["/etc/passwd"]; ok && f.IsRegular() {
		if b, err := im.Tree.ReadFile("/etc/passwd", 4<<20); err == nil {
			for _, u := range UIDZeroUsers(b) {
				if u != "root" {
					add("AIRLOCK-FILE-UID0-USER", "critical", "Extra user with uid 0", f, fmt.Sprintf("user %q has uid 0", u))
				}
			}
		}
	}
	return out, nil
}

// UIDZeroUsers lists the users of a passwd file whose uid is 0.
func UIDZeroUsers(passwd []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(passwd))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ":")
		if len(fields) >= 3 && strings.TrimLeft(fields[2], "0") == "" && fields[2] != "" {
			out = append(out, fields[0])
		}
	}
	return out
}

func hasPrefixAny(p string, prefixes []string) bool {
	for _, x := range prefixes {
		if strings.HasPrefix(p, x) {
			return true
		}
	}
	return false
}

// hiddenDir reports whether a directory on p's path starts with a dot.
func hiddenDir(p string) bool {
	dir := path.Dir(p)
	for _, part := range strings.Split(dir, "/") {
		if strings.HasPrefix(part, ".") && part != "." && part != ".." {
			return true
		}
	}
	return false
}

// imitates returns the system process base imitates, if any: a kernel
// thread name (also bracketed, "[kworker/0:1]"), or a daemon name with a
// small change ("sshd " with a space, "crond.", "systemd-" look-alikes).
func imitates(base string) string {
	b := strings.Trim(strings.ToLower(base), "[] .")
	for _, k := range kernelThreads {
		if strings.HasPrefix(b, k) {
			return k
		}
	}
	if strings.HasPrefix(base, "[") || strings.HasSuffix(base, " ") || strings.HasPrefix(base, " ") || strings.HasSuffix(base, ".") {
		for _, dn := range daemons {
			if b == dn {
				return dn
			}
		}
	}
	return ""
}

func isKernelThread(n string) bool {
	for _, k := range kernelThreads {
		if n == k {
			return true
		}
	}
	return false
}
