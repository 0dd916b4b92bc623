package scan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
	"github.com/airlock-dev/airlock/internal/scan"
)

// hostProgram is a real program of the host, copied into test images
// without any package metadata.
type hostProgram struct {
	name    string // package name Airlock should report
	path    string // resolved path of the file on the host
	version string // what the program itself says its version is
}

// needProgram skips the test (fatal in CI, where .ci/tools.sh installs the
// Debian packages) when a host program is missing.
func needProgram(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: %v", what, err)
	}
	t.Skipf("%s: %v", what, err)
}

// versionOf runs a program and takes its version from its output.
func versionOf(t *testing.T, re string, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	needProgram(t, name, err)
	m := regexp.MustCompile(re).FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s %v printed %q, no version", name, args, out)
	}
	return string(m[1])
}

func resolved(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	needProgram(t, p, err)
	return r
}

func readHost(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	needProgram(t, p, err)
	return b
}

// pythonOnHost is the python3 on PATH as the interpreter describes itself
// (PATH may hold a shim script): the executable, its version, and its
// shared libpython when it is linked against one.
func pythonOnHost(t *testing.T) (exe, version, lib string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	needProgram(t, "python3", err)
	out, err := exec.Command(py, "-c", `import sys, sysconfig, os
lib = ""
if sysconfig.get_config_var("Py_ENABLE_SHARED"):
    lib = os.path.join(sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY"))
print(os.path.realpath(sys.executable), sys.version.split()[0], lib)`).Output()
	needProgram(t, "python3", err)
	f := strings.Fields(string(out))
	if len(f) < 2 {
		t.Fatalf("python3 printed %q", out)
	}
	if len(f) == 3 {
		lib = resolved(t, f[2])
	}
	return f[0], f[1], lib
}

