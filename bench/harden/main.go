// Command harden measures what `airlock harden` removes and what it costs:
// for each test image (built here from real binaries and this machine's
// Debian packages) it profiles the image in the sandbox, hardens it,
// replays the profile on the result, and reports size before and after
// (compressed, as pulled, and uncompressed, as `docker images` shows),
// files, packages and executables removed, wall time of each step and
// whether the replay passed. Needs root (the sandbox).
//
//	go run ./bench/harden                 # all images, results in bench/harden/out
//	go run ./bench/harden -only python    # one image
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
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/bench/internal/host"
	"github.com/airlock-dev/airlock/internal/harden"
	"github.com/airlock-dev/airlock/internal/harden/hardentest"
	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/sandbox"
)

// testImage is one image of the benchmark and how it is exercised.
type testImage struct {
	Name     string
	Like     string // the public image it stands for
	Build    func(work string) (v1.Image, error)
	Duration time.Duration
	Probes   []sandbox.HTTPProbe
}

// Result is one image's measurements.
type Result struct {
	Name           string   `json:"name"`
	Like           string   `json:"like"`
	OriginalSize   int64    `json:"originalCompressed"`
	HardenedSize   int64    `json:"hardenedCompressed"`
	OriginalTar    int64    `json:"originalUncompressed"`
	HardenedTar    int64    `json:"hardenedUncompressed"`
	Ratio          float64  `json:"ratioUncompressed"` // original / hardened
	OriginalFiles  int      `json:"originalFiles"`
	HardenedFiles  int      `json:"hardenedFiles"`
	PackagesBefore int      `json:"packagesBefore"`
	PackagesAfter  int      `json:"packagesAfter"`
	RemovedExecs   int      `json:"removedExecutables"`
	ProfileSecs    float64  `json:"profileSeconds"`
	HardenSecs     float64  `json:"hardenSeconds"`
	ReplaySecs     float64  `json:"replaySeconds"`
	ReplayPassed   bool     `json:"replayPassed"`
	ReplayFailures []string `json:"replayFailures,omitempty"`
	Payload        string   `json:"payloadRemoved,omitempty"` // the planted miner, when there is one
}

func main() {
	var out, only string
	flag.StringVar(&out, "out", "bench/harden/out", "directory for results.md and results.json")
	flag.StringVar(&only, "only", "", "run only the image with this name")
	flag.Parse()
	if err := run(out, only); err != nil {
		fmt.Fprintln(os.Stderr, "bench/harden:", err)
		os.Exit(1)
	}
}

func run(out, only string) error {
	if err := sandbox.Available(); err != nil {
		return fmt.Errorf("the sandbox cannot run here (%v); run the benchmark as root on Linux", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "bench-harden-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	machine := host.DescribeMachine()
	ctx := context.Background()
	var results []Result
	for _, ti := range images() {
		if only != "" && ti.Name != only {
			continue
		}
		fmt.Fprintf(os.Stderr, "%s: building\n", ti.Name)
		img, err := ti.Build(work)
		if errors.Is(err, hardentest.ErrNoDpkg) || errors.Is(err, errSkip) {
			fmt.Fprintf(os.Stderr, "%s: skipped: %v\n", ti.Name, err)
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", ti.Name, err)
		}
		r, err := measure(ctx, work, out, ti, img)
		if err != nil {
			return fmt.Errorf("%s: %w", ti.Name, err)
		}
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "%s: %s → %s (%.1fx), replay passed %t\n", ti.Name, mib(r.OriginalTar), mib(r.HardenedTar), r.Ratio, r.ReplayPassed)
	}
	machine.LoadEnd = host.LoadAvg()
	b, err := json.MarshalIndent(struct {
		Machine host.Machine `json:"machine"`
		Results []Result     `json:"results"`
	}{machine, results}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "results.json"), b, 0o644); err != nil {
		return err
	}
	md := report(machine, results)
	fmt.Print(md)
	return os.WriteFile(filepath.Join(out, "results.md"), []byte(md), 0o644)
}

