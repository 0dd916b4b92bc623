// Command pin compares `airlock pin` with frizbee (and ratchet, where it can
// be installed) on a generated repository of mixed-format files whose image
// references name a loopback upstream registry, side by side in one run.
//
// airlock is measured against a warm digest cache two ways: a running
// airlock server on 127.0.0.1 (one batched resolve request), and the lock
// file alone (--offline). Peers resolve tags against the same loopback
// registry (their only way to get digests). Each timed run starts from a
// fresh copy of the repository.
//
//	go run ./bench/pin -files 1000 -images 50 -reps 5
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/bench/internal/host"
	"github.com/airlock-dev/airlock/internal/server"
)

const frizbeeVersion = "v0.1.7"

type options struct {
	files, images, reps int
	out                 string
	keep                bool
}

func main() {
	var o options
	flag.IntVar(&o.files, "files", 1000, "files in the generated repository")
	flag.IntVar(&o.images, "images", 50, "distinct images the files name")
	flag.IntVar(&o.reps, "reps", 5, "timed runs per tool, each on a fresh copy; the table shows the median")
	flag.StringVar(&o.out, "out", "", "directory to write results.json and results.md to (default: print the table only)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (repositories, server data, logs)")
	flag.Parse()
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

type result struct {
	Tool     string          `json:"tool"`
	Scope    string          `json:"scope"` // all formats, or the formats frizbee reads
	Files    int             `json:"files"`
	Median   time.Duration   `json:"medianNs"`
	Runs     []time.Duration `json:"runsNs"`
	CPU      time.Duration   `json:"medianCpuNs"` // user + system time of the process
	CPUs     []time.Duration `json:"cpuNs"`
	Pinned   int             `json:"pinnedLines"` // lines changed
	Note     string          `json:"note,omitempty"`
	Coverage string          `json:"coverage,omitempty"`
}

func run(o options) error {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "airlock-bench-pin-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(work)
	} else {
		log.Printf("work directory: %s", work)
	}
	bin := filepath.Join(work, "bin")
	airlock := filepath.Join(bin, "airlock")
	log.Printf("building airlock")
	if err := sh(nil, "go", "build", "-o", airlock, "./cmd/airlock"); err != nil {
		return err
	}
	frizbee, err := installFrizbee()
	if err != nil {
		return err
	}

	// the loopback upstream: a plain registry without auth, over HTTP
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	up := &http.Server{Handler: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = up.Serve(ln) }()
	defer up.Close()
	upHost := ln.Addr().String()
	ref := func(k int) string { return fmt.Sprintf("%s/library/app-%02d:1.%d", upHost, k%o.images, k%o.images) }
	log.Printf("pushing %d images to the loopback upstream %s", o.images, upHost)
	for k := 0; k < o.images; k++ {
		img, err := random.Image(1024, 1)
		if err != nil {
			return err
		}
		r, err := name.ParseReference(ref(k), name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(r, img); err != nil {
			return err
		}
	}

	// airlock serve with every image imported and approved
	srvURL, token, stop, err := startAirlock(ctx, airlock, filepath.Join(work, "airlock-data"))
	if err != nil {
		return err
	}
	defer stop()
	c := server.NewClient(srvURL, token)
	log.Printf("importing and approving %d images in airlock", o.images)
	for k := 0; k < o.images; k++ {
		d, err := importImage(ctx, c, ref(k))
		if err != nil {
			return err
		}
		if _, err := c.Decide(ctx, d, "approve", server.DecisionRequest{Reason: "bench"}); err != nil {
			return err
		}
	}

	src, subset := filepath.Join(work, "repo"), filepath.Join(work, "subset")
	counts, err := generate(src, subset, o.files, ref)
	if err != nil {
		return err
	}
	nAll, nSub := countFiles(src), countFiles(subset)
	log.Printf("generated %d files (%v); %d in frizbee's formats", nAll, counts, nSub)

	lock := filepath.Join(work, "airlock.lock")
	env := append(os.Environ(), "AIRLOCK_TOKEN="+token, "AIRLOCK_CREDENTIALS="+filepath.Join(work, "none.json"))
	// record the lock file once (and check the server run pins everything)
	first := copyRepo(work, src, "first")
	if err := shEnv(env, nil, airlock, "pin", "--write", "--server", srvURL, "--lock", lock, first); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			return fmt.Errorf("airlock pin: %w", err)
		}
	}

	var results []result
	measure := func(tool, scope, from string, cmd func(dir string) *exec.Cmd, note string) (result, string, error) {
		r := result{Tool: tool, Scope: scope, Files: countFiles(from), Note: note}
		var last string
		for i := 0; i < o.reps+1; i++ {
			dir := copyRepo(work, from, fmt.Sprintf("%s-%d", strings.ReplaceAll(tool, " ", "_"), i))
			c := cmd(dir)
			c.Env = env
			var out bytes.Buffer
			c.Stdout, c.Stderr = &out, &out
			start := time.Now()
			err := c.Run()
			d := time.Since(start)
			var ee *exec.ExitError
			if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
				return r, "", fmt.Errorf("%s: %v\n%s", tool, err, tail(out.String()))
			}
			_ = os.WriteFile(filepath.Join(work, strings.ReplaceAll(tool, " ", "_")+".log"), out.Bytes(), 0o644)
			if i > 0 { // the first run warms the page cache and binaries
				r.Runs = append(r.Runs, d)
				r.CPUs = append(r.CPUs, c.ProcessState.UserTime()+c.ProcessState.SystemTime())
			}
			if last != "" {
				os.RemoveAll(last)
			}
			last = dir
		}
		r.Median, r.CPU = median(r.Runs), median(r.CPUs)
		r.Pinned = changedLines(from, last)
		return r, last, nil
	}
	loadBefore := host.LoadAvg()
	log.Printf("measuring (%d runs each); load average %s", o.reps, loadBefore)
	aServer, _, err := measure("airlock pin (server)", "all formats", src, func(dir string) *exec.Cmd {
		return exec.Command(airlock, "pin", "--write", "--server", srvURL, dir)
	}, "warm server on 127.0.0.1: one batched resolve request")
	if err != nil {
		return err
	}
	aLock, _, err := measure("airlock pin (lock file)", "all formats", src, func(dir string) *exec.Cmd {
		return exec.Command(airlock, "pin", "--write", "--offline", "--lock", lock, dir)
	}, "--offline: the lock file alone")
	if err != nil {
		return err
	}
	aSub, aSubDir, err := measure("airlock pin (lock file)", "frizbee's formats", subset, func(dir string) *exec.Cmd {
		return exec.Command(airlock, "pin", "--write", "--offline", "--lock", lock, dir)
	}, "--offline: the lock file alone")
	if err != nil {
		return err
	}
	aSubSrv, _, err := measure("airlock pin (server)", "frizbee's formats", subset, func(dir string) *exec.Cmd {
		return exec.Command(airlock, "pin", "--write", "--server", srvURL, dir)
	}, "warm server on 127.0.0.1")
	if err != nil {
		return err
	}
	fz, fzDir, err := measure("frizbee "+frizbeeVersion, "frizbee's formats", subset, func(dir string) *exec.Cmd {
		return exec.Command(frizbee, "image", dir)
	}, "resolves each tag against the loopback registry")
	if err != nil {
		return err
	}
	// the floor under every airlock run: the one binary's start-up (runtime
	// and package initialisation of every command's dependencies)
	aStart, _, err := measure("airlock version", "start-up only", subset, func(string) *exec.Cmd {
		return exec.Command(airlock, "version")
	}, "the binary's start-up alone, no files read")
	if err != nil {
		return err
	}
	aStart.Files = 0
	missed := notCovered(subset, fzDir, aSubDir)
	fz.Coverage = fmt.Sprintf("airlock pinned %d of the %d lines frizbee pinned", fz.Pinned-len(missed), fz.Pinned)
	results = append(results, aServer, aLock, aSubSrv, aSub, aStart, fz)
	results = append(results, result{Tool: "ratchet", Note: "not measured: the Go module proxy refuses github.com/sethvargo/ratchet (403 Forbidden) on this machine, so it cannot be installed with go install"})

	md := report(results, o, nAll, nSub, fz, aSub, aSubSrv, aLock, aServer, missed)
	md += fmt.Sprintf("Load average (1, 5, 15 min): %s before the timed runs, %s after.\n", loadBefore, host.LoadAvg())
	fmt.Print(md)
	if o.out == "" {
		return nil
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(results, "", "  ")
	return os.WriteFile(filepath.Join(o.out, "results.json"), append(b, '\n'), 0o644)
}