// TestBinaryVersionsInImage copies real nginx, redis-server, CPython (a
// static Debian build and a shared-libpython build) and Node.js into an
// image without package metadata and checks each is reported with the
// version the program itself prints, the file and the layer that added it.
func TestBinaryVersionsInImage(t *testing.T) {
	nginx := hostProgram{name: "nginx", path: resolved(t, "/usr/sbin/nginx")}
	nginx.version = versionOf(t, `nginx/(\d+\.\d+\.\d+)`, nginx.path, "-v")
	redisPath, err := exec.LookPath("redis-server")
	needProgram(t, "redis-server", err)
	redis := hostProgram{name: "redis", path: resolved(t, redisPath)}
	redis.version = versionOf(t, `v=(\d+\.\d+\.\d+)`, redisPath, "--version") // by its own name: one binary, several programs
	nodePath, err := exec.LookPath("node")
	needProgram(t, "node", err)
	node := hostProgram{name: "node", path: resolved(t, nodePath)}
	node.version = versionOf(t, `v(\d+\.\d+\.\d+)`, node.path, "--version")
	pyExe, pyVersion, pyLib := pythonOnHost(t)

	// Layer 1: nginx, redis and a python; layer 2: node (and, when the
	// python3 on PATH uses a shared libpython, Debian's static python too).
	files1 := map[string]sandboxtest.File{
		"usr/local/nginx/sbin/nginx": {Data: readHost(t, nginx.path)},
		"usr/local/bin/redis-server": {Data: readHost(t, redis.path)},
		// decoys under known names: a script and an ELF without evidence
		"srv/nginx":        {Data: []byte("#!/bin/sh\necho nginx/1.2.3\n")},
		"srv/node":         {Data: sandboxtest.GoProgram(t, "package main\n\nfunc main() { println(\"node.js/v1.2.3 is not in a string of its own\") }\n")},
		"srv/redis-server": {Data: sandboxtest.GoProgram(t, "package main\n\nfunc main() { println(\"7.0.15\") }\n")},
	}
	want := map[string]hostProgram{
		"/usr/local/nginx/sbin/nginx": nginx,
		"/usr/local/bin/redis-server": redis,
	}
	pyBase := filepath.Base(pyExe)
	if pyLib != "" {
		// A shared build: the executable holds no version, the library does.
		files1["opt/python/bin/"+pyBase] = sandboxtest.File{Data: readHost(t, pyExe)}
		files1["opt/python/lib/"+filepath.Base(pyLib)] = sandboxtest.File{Data: readHost(t, pyLib), Mode: 0o644}
		want["/opt/python/lib/"+filepath.Base(pyLib)] = hostProgram{name: "python", version: pyVersion}
	} else {
		files1["opt/python/bin/"+pyBase] = sandboxtest.File{Data: readHost(t, pyExe)}
		want["/opt/python/bin/"+pyBase] = hostProgram{name: "python", version: pyVersion}
	}
	files2 := map[string]sandboxtest.File{
		"usr/local/bin/node": {Data: readHost(t, node.path)},
	}
	want2 := map[string]hostProgram{"/usr/local/bin/node": node}
	if pyLib != "" {
		if deb, err := filepath.EvalSymlinks("/usr/bin/python3"); err == nil && deb != pyExe {
			v := versionOf(t, `Python (\S+)`, deb, "--version")
			files2["usr/local/bin/"+filepath.Base(deb)] = sandboxtest.File{Data: readHost(t, deb)}
			want2["/usr/local/bin/"+filepath.Base(deb)] = hostProgram{name: "python", version: v}
		}
	}
	l1, l2 := sandboxtest.Layer(t, files1), sandboxtest.Layer(t, files2)
	img := sandboxtest.Image(t, v1.Config{Entrypoint: []string{"/usr/local/nginx/sbin/nginx"}}, l1, l2)
	r := run(t, img, "")

	got := map[string]scan.Package{}
	for _, p := range r.Packages {
		if p.Type == "binary" {
			if _, dup := got[p.Location]; dup {
				t.Errorf("two binary packages for %s", p.Location)
			}
			got[p.Location] = p
		}
	}
	check := func(layer v1.Layer, want map[string]hostProgram) {
		for loc, w := range want {
			p, ok := got[loc]
			if !ok {
				t.Errorf("%s (%s %s) not reported; binary packages: %+v", loc, w.name, w.version, got)
				continue
			}
			delete(got, loc)
			purl := "pkg:generic/" + w.name + "@" + w.version
			if p.Name != w.name || p.Version != w.version || p.PURL != purl || p.Ecosystem != "" || p.Layer != layerDigest(t, layer) || p.OwnedByDistro {
				t.Errorf("%s = %+v, want %s %s, purl %s, layer %s", loc, p, w.name, w.version, purl, layerDigest(t, layer))
			}
		}
	}
	check(l1, want)
	check(l2, want2)
	for loc, p := range got {
		t.Errorf("unexpected binary package %s: %+v (a decoy or a misread)", loc, p)
	}

	// The SBOM names each with its purl and the file that proves it.
	var buf bytes.Buffer
	if err := r.WriteCycloneDX(&buf); err != nil {
		t.Fatal(err)
	}
	var bom cdx.BOM
	if err := json.Unmarshal(buf.Bytes(), &bom); err != nil {
		t.Fatal(err)
	}
	purls := map[string]string{}
	for _, c := range *bom.Components {
		if c.Evidence != nil && c.Evidence.Occurrences != nil {
			purls[c.PackageURL] = (*c.Evidence.Occurrences)[0].Location
		}
	}
	if loc := purls["pkg:generic/nginx@"+nginx.version]; loc != "/usr/local/nginx/sbin/nginx" {
		t.Errorf("CycloneDX: nginx at %q; purls %v", loc, purls)
	}
	if loc := purls["pkg:generic/node@"+node.version]; loc != "/usr/local/bin/node" {
		t.Errorf("CycloneDX: node at %q", loc)
	}
}

// TestBinaryVersionOwnedByDistro: nginx installed by dpkg is the deb
// package, not a second, generic one.
func TestBinaryVersionOwnedByDistro(t *testing.T) {
	path := resolved(t, "/usr/sbin/nginx")
	status := "Package: nginx-light\nStatus: install ok installed\nArchitecture: amd64\nSource: nginx\nVersion: 1.22.1-9+deb12u11\n\n"
	img := sandboxtest.Image(t, v1.Config{}, sandboxtest.Layer(t, map[string]sandboxtest.File{
		"etc/os-release":                     {Data: []byte("ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"), Mode: 0o644},
		"var/lib/dpkg/status":                {Data: []byte(status), Mode: 0o644},
		"var/lib/dpkg/info/nginx-light.list": {Data: []byte("/.\n/usr\n/usr/sbin\n/usr/sbin/nginx\n"), Mode: 0o644},
		"usr/sbin/nginx":                     {Data: readHost(t, path)},
	}))
	r := run(t, img, "")
	deb := false
	for _, p := range r.Packages {
		if p.Type == "binary" {
			t.Errorf("distro-owned file reported as a binary package: %+v", p)
		}
		deb = deb || p.Type == "deb" && p.Name == "nginx-light"
	}
	if !deb {
		t.Errorf("the deb package is missing: %+v", r.Packages)
	}
}

