// Command scan compares `airlock scan` (everything on: inventory, rules,
// secrets, names, age) with `syft` (SBOM only) on the same OCI layout, side
// by side in one run, with the floor: decompressing and walking the layers.
// It reports median wall time, peak memory and package counts per type.
//
//	go run ./bench/scan -reps 3                    # image built from this machine's Debian packages
//	go run ./bench/scan -layout DIR -reps 5        # any OCI layout (e.g. made with debootstrap)
package main

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var excluded []string

// syftVersion is the peer's pinned version (go install …@syftVersion).
const syftVersion = "v1.57.1"

func main() {
	var layoutDir, out, syft, airlock, exclude string
	var reps int
	flag.StringVar(&layoutDir, "layout", "", "OCI layout to scan (default: built from this machine's dpkg-installed files into OUT/debian-host)")
	flag.StringVar(&out, "out", "bench/scan/out", "directory for results.md, results.json and the generated layout")
	flag.StringVar(&syft, "syft", "", "syft binary (default: syft on PATH, else go install github.com/anchore/syft/cmd/syft@"+syftVersion+" into OUT/bin)")
	flag.StringVar(&airlock, "airlock", "", "airlock binary (default: built from this work tree into OUT/bin)")
	flag.IntVar(&reps, "reps", 3, "timed runs per tool (after one untimed warm-up)")
	flag.StringVar(&exclude, "exclude", "/usr/lib/google-cloud-sdk,/usr/lib/llvm-14,/usr/lib/jvm", "comma-separated path prefixes left out of the generated image (large trees that add time, not packages)")
	flag.Parse()
	excluded = strings.Split(exclude, ",")
	if err := run(layoutDir, out, syft, airlock, reps); err != nil {
		fmt.Fprintln(os.Stderr, "bench/scan:", err)
		os.Exit(1)
	}
}

type sample struct {
	Seconds float64 `json:"seconds"`
	PeakKB  int64   `json:"peakKb"`
}

type row struct {
	Tool     string         `json:"tool"`
	Samples  []sample       `json:"samples"`
	Packages map[string]int `json:"packages,omitempty"`
}

func run(layoutDir, out, syft, airlock string, reps int) error {
	if err := os.MkdirAll(filepath.Join(out, "bin"), 0o755); err != nil {
		return err
	}
	if layoutDir == "" {
		layoutDir = filepath.Join(out, "debian-host")
		if _, err := os.Stat(filepath.Join(layoutDir, "index.json")); err != nil {
			fmt.Fprintln(os.Stderr, "building", layoutDir, "from this machine's dpkg-installed files")
			if err := hostImage(layoutDir, filepath.Join(out, "debian-host.tar")); err != nil {
				return err
			}
		}
	}
	if airlock == "" {
		airlock = filepath.Join(out, "bin", "airlock")
		if b, err := exec.Command("go", "build", "-o", airlock, "./cmd/airlock").CombinedOutput(); err != nil {
			return fmt.Errorf("build airlock: %v\n%s", err, b)
		}
	}
	if syft == "" {
		if p, err := exec.LookPath("syft"); err == nil {
			syft = p
		} else {
			syft = filepath.Join(out, "bin", "syft")
			if _, err := os.Stat(syft); err != nil {
				fmt.Fprintln(os.Stderr, "installing syft", syftVersion)
				abs, _ := filepath.Abs(filepath.Join(out, "bin"))
				cmd := exec.Command("go", "install", "github.com/anchore/syft/cmd/syft@"+syftVersion)
				cmd.Env = append(os.Environ(), "GOBIN="+abs, "GOFLAGS=-mod=mod")
				if b, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("install syft: %v\n%s", err, b)
				}
			}
		}
	}
	tools := []struct {
		name string
		argv []string
	}{
		{"airlock scan (all detectors)", []string{airlock, "scan", "oci-layout:" + layoutDir, "-o", "json"}},
		{"syft " + syftVersion + " (SBOM only)", []string{syft, "scan", "oci-dir:" + layoutDir, "-o", "syft-json", "-q"}},
	}
	var rows []row
	floor := row{Tool: "floor (decompress + walk layers)"}
	for i := 0; i <= reps; i++ {
		s, err := walkLayers(layoutDir)
		if err != nil {
			return err
		}
		if i > 0 {
			floor.Samples = append(floor.Samples, s)
		}
	}
	for _, t := range tools {
		r := row{Tool: t.name}
		var stdout []byte
		for i := 0; i <= reps; i++ {
			s, b, err := measure(t.argv)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			if i > 0 {
				r.Samples = append(r.Samples, s)
			}
			stdout = b
		}
		r.Packages = counts(t.name, stdout)
		rows = append(rows, r)
	}
	rows = append(rows, floor)
	return report(out, layoutDir, rows)
}

// measure runs argv with a clean environment and returns wall time, peak
// RSS and stdout.
func measure(argv []string) (sample, []byte, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "SYFT_CHECK_FOR_APP_UPDATE=false", "AIRLOCK_DATA="+os.TempDir()+"/airlock-bench-no-data")
	var stdout strings.Builder
	cmd.Stdout = &stdout
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	s := sample{Seconds: time.Since(start).Seconds()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.PeakKB = ru.Maxrss
	}
	if err != nil {
		return s, nil, fmt.Errorf("%v: %s", err, stderr.String())
	}
	return s, []byte(stdout.String()), nil
}