func measure(ctx context.Context, work, outDir string, ti testImage, img v1.Image) (Result, error) {
	r := Result{Name: ti.Name, Like: ti.Like}
	sb := harden.LocalSandbox()
	start := time.Now()
	pr, err := profile.Make(ctx, img, sb, profile.Options{Duration: ti.Duration, HTTPProbes: ti.Probes, TempDir: work, Version: "bench"})
	if err != nil {
		return r, fmt.Errorf("profile: %w", err)
	}
	r.ProfileSecs = time.Since(start).Seconds()
	start = time.Now()
	res, err := harden.Harden(ctx, img, &pr, harden.Options{TempDir: work, Version: "bench"})
	if err != nil {
		return r, fmt.Errorf("harden: %w", err)
	}
	defer res.Close()
	// Hardening is done when the new image's digest is known (the layer
	// written and compressed).
	if _, err := res.Image.Digest(); err != nil {
		return r, err
	}
	r.HardenSecs = time.Since(start).Seconds()
	start = time.Now()
	rr, err := harden.Replay(ctx, res.Image, &pr, harden.SandboxProfiler(sb, work, "bench"))
	if err != nil {
		return r, fmt.Errorf("replay: %w", err)
	}
	r.ReplaySecs = time.Since(start).Seconds()
	r.ReplayPassed, r.ReplayFailures = rr.Passed, rr.Failures
	rep := res.Report
	rep.Replay = rr
	rr.Profile = nil
	if b, err := json.MarshalIndent(rep, "", "  "); err == nil {
		os.WriteFile(filepath.Join(outDir, ti.Name+".report.json"), b, 0o644)
	}
	r.OriginalSize, r.HardenedSize = rep.Original.Size, rep.Hardened.Size
	r.OriginalFiles, r.HardenedFiles = rep.Original.Files, rep.Hardened.Files
	r.PackagesAfter, r.PackagesBefore = len(rep.Packages.Kept), len(rep.Packages.Kept)+len(rep.Packages.Removed)
	r.RemovedExecs = len(rep.Removed.Executables)
	for _, e := range rep.Removed.Executables {
		if strings.HasSuffix(e, "/xmrig") {
			r.Payload = e
		}
	}
	if r.OriginalTar, err = uncompressed(img); err != nil {
		return r, err
	}
	if r.HardenedTar, err = uncompressed(res.Image); err != nil {
		return r, err
	}
	r.Ratio = float64(r.OriginalTar) / float64(r.HardenedTar)
	return r, nil
}

// uncompressed is the sum of the layers' tar sizes.
func uncompressed(img v1.Image) (int64, error) {
	ls, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			return 0, err
		}
		c, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

var errSkip = errors.New("not available on this machine")

const minerSrc = `package main

import (
	"fmt"
	"net"
)

func main() {
	c, err := net.Dial("tcp", "pool.supportxmr.invalid:3333")
	if err != nil {
		return
	}
	fmt.Fprintf(c, "{\"id\":1,\"method\":\"login\",\"params\":{\"login\":\"x\",\"agent\":\"xmrig/6.21.0\"}}\n")
}
`

const serverSrc = `package main

import (
	"net/http"
	"os"
)

func main() {
	b, err := os.ReadFile("/etc/app/app.conf")
	if err != nil {
		os.Exit(4)
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write(b) })
	http.ListenAndServe(":8080", nil)
}
`

const pythonApp = `import json, hashlib, urllib.parse, datetime, ssl, http.server, threading, urllib.request
with open("/app/data.json") as f:
    d = json.load(f)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"host": urllib.parse.urlparse(d["url"]).hostname,
                           "sum": hashlib.sha256(d["url"].encode()).hexdigest()[:12],
                           "day": datetime.date(2026, 1, 2).isoformat(),
                           "cas": ssl.create_default_context().cert_store_stats()["x509_ca"]}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("", 8080), H).serve_forever()
`

func goBuild(work, name, src string) ([]byte, error) {
	dir := filepath.Join(work, "src-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+name+"\n\ngo 1.22\n"), 0o644)
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, name), ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %v\n%s", name, err, b)
	}
	return os.ReadFile(filepath.Join(dir, name))
}

// required is Debian's essential set as this machine has it: what
// debian:bookworm-slim is made of.
func required() ([]string, error) {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Package}\t${Priority}\t${Status}\n").Output()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", hardentest.ErrNoDpkg, err)
	}
	var pkgs []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) == 3 && f[1] == "required" && strings.HasSuffix(f[2], " installed") {
			pkgs = append(pkgs, f[0])
		}
	}
	return pkgs, nil
}