// elf is a minimal stand-in for a binary: the ELF magic, filler, then
// NUL-terminated strings.
func elf(strs ...string) []byte {
	b := append([]byte("\x7fELF\x02\x01\x01\x00"), make([]byte, 56)...)
	for _, s := range strs {
		b = append(append(append(b, 0x01, 0x00), s...), 0)
	}
	return b
}

// countingReader counts what is read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestIdentifyBinary(t *testing.T) {
	const py = "%.80s (%.80s) %.80s"
	for _, tc := range []struct {
		name, base string
		data       []byte
		want       string // "name version", "" for nothing
		err        error
	}{
		{"nginx", "nginx", elf("nginx/1.25.3", "nginx version: "), "nginx 1.25.3", nil},
		{"nginx two versions", "nginx", elf("nginx/1.25.3", "nginx/1.24.0"), "", nil},
		{"nginx inside a longer string", "nginx", elf("Server: nginx/1.25.3"), "", nil},
		{"not elf", "nginx", []byte("#!/bin/sh\nnginx/1.25.3\x00"), "", scan.ErrNotELF},
		{"empty", "nginx", nil, "", scan.ErrNotELF},
		{"truncated magic", "nginx", []byte("\x7fEL"), "", scan.ErrNotELF},
		{"truncated string", "nginx", append(elf(), "nginx/1.25.3"...), "", nil},
		{"unknown name", "httpd", elf("nginx/1.25.3"), "", nil},
		{"redis", "redis-server", elf("Redis server v=%s sha=%s:%d malloc=%s", "6.2.0", "7.2.4", "7.0.3", "7.2.4buildkitsandbox-1700000000000000000"), "redis 7.2.4", nil},
		{"redis build id after a stray byte", "redis-check-rdb", elf("Redis server v=%s sha=%s:%d", "7.0.15", "7.0.1", "A7.0.151790282056000000000"), "redis 7.0.15", nil},
		{"redis format string with its newline", "redis-server", elf("Redis server v=%s sha=%s:%d malloc=%s bits=%d build=%llx\n", "7.0.15", "A7.0.151790282056000000000"), "redis 7.0.15", nil},
		{"redis without its format string", "redis-server", elf("7.2.4", "7.2.4buildkitsandbox-1700000000000000000"), "", nil},
		{"redis without a build id", "redis-server", elf("Redis server v=%s sha=%s:%d", "7.2.4"), "", nil},
		{"python static", "python3", elf(py, "cpython-311-x86_64-linux-gnu", "3.11.2", "3.2.0", "1.2.13"), "python 3.11.2", nil},
		{"python merged tail", "libpython3.12.so.1.0", elf(py, ".cpython-312-x86_64-linux-gnu.so", "/opt/python/3.12.1", "/build/Python-3.12.1"), "python 3.12.1", nil},
		{"python release candidate", "python3.13", elf(py, "cpython-313", "3.13.0rc2"), "python 3.13.0rc2", nil},
		{"python name and ABI disagree", "python3.10", elf(py, "cpython-311", "3.11.2"), "", nil},
		{"python without Py_GetVersion", "python3", elf("cpython-311", "3.11.2"), "", nil},
		{"python two patch versions", "python3", elf(py, "cpython-311", "3.11.2", "3.11.7"), "", nil},
		{"python two ABIs", "python3", elf(py, "cpython-311", "cpython-312", "3.11.2"), "", nil},
		{"node", "node", elf("node.js/v20.20.2", "https://nodejs.org/download/release/v20.20.2/node-v20.20.2.tar.gz"), "node 20.20.2", nil},
		{"node release URL only", "nodejs", elf("https://nodejs.org/download/release/v18.19.1/node-v18.19.1-headers.tar.gz", "https://nodejs.org/download/release/v18.19.1/node-v18.19.1.tar.gz"), "node 18.19.1", nil},
		{"node disagreeing", "node", elf("node.js/v20.20.2", "https://nodejs.org/download/release/v18.19.1/node-v18.19.1.tar.gz"), "", nil},
		{"node URL versions differ", "node", elf("https://nodejs.org/download/release/v18.19.1/node-v20.0.0.tar.gz"), "", nil},
		{"overlong string", "nginx", append(append(elf(), bytes.Repeat([]byte("a"), 4096)...), "nginx/1.25.3\x00"...), "", nil},
		{"overlong string then evidence", "nginx", append(append(elf(), bytes.Repeat([]byte("a"), 4096)...), "\x00nginx/1.25.3\x00"...), "nginx 1.25.3", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := scan.IdentifyBinary(context.Background(), tc.base, bytes.NewReader(tc.data), 0)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("error = %v, want %v", err, tc.err)
			}
			got := ""
			if id != nil {
				got = id.Name + " " + id.Version
				if id.Evidence == "" || !bytes.Contains(tc.data, []byte(id.Evidence)) {
					t.Errorf("evidence %q is not in the file", id.Evidence)
				}
			}
			if got != tc.want {
				t.Errorf("identified %q, want %q", got, tc.want)
			}
		})
	}
}

