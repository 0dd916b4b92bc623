package harden_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/harden"
	"github.com/airlock-dev/airlock/internal/harden/hardentest"
	"github.com/airlock-dev/airlock/internal/profile"
)

const pythonApp = `import json, hashlib, urllib.parse, datetime, ssl, sys
with open("/app/data.json") as f:
    d = json.load(f)
u = urllib.parse.urlparse(d["url"])
print(u.hostname, hashlib.sha256(d["url"].encode()).hexdigest()[:12], datetime.date(2026, 1, 2).isoformat())
ctx = ssl.create_default_context()
ctx.load_verify_locations(cafile="/etc/ssl/certs/ca-certificates.crt")
n = ctx.cert_store_stats()["x509_ca"]
print("ca certificates loaded:", n)
sys.exit(0 if n > 0 else 3)
`

// TestPythonApp: a Python app with stdlib imports on this machine's Debian
// python3 (interpreter, stdlib, libssl, CA bundle from dpkg) is profiled,
// hardened and replayed: the stdlib modules it imported stay, the rest of
// the stdlib and the packages it never touched go, and the dpkg database
// lists only what is left.
func TestPythonApp(t *testing.T) {
	if !hardentest.Installed("python3-minimal", "libpython3.11-stdlib", "ca-certificates") {
		needHost(t, "this machine has no Debian python3 3.11 with ca-certificates to build the image from")
	}
	needSandbox(t)
	img, pkgs, err := hardentest.DebianImage([]string{"python3-minimal", "libpython3.11-stdlib", "ca-certificates", "coreutils", "bash"},
		map[string]hardentest.File{
			"app/":          {Dir: true, Mode: 0o755},
			"app/main.py":   {Data: []byte(pythonApp), Mode: 0o644},
			"app/data.json": {Data: []byte(`{"url": "https://example.invalid/x?y=1"}`), Mode: 0o644},
		}, v1.Config{Entrypoint: []string{"/usr/bin/python3", "/app/main.py"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	pr := makeProfile(t, img, profile.Options{Duration: 20 * time.Second})
	if pr.Exit.TimedOut || pr.Exit.Code != 0 {
		t.Fatalf("the original did not run: %+v; missing %v; notes %v", pr.Exit, pr.Files.Missing, pr.Notes)
	}
	res, err := harden.Harden(context.Background(), img, pr, harden.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	rep := res.Report
	t.Logf("%d packages; %d → %d files, %d → %d bytes, %d → %d compressed; packages removed %v",
		len(pkgs), rep.Original.Files, rep.Hardened.Files, rep.Original.Bytes, rep.Hardened.Bytes, rep.Original.Size, rep.Hardened.Size, rep.Packages.Removed)
	kept := map[string]bool{}
	for _, k := range rep.Kept {
		kept[k.Path] = true
	}
	for _, p := range []string{"/usr/lib/python3.11/json/__init__.py", "/usr/lib/python3.11/hashlib.py", "/usr/lib/python3.11/ssl.py", "/app/main.py"} {
		if !kept[p] {
			t.Errorf("%s was not kept", p)
		}
	}
	for _, p := range []string{"/usr/lib/python3.11/tkinter/__init__.py", "/usr/lib/python3.11/sqlite3/__init__.py", "/usr/bin/bash"} {
		if kept[p] {
			t.Errorf("%s was kept, the app never used it", p)
		}
	}
	if !slices.Contains(rep.Packages.Removed, "bash") || !slices.Contains(rep.Packages.Kept, "libpython3.11-minimal") {
		t.Errorf("packages kept %v removed %v", rep.Packages.Kept, rep.Packages.Removed)
	}
	if rep.Hardened.Bytes*2 > rep.Original.Bytes {
		t.Errorf("hardening kept %d of %d bytes", rep.Hardened.Bytes, rep.Original.Bytes)
	}
	rr := replay(t, res.Image, pr)
	if !rr.Passed {
		t.Fatalf("replay failed: %v", rr.Failures)
	}
}

// TestDebianPackageMetadata: the dpkg database of the hardened image holds
// the stanzas of the kept packages only, and their .list files.
func TestDebianPackageMetadata(t *testing.T) {
	if !hardentest.Installed("coreutils", "bash", "libc6") {
		needHost(t, "this machine has no dpkg packages to build the image from")
	}
	img, _, err := hardentest.DebianImage([]string{"coreutils", "bash"}, nil, v1.Config{Entrypoint: []string{"/usr/bin/ls"}})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	pr := &profile.Profile{Image: profile.Image{Digest: d.String()}, Executables: []profile.Exec{{Path: "/bin/ls"}}}
	res, err := harden.Harden(context.Background(), img, pr, harden.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	files := layerFiles(t, res.Image)
	if files["/usr/bin/ls"] == nil || files["/bin"] == nil || files["/usr/bin/bash"] != nil {
		t.Errorf("kept ls %v, /bin %v; bash %v", files["/usr/bin/ls"] != nil, files["/bin"] != nil, files["/usr/bin/bash"] != nil)
	}
	if !slices.Contains(res.Report.Packages.Kept, "coreutils") || !slices.Contains(res.Report.Packages.Kept, "libc6") ||
		!slices.Contains(res.Report.Packages.Removed, "bash") {
		t.Errorf("packages kept %v removed %v", res.Report.Packages.Kept, res.Report.Packages.Removed)
	}
	if files["/var/lib/dpkg/info/coreutils.list"] == nil || files["/var/lib/dpkg/info/bash.list"] != nil {
		t.Error("the .list files are not those of the kept packages")
	}
	// Read the trimmed status back.
	ix, err := harden.NewIndex(context.Background(), res.Image, t.TempDir(), harden.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	b, err := ix.ReadFile("/var/lib/dpkg/status", 1<<24)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Package: coreutils\n") || strings.Contains(string(b), "Package: bash\n") {
		t.Errorf("trimmed status:\n%s", b)
	}
}
