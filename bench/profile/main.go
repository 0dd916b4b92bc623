// Command profile measures what the sandbox's seccomp tracer costs: one
// syscall-heavy workload (opens, stats, reads, writes, creates, unlinks and
// execs) run in the sandbox untraced and traced, and — the peer — on the
// host under `strace -f`, which stops at every system call, beside the same
// workload on the host untraced. It also reports the sandbox's start-up
// time. Needs root (the sandbox does).
//
//	go run ./bench/profile                       # defaults: 3 reps, 20000 iterations, 200 execs
//	go run ./bench/profile -reps 5 -iters 50000
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/host"
	"github.com/airlock-dev/airlock/internal/sandbox"
)

// workloadSrc is the syscall-heavy program: each iteration opens a file and
// reads it in `chunks` pread calls, stats two paths (one missing), creates a
// file and writes `chunks` blocks, renames and unlinks it; every
// iters/execs iterations it execs busybox true. It prints how long the loop
// took, so start-up is not part of the number.
const workloadSrc = `package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

func main() {
	iters, _ := strconv.Atoi(os.Args[1])
	execs, _ := strconv.Atoi(os.Args[2])
	chunks, _ := strconv.Atoi(os.Args[3])
	every := iters
	if execs > 0 {
		every = iters / execs
	}
	buf := make([]byte, 4096)
	start := time.Now()
	for i := 0; i < iters; i++ {
		f, err := os.Open("/etc/passwd")
		if err != nil {
			panic(err)
		}
		for c := 0; c < chunks; c++ {
			f.ReadAt(buf[:512], int64(c*64%512))
		}
		f.Close()
		os.Stat("/bin/busybox")
		os.Stat("/nonexistent")
		name := "/tmp/w" + strconv.Itoa(i%16)
		w, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			panic(err)
		}
		for c := 0; c < chunks; c++ {
			w.Write(buf[:512])
		}
		w.Close()
		os.Rename(name, name+".r")
		os.Remove(name + ".r")
		if execs > 0 && i%every == 0 {
			if err := exec.Command("/bin/busybox", "true").Run(); err != nil {
				panic(err)
			}
		}
	}
	fmt.Printf("elapsed_ns %d\n", time.Since(start).Nanoseconds())
}
`

type modeResult struct {
	Mode    string    `json:"mode"`
	Seconds []float64 `json:"seconds"` // the workload's loop, per rep
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Events  int       `json:"events,omitempty"` // events recorded by the sandbox (last rep)
}

type report struct {
	Machine     host.Machine `json:"machine"`
	Version     string       `json:"version"`
	Iters       int          `json:"iters"`
	Execs       int          `json:"execs"`
	Chunks      int          `json:"chunks"`
	Reps        int          `json:"reps"`
	Modes       []modeResult `json:"modes"`
	TracedRatio float64      `json:"tracedOverUntraced"`
	StraceRatio float64      `json:"straceOverHost"`
	// Ratios of the fastest runs: on a loaded machine the minimum is the
	// run least disturbed by other work.
	TracedRatioMin float64   `json:"tracedOverUntracedMin"`
	StraceRatioMin float64   `json:"straceOverHostMin"`
	StartupMedian  float64   `json:"startupMedianSeconds"`
	StartupSamples []float64 `json:"startupSeconds"`
}

func main() {
	var out string
	var reps, iters, execs, chunks int
	flag.StringVar(&out, "out", "bench/profile/out", "directory for results.md and results.json")
	flag.IntVar(&reps, "reps", 3, "timed runs per mode (after one untimed warm-up)")
	flag.IntVar(&iters, "iters", 20000, "workload iterations")
	flag.IntVar(&execs, "execs", 200, "execs of busybox true spread over the iterations")
	flag.IntVar(&chunks, "chunks", 1, "reads of the opened file and writes of the created one per iteration (512 bytes each): more means fewer trapped calls per system call")
	flag.Parse()
	if err := run(out, reps, iters, execs, chunks); err != nil {
		fmt.Fprintln(os.Stderr, "bench/profile:", err)
		os.Exit(1)
	}
}

