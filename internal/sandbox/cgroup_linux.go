package sandbox

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroup is the run's control group: limits for pids, memory and CPU, and
// the counters Result.Resources is read from. Both the unified (v2)
// hierarchy and the legacy per-controller (v1) hierarchies are handled;
// which one is used depends on what the host offers.
type cgroup struct {
	v2   string            // the run's directory in the unified hierarchy, or ""
	v1   map[string]string // controller -> the run's directory
	name string
}

var cgroupControllers = []string{"pids", "memory", "cpu", "cpuacct"}

// newCgroup creates the run's cgroup below the caller's own and applies lim.
func newCgroup(lim Limits) (*cgroup, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	// The supervisor's pid in the name tells a later sweep whether the run
	// that made it may still be going.
	cg := &cgroup{name: fmt.Sprintf("airlock-sandbox-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:])), v1: map[string]string{}}
	own, mounts, err := cgroupLayout()
	if err != nil {
		return nil, err
	}
	if uni, ok := mounts[""]; ok && fileExists(filepath.Join(uni, "cgroup.controllers")) && hasControllers(uni, own[""]) {
		parent := filepath.Join(uni, own[""])
		// Controllers must be enabled for children of the parent; this
		// fails when the parent itself holds processes (no internal
		// processes rule), in which case run airlock in its own cgroup.
		_ = os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+pids +memory +cpu"), 0)
		dir := filepath.Join(parent, cg.name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create the sandbox cgroup %s: %w", dir, err)
		}
		cg.v2 = dir
		writes := [][2]string{
			{"pids.max", strconv.Itoa(lim.Pids)},
			{"memory.max", strconv.FormatInt(lim.MemoryBytes, 10)},
			{"memory.swap.max", "0"},
			{"cpu.max", fmt.Sprintf("%d 100000", lim.CPUPercent*1000)},
		}
		for _, w := range writes {
			if err := os.WriteFile(filepath.Join(dir, w[0]), []byte(w[1]), 0); err != nil && w[0] != "memory.swap.max" {
				cg.remove()
				return nil, fmt.Errorf("set %s in the sandbox cgroup (is the %s controller delegated to this cgroup?): %w", w[0], strings.Split(w[0], ".")[0], err)
			}
		}
		return cg, nil
	}
	defer sweepCgroups(own, mounts)
	for _, c := range cgroupControllers {
		mnt, ok := mounts[c]
		if !ok {
			cg.remove()
			return nil, fmt.Errorf("%w: no cgroup %s controller is mounted (neither cgroup v2 with it delegated nor a v1 hierarchy)", ErrUnsupported, c)
		}
		dir := filepath.Join(mnt, own[c], cg.name)
		if existing, ok := cg.v1[c]; ok && existing == dir {
			continue
		}
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			cg.remove()
			return nil, fmt.Errorf("create the sandbox cgroup %s: %w", dir, err)
		}
		cg.v1[c] = dir
	}
	writes := [][3]string{
		{"pids", "pids.max", strconv.Itoa(lim.Pids)},
		{"memory", "memory.limit_in_bytes", strconv.FormatInt(lim.MemoryBytes, 10)},
		{"memory", "memory.memsw.limit_in_bytes", strconv.FormatInt(lim.MemoryBytes, 10)},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpu", "cpu.cfs_quota_us", strconv.Itoa(lim.CPUPercent * 1000)},
	}
	for _, w := range writes {
		if err := os.WriteFile(filepath.Join(cg.v1[w[0]], w[1]), []byte(w[2]), 0); err != nil && w[1] != "memory.memsw.limit_in_bytes" {
			cg.remove()
			return nil, fmt.Errorf("set %s in the sandbox cgroup: %w", w[1], err)
		}
	}
	return cg, nil
}

// sweepCgroups removes run cgroups that earlier supervisors left behind
// (killed before they could clean up): the supervisor named in the cgroup
// is gone, the cgroup is empty and older than a minute.
func sweepCgroups(own, mounts map[string]string) {
	for c, mnt := range mounts {
		parent := filepath.Join(mnt, own[c])
		stale, _ := filepath.Glob(filepath.Join(parent, "airlock-sandbox-*"))
		for _, d := range stale {
			if !abandoned(d) {
				continue
			}
			if b, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil && len(strings.TrimSpace(string(b))) == 0 {
				_ = os.Remove(d)
			}
		}
	}
}

// abandoned tells whether a run's cgroup or scratch directory was left by
// a supervisor that is gone: the pid in its name no longer exists and it is
// older than a minute (names without a pid, from older versions: an hour).
func abandoned(path string) bool {
	st, err := os.Stat(path)
	if err != nil {
		return false
	}
	pidPart, _, found := strings.Cut(strings.TrimPrefix(filepath.Base(path), "airlock-sandbox-"), "-")
	pid, err := strconv.Atoi(pidPart)
	if !found || err != nil {
		return time.Since(st.ModTime()) > time.Hour
	}
	if pid <= 0 || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
		return false
	}
	return time.Since(st.ModTime()) > time.Minute
}