// TestIdentifyBinaryBounded: evidence past the read limit is not seen, and
// no more than the limit (plus one buffer) is read from a huge file.
func TestIdentifyBinaryBounded(t *testing.T) {
	const limit = 1 << 20
	huge := io.MultiReader(bytes.NewReader(elf()), zeros{}, strings.NewReader("\x00nginx/1.25.3\x00"))
	cr := &countingReader{r: io.LimitReader(huge, 64<<30)}
	id, err := scan.IdentifyBinary(context.Background(), "nginx", cr, limit)
	if err != nil || id != nil {
		t.Fatalf("identified %+v, %v past the limit", id, err)
	}
	if cr.n > limit+(64<<10) {
		t.Fatalf("read %d bytes with a limit of %d", cr.n, limit)
	}
	// Within the limit it is found.
	data := append(append(elf(), make([]byte, limit/2)...), "\x00nginx/1.25.3\x00"...)
	if id, err := scan.IdentifyBinary(context.Background(), "nginx", bytes.NewReader(data), limit); err != nil || id == nil || id.Version != "1.25.3" {
		t.Fatalf("identified %+v, %v", id, err)
	}
	// A flood of candidate strings is not kept: the matchers hold at most
	// a bounded number, and the real one after the flood is not guessed at.
	var flood bytes.Buffer
	flood.Write(elf("Redis server v=%s sha=%s:%d", "%.80s (%.80s) %.80s", "cpython-311"))
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&flood, "%d.%d.%d\x003.11.%d\x00/x/3.11.%d\x00", i/1000, i%1000, i, i, i)
	}
	flood.WriteString("7.2.4\x007.2.4buildkitsandbox-1700000000000000000\x00")
	for _, base := range []string{"redis-server", "python3"} {
		id, err := scan.IdentifyBinary(context.Background(), base, bytes.NewReader(flood.Bytes()), 0)
		if err != nil || id != nil {
			t.Errorf("%s flood: identified %+v, %v", base, id, err)
		}
	}
	// A cancelled scan stops with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := scan.IdentifyBinary(ctx, "node", io.MultiReader(bytes.NewReader(elf()), io.LimitReader(zeros{}, 64<<20)), 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled scan: %v", err)
	}
	// A read error is reported, not taken for "nothing found".
	boom := errors.New("disk on fire")
	if _, err := scan.IdentifyBinary(context.Background(), "node", io.MultiReader(bytes.NewReader(elf()), failing{boom}), 0); !errors.Is(err, boom) {
		t.Fatalf("read error: %v", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type failing struct{ err error }

func (f failing) Read([]byte) (int, error) { return 0, f.err }

func FuzzIdentifyBinary(f *testing.F) {
	f.Add("nginx", elf("nginx/1.25.3"))
	f.Add("redis-server", elf("Redis server v=%s sha=%s:%d", "7.2.4", "7.2.4buildkitsandbox-1700000000000000000"))
	f.Add("python3", elf("%.80s (%.80s) %.80s", "cpython-311", "3.11.2"))
	f.Add("libpython3.12.so.1.0", elf("%.80s (%.80s) %.80s", "cpython-312", "/x/3.12.1"))
	f.Add("node", elf("node.js/v20.20.2"))
	f.Add("node", []byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, base string, data []byte) {
		id, err := scan.IdentifyBinary(context.Background(), base, bytes.NewReader(data), 1<<20)
		if err != nil && !errors.Is(err, scan.ErrNotELF) {
			t.Fatalf("error reading from memory: %v", err)
		}
		if id == nil {
			return
		}
		if !regexp.MustCompile(`^\d+\.\d+\.\d+[a-z0-9+]*$`).MatchString(id.Version) || !bytes.Contains(data, []byte(id.Evidence)) {
			t.Fatalf("identified %+v", id)
		}
	})
}