func run(out string, reps, iters, execs, chunks int) error {
	if err := sandbox.Available(); err != nil {
		return err
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		return errors.New("strace is not installed (Debian package strace): it is the peer this benchmark compares with")
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("busybox-static is not installed: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// On a tmpfs when there is one, so the host runs write to memory as
	// the sandbox's overlay does, and disk contention stays out of the
	// numbers.
	tmp := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		tmp = "/dev/shm"
	}
	work, err := os.MkdirTemp(tmp, "airlock-bench-profile-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	rootfs := filepath.Join(work, "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "dev"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	_ = os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777)
	// The host runs chroot into the same directory; exec needs /dev/null.
	if err := syscall.Mknod(filepath.Join(rootfs, "dev/null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		return fmt.Errorf("create dev/null for the host runs: %w", err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), busybox, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		return err
	}
	if err := buildWorkload(work, filepath.Join(rootfs, "bin/work")); err != nil {
		return err
	}
	args := []string{"/bin/work", strconv.Itoa(iters), strconv.Itoa(execs), strconv.Itoa(chunks)}
	ctx := context.Background()

	rep := report{Machine: host.DescribeMachine(), Version: host.GitDescribe(ctx, "."), Iters: iters, Execs: execs, Chunks: chunks, Reps: reps}
	inSandbox := func(trace bool) (float64, int, error) {
		res, err := sandbox.Run(ctx, sandbox.Spec{Rootfs: rootfs, Entrypoint: args, Duration: 10 * time.Minute, Trace: trace,
			Limits: sandbox.Limits{Pids: 64, MemoryBytes: 1 << 30, CPUPercent: 100}})
		if err != nil {
			return 0, 0, err
		}
		if res.Exit.Code != 0 || res.Exit.Signal != 0 {
			return 0, 0, fmt.Errorf("the workload failed in the sandbox: %+v\n%s", res.Exit, res.Output)
		}
		s, err := elapsed(res.Output)
		return s, len(res.Events), err
	}
	onHost := func(prefix ...string) (float64, int, error) {
		cmdline := append(append(prefix, "chroot", rootfs), args...)
		b, err := exec.Command(cmdline[0], cmdline[1:]...).Output()
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", strings.Join(cmdline, " "), err)
		}
		s, err := elapsed(b)
		return s, 0, err
	}
	modes := []struct {
		name string
		fn   func() (float64, int, error)
	}{
		{"sandbox, untraced", func() (float64, int, error) { return inSandbox(false) }},
		{"sandbox, traced (seccomp user notification)", func() (float64, int, error) { return inSandbox(true) }},
		{"host (chroot), untraced", func() (float64, int, error) { return onHost() }},
		{"host (chroot) under strace -f", func() (float64, int, error) { return onHost(strace, "-f", "-qq", "-o", "/dev/null") }},
	}
	rep.Machine.LoadStart = host.LoadAvg()
	// Interleave the modes rep by rep so load changes hit them alike.
	results := make([]modeResult, len(modes))
	for i, m := range modes {
		results[i].Mode = m.name
		if _, _, err := m.fn(); err != nil { // warm-up
			return err
		}
	}
	for r := 0; r < reps; r++ {
		for i, m := range modes {
			s, n, err := m.fn()
			if err != nil {
				return err
			}
			results[i].Seconds = append(results[i].Seconds, s)
			results[i].Events = n
			fmt.Fprintf(os.Stderr, "rep %d %-45s %.3f s\n", r+1, m.name, s)
		}
	}
	for i := range results {
		results[i].Median = median(results[i].Seconds)
		results[i].Min = minimum(results[i].Seconds)
	}
	rep.Modes = results
	rep.TracedRatio = results[1].Median / results[0].Median
	rep.StraceRatio = results[3].Median / results[2].Median
	rep.TracedRatioMin = results[1].Min / results[0].Min
	rep.StraceRatioMin = results[3].Min / results[2].Min

	for i := 0; i < 2*reps+1; i++ {
		res, err := sandbox.Run(ctx, sandbox.Spec{Rootfs: rootfs, Entrypoint: []string{"/bin/busybox", "true"}, Duration: time.Minute, Trace: true})
		if err != nil {
			return err
		}
		rep.StartupSamples = append(rep.StartupSamples, res.StartupTime.Seconds())
	}
	rep.StartupMedian = median(rep.StartupSamples)
	rep.Machine.LoadEnd = host.LoadAvg()

	js, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	md := markdown(rep)
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	_, err = io.WriteString(os.Stdout, md)
	return err
}

func markdown(r report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# bench/profile (%s)\n\n", r.Version)
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, kernel %s, %s; load %s → %s\n\n", r.Machine.CPU, r.Machine.CPUs, r.Machine.Kernel, r.Machine.Go, r.Machine.LoadStart, r.Machine.LoadEnd)
	fmt.Fprintf(&b, "Workload: %d iterations of open + %d reads, 2 stats, create + %d writes, rename, unlink; %d execs of busybox true. %d reps, interleaved (loop time measured by the workload itself).\n\n", r.Iters, r.Chunks, r.Chunks, r.Execs, r.Reps)
	b.WriteString("| mode | median s | min s | runs s | events |\n|---|---|---|---|---|\n")
	for _, m := range r.Modes {
		runs := make([]string, len(m.Seconds))
		for i, s := range m.Seconds {
			runs[i] = fmt.Sprintf("%.3f", s)
		}
		ev := ""
		if m.Events > 0 {
			ev = strconv.Itoa(m.Events)
		}
		fmt.Fprintf(&b, "| %s | %.3f | %.3f | %s | %s |\n", m.Mode, m.Median, m.Min, strings.Join(runs, ", "), ev)
	}
	fmt.Fprintf(&b, "\n- traced / untraced in the sandbox: **%.2f×** median, %.2f× fastest runs (goal ≤ 1.5×)\n", r.TracedRatio, r.TracedRatioMin)
	fmt.Fprintf(&b, "- strace -f / untraced on the host: **%.2f×** median, %.2f× fastest runs\n", r.StraceRatio, r.StraceRatioMin)
	fmt.Fprintf(&b, "- sandbox start-up (Run called → entrypoint exec'd, traced, busybox true): median **%.0f ms** over %d runs\n", r.StartupMedian*1000, len(r.StartupSamples))
	return b.String()
}

var elapsedRE = regexp.MustCompile(`elapsed_ns (\d+)`)

func elapsed(out []byte) (float64, error) {
	m := elapsedRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("the workload printed no elapsed time: %q", out)
	}
	ns, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return float64(ns) / 1e9, nil
}

func minimum(s []float64) float64 {
	if len(s) == 0 {
		return 0
	}
	m := s[0]
	for _, v := range s[1:] {
		if v < m {
			m = v
		}
	}
	return m
}

func median(s []float64) float64 {
	c := append([]float64(nil), s...)
	sort.Float64s(c)
	if len(c) == 0 {
		return 0
	}
	return c[len(c)/2]
}

func buildWorkload(dir, out string) error {
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(workloadSrc), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module benchworkload\n\ngo 1.22\n"), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the workload: %v\n%s", err, b)
	}
	return nil
}