// walkLayers is the floor: every layer decompressed and its tar read to the end.
func walkLayers(dir string) (sample, error) {
	start := time.Now()
	p, err := layout.FromPath(dir)
	if err != nil {
		return sample{}, err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return sample{}, err
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) == 0 {
		return sample{}, fmt.Errorf("layout %s has no image: %v", dir, err)
	}
	img, err := p.Image(m.Manifests[0].Digest)
	if err != nil {
		return sample{}, err
	}
	ls, err := img.Layers()
	if err != nil {
		return sample{}, err
	}
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			return sample{}, err
		}
		tr := tar.NewReader(rc)
		for {
			_, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rc.Close()
				return sample{}, err
			}
			if _, err := io.Copy(io.Discard, tr); err != nil {
				rc.Close()
				return sample{}, err
			}
		}
		rc.Close()
	}
	return sample{Seconds: time.Since(start).Seconds()}, nil
}

// counts reads package counts per type from each tool's JSON.
func counts(tool string, b []byte) map[string]int {
	out := map[string]int{}
	if strings.HasPrefix(tool, "airlock") {
		var r struct {
			Packages []struct{ Type string } `json:"packages"`
		}
		_ = json.Unmarshal(b, &r)
		for _, p := range r.Packages {
			out[p.Type]++
		}
		return out
	}
	var s struct {
		Artifacts []struct{ Type string } `json:"artifacts"`
	}
	_ = json.Unmarshal(b, &s)
	for _, a := range s.Artifacts {
		out[a.Type]++
	}
	return out
}

func median(ss []sample) (float64, float64, float64, int64) {
	xs := make([]float64, len(ss))
	var peak int64
	for i, s := range ss {
		xs[i] = s.Seconds
		peak = max(peak, s.PeakKB)
	}
	sort.Float64s(xs)
	return xs[len(xs)/2], xs[0], xs[len(xs)-1], peak
}

func report(out, layoutDir string, rows []row) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# bench/scan — %s\n\nLayout: `%s`\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), layoutDir)
	fmt.Fprintln(&b, "| tool | median s | min s | max s | peak RSS MiB |")
	fmt.Fprintln(&b, "|---|---|---|---|---|")
	var base, floor float64
	for _, r := range rows {
		med, lo, hi, peak := median(r.Samples)
		if strings.HasPrefix(r.Tool, "syft") {
			base = med
		}
		if strings.HasPrefix(r.Tool, "floor") {
			floor = med
		}
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.2f | %.0f |\n", r.Tool, med, lo, hi, float64(peak)/1024)
	}
	if a, _, _, _ := median(rows[0].Samples); base > 0 && floor > 0 {
		fmt.Fprintf(&b, "\nairlock / syft = %.2f×; airlock / floor = %.2f×\n", a/base, a/floor)
	}
	types := map[string]bool{}
	for _, r := range rows {
		for t := range r.Packages {
			types[t] = true
		}
	}
	var ts []string
	for t := range types {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	fmt.Fprintln(&b, "\n| package type | airlock | syft |\n|---|---|---|")
	for _, t := range ts {
		fmt.Fprintf(&b, "| %s | %d | %d |\n", t, rows[0].Packages[t], rows[1].Packages[t])
	}
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	j, _ := json.MarshalIndent(rows, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "results.json"), j, 0o644); err != nil {
		return err
	}
	fmt.Print(b.String())
	return nil
}

// hostImage builds a one-layer OCI image of this machine's Debian packages:
// dpkg's database and every regular file the packages' lists name.
func hostImage(dir, tarPath string) error {
	lists, err := filepath.Glob("/var/lib/dpkg/info/*.list")
	if err != nil || len(lists) == 0 {
		return fmt.Errorf("no dpkg lists on this machine: pass -layout")
	}
	files := map[string]bool{"/var/lib/dpkg/status": true, "/etc/os-release": true, "/usr/lib/os-release": true}
	for _, l := range lists {
		files[l] = true
		f, err := os.Open(l)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			files[sc.Text()] = true
		}
		f.Close()
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	out, err := os.Create(tarPath)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(out)
	for _, n := range names {
		skip := false
		for _, x := range excluded {
			if x != "" && strings.HasPrefix(n, x) {
				skip = true
			}
		}
		if skip {
			continue
		}
		st, err := os.Lstat(n)
		if err != nil || !(st.Mode().IsRegular() || st.Mode()&os.ModeSymlink != 0) {
			continue
		}
		h, err := tar.FileInfoHeader(st, "")
		if err != nil {
			return err
		}
		if st.Mode()&os.ModeSymlink != 0 {
			if h.Linkname, err = os.Readlink(n); err != nil {
				continue
			}
		}
		h.Name = strings.TrimPrefix(n, "/")
		h.Uname, h.Gname = "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if st.Mode().IsRegular() {
			f, err := os.Open(n)
			if err != nil {
				return err
			}
			_, err = io.CopyN(tw, f, st.Size())
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	l, err := tarball.LayerFromFile(tarPath)
	if err != nil {
		return err
	}
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{Layer: l, MediaType: types.OCILayer})
	if err != nil {
		return err
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Now().UTC()}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img)
}