func images() []testImage {
	return []testImage{
		{Name: "go-server", Like: "a Go service on debian:bookworm-slim with a planted miner", Duration: 4 * time.Second,
			Probes: []sandbox.HTTPProbe{{Port: 8080, Path: "/healthz"}},
			Build: func(work string) (v1.Image, error) {
				server, err := goBuild(work, "server", serverSrc)
				if err != nil {
					return nil, err
				}
				miner, err := goBuild(work, "xmrig", minerSrc)
				if err != nil {
					return nil, err
				}
				base, err := required()
				if err != nil {
					return nil, err
				}
				img, _, err := hardentest.DebianImage(append(base, "ca-certificates"), map[string]hardentest.File{
					"app/":                {Dir: true, Mode: 0o755},
					"app/server":          {Data: server, Mode: 0o755},
					"etc/app/":            {Dir: true, Mode: 0o755},
					"etc/app/app.conf":    {Data: []byte("ok\n")},
					"usr/local/bin/xmrig": {Data: miner, Mode: 0o755},
				}, v1.Config{Entrypoint: []string{"/app/server"}, ExposedPorts: map[string]struct{}{"8080/tcp": {}}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}})
				return img, err
			}},
		{Name: "curl", Like: "debian:bookworm-slim + curl (apt-get install curl)", Duration: 5 * time.Second,
			Build: func(work string) (v1.Image, error) {
				base, err := required()
				if err != nil {
					return nil, err
				}
				if !hardentest.Installed("curl", "ca-certificates") {
					return nil, fmt.Errorf("%w: curl", errSkip)
				}
				img, _, err := hardentest.DebianImage(append(base, "curl", "ca-certificates"), nil,
					v1.Config{Entrypoint: []string{"/usr/bin/curl", "-sS", "file:///etc/os-release"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}})
				return img, err
			}},
		{Name: "python", Like: "debian:bookworm-slim + python3 with a stdlib web app (python:3.11-slim-like)", Duration: 8 * time.Second,
			Probes: []sandbox.HTTPProbe{{Port: 8080, Path: "/"}},
			Build: func(work string) (v1.Image, error) {
				base, err := required()
				if err != nil {
					return nil, err
				}
				if !hardentest.Installed("python3", "ca-certificates") {
					return nil, fmt.Errorf("%w: python3", errSkip)
				}
				img, _, err := hardentest.DebianImage(append(base, "python3", "ca-certificates"), map[string]hardentest.File{
					"app/":          {Dir: true, Mode: 0o755},
					"app/main.py":   {Data: []byte(pythonApp)},
					"app/data.json": {Data: []byte(`{"url": "https://example.invalid/x?y=1"}`)},
				}, v1.Config{Entrypoint: []string{"/usr/bin/python3", "/app/main.py"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}})
				return img, err
			}},
		{Name: "shell", Like: "busybox:stable with a shell-script entrypoint", Duration: 4 * time.Second,
			Build: func(work string) (v1.Image, error) {
				bb, err := os.ReadFile("/bin/busybox")
				if err != nil {
					return nil, fmt.Errorf("%w: busybox-static: %v", errSkip, err)
				}
				files := map[string]hardentest.File{
					"bin/":          {Dir: true, Mode: 0o755},
					"bin/busybox":   {Data: bb, Mode: 0o755},
					"app/":          {Dir: true, Mode: 0o755},
					"app/start.sh":  {Data: []byte("#!/bin/sh\nset -e\nfor f in /etc/motd /etc/hostname; do cat $f 2>/dev/null || true; done\nwc -c /bin/busybox\necho done\n"), Mode: 0o755},
					"etc/":          {Dir: true, Mode: 0o755},
					"etc/motd":      {Data: []byte("hello\n")},
					"usr/":          {Dir: true, Mode: 0o755},
					"usr/local/":    {Dir: true, Mode: 0o755},
					"usr/local/bin": {Dir: true, Mode: 0o755},
				}
				for _, applet := range []string{"sh", "cat", "wc", "wget", "vi", "nc", "tar", "ls", "cp"} {
					files["bin/"+applet] = hardentest.File{Symlink: "busybox"}
				}
				return hardentest.FilesImage(files, v1.Config{Entrypoint: []string{"/app/start.sh"}, Env: []string{"PATH=/bin"}})
			}},
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func report(m host.Machine, rs []Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# bench/harden results\n\nMachine: %s, %d CPUs, kernel %s, %s; load %s → %s.\n\n", m.CPU, m.CPUs, m.Kernel, m.Go, m.LoadStart, m.LoadEnd)
	tw := tabwriter.NewWriter(&b, 0, 4, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| image\t uncompressed before\t after\t ratio\t compressed before\t after\t files\t packages\t execs removed\t profile s\t harden s\t replay s\t replay\t")
	fmt.Fprintln(tw, "|---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t---\t")
	for _, r := range rs {
		replay := "pass"
		if !r.ReplayPassed {
			replay = "FAIL: " + strings.Join(r.ReplayFailures, "; ")
		}
		fmt.Fprintf(tw, "| %s\t %s\t %s\t %.1fx\t %s\t %s\t %d → %d\t %d → %d\t %d\t %.1f\t %.2f\t %.1f\t %s\t\n", r.Name, mib(r.OriginalTar), mib(r.HardenedTar), r.Ratio,
			mib(r.OriginalSize), mib(r.HardenedSize), r.OriginalFiles, r.HardenedFiles, r.PackagesBefore, r.PackagesAfter, r.RemovedExecs,
			r.ProfileSecs, r.HardenSecs, r.ReplaySecs, replay)
	}
	tw.Flush()
	b.WriteString("\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "- %s: stands for %s", r.Name, r.Like)
		if r.Payload != "" {
			fmt.Fprintf(&b, "; planted miner %s removed", r.Payload)
		}
		b.WriteString(".\n")
	}
	return b.String()
}