// sweepScratch removes empty scratch directories abandoned by earlier
// supervisors (a live run's scratch directory is empty on the host too, so
// only the owner test tells them apart).
func sweepScratch() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "airlock-sandbox-*"))
	for _, d := range dirs {
		if abandoned(d) {
			_ = os.Remove(d) // only ever removes an empty directory
		}
	}
}

func hasControllers(uni, own string) bool {
	b, err := os.ReadFile(filepath.Join(uni, own, "cgroup.controllers"))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	need := map[string]bool{"pids": false, "memory": false, "cpu": false}
	for _, c := range f {
		if _, ok := need[c]; ok {
			need[c] = true
		}
	}
	for _, ok := range need {
		if !ok {
			return false
		}
	}
	return true
}

// cgroupLayout returns the caller's cgroup path per controller ("" for the
// unified hierarchy) and where each hierarchy is mounted.
func cgroupLayout() (own, mounts map[string]string, err error) {
	own = map[string]string{}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, nil, fmt.Errorf("%w: read /proc/self/cgroup: %v", ErrUnsupported, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			own[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			own[c] = parts[2]
		}
	}
	mounts = map[string]string{}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, nil, fmt.Errorf("%w: read /proc/self/mountinfo: %v", ErrUnsupported, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(fields) < sep+4 || len(fields) < 5 {
			continue
		}
		root, point, fstype, opts := fields[3], fields[4], fields[sep+1], fields[sep+3]
		switch fstype {
		case "cgroup2":
			if _, ok := mounts[""]; !ok {
				mounts[""] = point
				if root != "/" { // a cgroup namespace: paths are relative to the mount
					own[""] = strings.TrimPrefix(own[""], root)
				}
			}
		case "cgroup":
			for _, o := range strings.Split(opts, ",") {
				for _, c := range cgroupControllers {
					if o == c {
						if _, ok := mounts[c]; !ok {
							mounts[c] = point
						}
					}
				}
			}
		}
	}
	return own, mounts, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// add moves pid into the cgroup.
func (cg *cgroup) add(pid int) error {
	dirs := cg.dirs()
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("move the sandbox into its cgroup %s: %w", d, err)
		}
	}
	return nil
}

// addThread moves one thread of the supervisor into the run's cpu and
// cpuacct cgroups (cgroup v1 only: v2 would need a threaded subtree) and
// returns how to move it back, which must happen before the cgroup is
// removed.
func (cg *cgroup) addThread(tid int) (undo func()) {
	if cg.v2 != "" {
		return func() {}
	}
	var moved []string
	for _, c := range []string{"cpu", "cpuacct"} {
		if d, ok := cg.v1[c]; ok {
			if os.WriteFile(filepath.Join(d, "tasks"), []byte(strconv.Itoa(tid)), 0) == nil {
				moved = append(moved, filepath.Dir(d))
			}
		}
	}
	return func() {
		for _, parent := range moved {
			_ = os.WriteFile(filepath.Join(parent, "tasks"), []byte(strconv.Itoa(tid)), 0)
		}
	}
}