func report(results []result, o options, nAll, nSub int, fz, aSub, aSubSrv, aLock, aServer result, missed []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## airlock pin vs frizbee: %d files (%d in frizbee's formats), %d images, median of %d runs\n\n", nAll, nSub, o.images, o.reps)
	fmt.Fprintln(&b, "| tool | formats | files | median wall | median CPU (user+sys) | lines pinned | note |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|")
	for _, r := range results {
		if r.Median == 0 {
			fmt.Fprintf(&b, "| %s | - | - | - | - | - | %s |\n", r.Tool, r.Note)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %d | %s |\n", r.Tool, r.Scope, r.Files, r.Median.Round(time.Millisecond), r.CPU.Round(time.Millisecond), r.Pinned, r.Note)
	}
	ratio := func(a, b time.Duration) string { return fmt.Sprintf("%.1f×", float64(a)/float64(b)) }
	fmt.Fprintf(&b, "\nOn frizbee's formats: airlock with the lock file is %s faster than frizbee in wall time (%s in CPU time), with the server %s (%s in CPU time).\n",
		ratio(fz.Median, aSub.Median), ratio(fz.CPU, aSub.CPU), ratio(fz.Median, aSubSrv.Median), ratio(fz.CPU, aSubSrv.CPU))
	fmt.Fprintf(&b, "All formats: lock file %s, server %s (%d lines pinned).\n", aLock.Median.Round(time.Millisecond), aServer.Median.Round(time.Millisecond), aServer.Pinned)
	fmt.Fprintf(&b, "Coverage: %s", fz.Coverage)
	if len(missed) > 0 {
		fmt.Fprintf(&b, "; missed: %s", strings.Join(missed[:min(len(missed), 10)], ", "))
	}
	fmt.Fprintf(&b, ".\n")
	return b.String()
}

// installFrizbee installs frizbee at the pinned version into the module's
// bin cache (once) and returns its path.
func installFrizbee() (string, error) {
	dir := filepath.Join(os.TempDir(), "airlock-bench-tools", "frizbee-"+frizbeeVersion)
	p := filepath.Join(dir, "frizbee")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	log.Printf("installing frizbee %s", frizbeeVersion)
	if err := sh([]string{"GOBIN=" + dir}, "go", "install", "github.com/stacklok/frizbee@"+frizbeeVersion); err != nil {
		return "", err
	}
	return p, nil
}

func startAirlock(ctx context.Context, bin, data string) (string, string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(data + ".log")
	if err != nil {
		return "", "", nil, err
	}
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data", data, "--log-level", "error")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		logf.Close()
	}
	u := "http://" + addr
	for i := 0; ; i++ {
		resp, err := http.Get(u + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i > 300 {
			stop()
			return "", "", nil, fmt.Errorf("airlock serve did not become ready; see %s.log", data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		stop()
		return "", "", nil, err
	}
	return u, strings.TrimSpace(string(tok)), stop, nil
}

// importImage imports ref into quarantine and returns its digest.
func importImage(ctx context.Context, c *server.Client, ref string) (string, error) {
	b, _ := json.Marshal(server.ImportRequest{Source: ref, Insecure: true})
	rc, err := c.Import(ctx, url.Values{}, "application/json", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e server.ImportEvent
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		if e.Type == "error" {
			return "", fmt.Errorf("import %s: %s", ref, e.Error)
		}
		if e.Type == "result" && e.Result != nil {
			return e.Result.Digest, nil
		}
	}
	return "", fmt.Errorf("import %s: no result", ref)
}

func sh(env []string, name string, args ...string) error {
	return shEnv(append(os.Environ(), env...), nil, name, args...)
}

func shEnv(env []string, out io.Writer, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(buf.String()))
	}
	return nil
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

func copyRepo(work, src, name string) string {
	dst := filepath.Join(work, "runs", name)
	_ = os.RemoveAll(dst)
	if err := exec.Command("cp", "-a", src, dst).Run(); err != nil {
		_ = os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := exec.Command("cp", "-a", src, dst).Run(); err != nil {
			log.Fatalf("copy %s: %v", src, err)
		}
	}
	return dst
}

func countFiles(dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// changedLines counts lines that differ between two trees of the same files.
func changedLines(a, b string) int {
	n := 0
	forEachLine(a, b, func(string, int, string, string) { n++ })
	return n
}

// notCovered lists file:line places the peer pinned (wrote a digest) that
// airlock did not.
func notCovered(orig, peer, airlock string) []string {
	var missed []string
	forEachLine(orig, peer, func(rel string, i int, _, peerLine string) {
		if !strings.Contains(peerLine, "@sha256:") {
			return
		}
		b, _ := os.ReadFile(filepath.Join(airlock, rel))
		lines := strings.Split(string(b), "\n")
		if i >= len(lines) || !strings.Contains(lines[i], "@sha256:") {
			missed = append(missed, fmt.Sprintf("%s:%d", rel, i+1))
		}
	})
	sort.Strings(missed)
	return missed
}

func forEachLine(a, b string, fn func(rel string, i int, la, lb string)) {
	_ = filepath.WalkDir(a, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(a, p)
		x, _ := os.ReadFile(p)
		y, _ := os.ReadFile(filepath.Join(b, rel))
		xl, yl := strings.Split(string(x), "\n"), strings.Split(string(y), "\n")
		for i := 0; i < len(xl) && i < len(yl); i++ {
			if xl[i] != yl[i] {
				fn(rel, i, xl[i], yl[i])
			}
		}
		return nil
	})
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