func (cg *cgroup) dirs() []string {
	if cg.v2 != "" {
		return []string{cg.v2}
	}
	seen := map[string]bool{}
	var out []string
	for _, c := range cgroupControllers {
		if d, ok := cg.v1[c]; ok && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

func (cg *cgroup) file(ctrl, v1name, v2name string) string {
	if cg.v2 != "" {
		return filepath.Join(cg.v2, v2name)
	}
	return filepath.Join(cg.v1[ctrl], v1name)
}

func readInt(p string) int64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// keyed reads "key value" lines (pids.events, memory.events, cpu.stat, oom_control).
func keyed(p, key string) int64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// cpuNanos is the CPU time used so far.
func (cg *cgroup) cpuNanos() int64 {
	if cg.v2 != "" {
		return keyed(filepath.Join(cg.v2, "cpu.stat"), "usage_usec") * 1000
	}
	return readInt(filepath.Join(cg.v1["cpuacct"], "cpuacct.usage"))
}

func (cg *cgroup) pidsCurrent() int {
	return int(readInt(cg.file("pids", "pids.current", "pids.current")))
}

// resources reads the counters; peakPids is the sampled peak, used where the
// kernel has no pids.peak.
func (cg *cgroup) resources(peakPids int) (Resources, bool) {
	var r Resources
	r.CPUSeconds = float64(cg.cpuNanos()) / 1e9
	var oom bool
	if cg.v2 != "" {
		r.PeakMemoryBytes = readInt(filepath.Join(cg.v2, "memory.peak"))
		r.MemoryLimitHit = keyed(filepath.Join(cg.v2, "memory.events"), "max") > 0
		oom = keyed(filepath.Join(cg.v2, "memory.events"), "oom_kill") > 0
	} else {
		r.PeakMemoryBytes = readInt(filepath.Join(cg.v1["memory"], "memory.max_usage_in_bytes"))
		r.MemoryLimitHit = readInt(filepath.Join(cg.v1["memory"], "memory.failcnt")) > 0
		oom = keyed(filepath.Join(cg.v1["memory"], "memory.oom_control"), "oom_kill") > 0
	}
	if oom {
		r.MemoryLimitHit = true
	}
	r.PeakPids = int(readInt(cg.file("pids", "pids.peak", "pids.peak")))
	if r.PeakPids < peakPids {
		r.PeakPids = peakPids
	}
	r.PidsLimitHit = keyed(cg.file("pids", "pids.events", "pids.events"), "max") > 0
	return r, oom
}

// kill ends every process in the cgroup (cgroup.kill on v2; on v1 the
// caller kills the PID namespace's init, which takes the rest with it).
func (cg *cgroup) kill() {
	if cg.v2 != "" {
		_ = os.WriteFile(filepath.Join(cg.v2, "cgroup.kill"), []byte("1"), 0)
		return
	}
	for _, d := range cg.dirs() {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// remove deletes the cgroup once its processes are gone.
func (cg *cgroup) remove() error {
	var last error
	for _, d := range cg.dirs() {
		// The kernel may keep a cgroup busy for a while after its last
		// task is reaped, longer on a loaded machine.
		var err error
		wait := 5 * time.Millisecond
		for deadline := time.Now().Add(15 * time.Second); ; {
			if err = os.Remove(d); err == nil || errors.Is(err, os.ErrNotExist) {
				err = nil
				break
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(wait)
			if wait < 200*time.Millisecond {
				wait *= 2
			}
		}
		if err != nil {
			last = fmt.Errorf("remove the sandbox cgroup %s: %w", d, err)
		}
	}
	return last
}
