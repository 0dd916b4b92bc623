package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/internal/harden"
	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
	"github.com/airlock-dev/airlock/internal/server/servertest"
)

const hardenMinerSrc = `package main

import (
	"fmt"
	"net"
)

func main() {
	c, err := net.Dial("tcp", "pool.supportxmr.invalid:3333")
	if err != nil {
		return
	}
	fmt.Fprintf(c, "{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge\",\"pass\":\"x\",\"agent\":\"xmrig/6.21.0\"}}\n")
	fmt.Println("stratum+tcp://pool.supportxmr.invalid:3333 mining.subscribe")
}
`

const hardenAppSrc = `package main

import "os"

func main() {
	b, _ := os.ReadFile("/etc/app.conf")
	os.Stdout.Write(b)
}
`

// hardenFixture writes a trojaned image to an OCI layout and its profile to
// a file, and returns the layout's source name and the profile path.
func hardenFixture(t *testing.T) (string, string, v1.Image) {
	t.Helper()
	img := sandboxtest.Image(t, v1.Config{Entrypoint: []string{"/app"}, Env: []string{"PATH=/usr/local/bin:/bin"}},
		sandboxtest.Layer(t, map[string]sandboxtest.File{
			"app":                 {Data: sandboxtest.GoProgram(t, hardenAppSrc), Mode: 0o755},
			"etc/app.conf":        {Data: []byte("hello\n"), Mode: 0o644},
			"etc/extra.conf":      {Data: []byte("unused\n"), Mode: 0o644},
			"usr/local/bin/xmrig": {Data: sandboxtest.GoProgram(t, hardenMinerSrc), Mode: 0o755},
		}))
	dir := filepath.Join(t.TempDir(), "oci")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	pr := profile.Profile{SchemaVersion: profile.SchemaVersion, Image: profile.Image{Digest: d.String()},
		Run:         profile.Run{Entrypoint: []string{"/app"}, Cmd: []string{}, EnvNames: []string{"PATH"}, Duration: "5s", Mode: "root"},
		Executables: []profile.Exec{{Path: "/app", Argv: [][]string{{"/app"}}, Parents: []string{}, Count: 1}},
		Files:       profile.Files{Read: []profile.Path{{Path: "/etc/app.conf", Count: 1}}},
	}
	b, err := json.Marshal(pr)
	if err != nil {
		t.Fatal(err)
	}
	pf := filepath.Join(t.TempDir(), "p.json")
	if err := os.WriteFile(pf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return "oci-layout:" + dir, pf, img
}

func TestHardenCommand(t *testing.T) {
	src, pf, img := hardenFixture(t)
	out := filepath.Join(t.TempDir(), "hardened")
	code, stdout, stderr := cli(t, "harden", src, "--profile", pf, "--oci-layout", out, "--no-replay", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep harden.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout)
	}
	if !slices.Contains(rep.Removed.Executables, "/usr/local/bin/xmrig") {
		t.Errorf("removed executables %v", rep.Removed.Executables)
	}
	od, _ := img.Digest()
	if rep.Original.Digest != od.String() || rep.Hardened.Digest == "" || rep.Hardened.Digest == od.String() {
		t.Errorf("digests %s → %s", rep.Original.Digest, rep.Hardened.Digest)
	}
	if rep.Findings == nil || rep.Findings.Original == 0 || rep.Findings.Hardened >= rep.Findings.Original {
		t.Errorf("findings: %+v", rep.Findings)
	} else if !slices.ContainsFunc(rep.Findings.Removed, func(s string) bool { return strings.Contains(s, "/usr/local/bin/xmrig") }) {
		t.Errorf("the miner's findings are not among those removed: %v", rep.Findings.Removed)
	}
	// The written image is the one reported, without the miner.
	p, err := layout.FromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(rep.Hardened.Digest)
	if err != nil {
		t.Fatal(err)
	}
	himg, err := p.Image(h)
	if err != nil {
		t.Fatalf("the layout lacks %s: %v", h, err)
	}
	// The image names the profile it was made from by the file's digest.
	pb, err := os.ReadFile(pf)
	if err != nil {
		t.Fatal(err)
	}
	pd, _, _ := v1.SHA256(bytes.NewReader(pb))
	if m, err := himg.Manifest(); err != nil || m.Annotations[harden.AnnotationProfile] != pd.String() {
		t.Errorf("profile annotation: %v, want %s (err %v)", m.Annotations, pd, err)
	}
	ls, _ := himg.Layers()
	rc, _ := ls[0].Uncompressed()
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		hd, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hd.Name)
	}
	if slices.Contains(names, "usr/local/bin/xmrig") || !slices.Contains(names, "app") || !slices.Contains(names, "etc/app.conf") {
		t.Errorf("hardened layer: %v", names)
	}

	// --to pushes the same image to a registry.
	up := servertest.StartUpstream(t)
	code, _, stderr = cli(t, "harden", src, "--profile", pf, "--to", up.Host+"/apps/tool:hardened", "--insecure", "--no-replay", "--no-scan")
	if code != 0 {
		t.Fatalf("--to: exit %d: %s", code, stderr)
	}
	ref, _ := name.ParseReference(up.Host+"/apps/tool:hardened", name.Insecure)
	pushed, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := pushed.Digest(); d.String() != rep.Hardened.Digest {
		t.Errorf("pushed %s, reported %s", d, rep.Hardened.Digest)
	}

	// --keep brings back what the profile missed; the table names the miner.
	code, stdout, stderr = cli(t, "harden", src, "--profile", pf, "--keep", "/etc/extra.conf", "--no-replay", "--no-scan")
	if code != 0 || !strings.Contains(stdout, "/usr/local/bin/xmrig") || !strings.Contains(stdout, "replay: not run") {
		t.Errorf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}

func TestHardenCommandUsage(t *testing.T) {
	src, pf, _ := hardenFixture(t)
	other := filepath.Join(t.TempDir(), "other.json")
	b, _ := os.ReadFile(pf)
	var pr profile.Profile
	json.Unmarshal(b, &pr)
	pr.Image.Digest = "sha256:" + strings.Repeat("1", 64)
	b, _ = json.Marshal(pr)
	os.WriteFile(other, b, 0o600)
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"schemaVersion":"airlock.dev/profile/v1","executables":[{"path":"relative"}]}`), 0o600)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("keep: [relative/path]\n"), 0o600)
	for _, args := range [][]string{
		{"harden", src},
		{"harden", src, "--profile", pf, "--keep", "relative"},
		{"harden", src, "--profile", pf, "--no-default", "nothing"},
		{"harden", src, "--profile", other, "--no-replay"},
		{"harden", src, "--profile", bad, "--no-replay"},
		{"harden", src, "--profile", pf, "--config", cfg},
		{"harden", src, "--profile", pf, "--to", "x", "--oci-layout", "y"},
		{"harden", src, "--profile", pf, "-o", "yaml"},
		{"harden", "oci-layout:/does/not/exist", "--profile", pf},
	} {
		code, _, stderr := cli(t, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want 2: %s", args[1:], code, stderr)
		}
	}
}

// TestHardenCommandReplay profiles the fixture for real, hardens it with
// the replay on, and checks that a replay that fails (a profile claiming
// another exit code) exits 1 and writes nothing.
func TestHardenCommandReplay(t *testing.T) {
	if err := harden.SandboxAvailable(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the sandbox must run in CI: %v", err)
		}
		t.Skipf("no sandbox here: %v", err)
	}
	src, _, img := hardenFixture(t)
	pr, err := profile.Make(t.Context(), img, harden.LocalSandbox(), profile.Options{Duration: 5 * time.Second, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := profile.Marshal(pr)
	if err != nil {
		t.Fatal(err)
	}
	pf := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(pf, raw, 0o600)
	out := filepath.Join(t.TempDir(), "hardened")
	code, stdout, stderr := cli(t, "harden", src, "--profile", pf, "--oci-layout", out, "--no-scan", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, stdout)
	}
	var rep harden.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Replay == nil || !rep.Replay.Passed {
		t.Fatalf("replay: %+v", rep.Replay)
	}
	if _, err := layout.FromPath(out); err != nil {
		t.Errorf("nothing written: %v", err)
	}

	pr.Exit.Code = 7
	raw, _ = profile.Marshal(pr)
	os.WriteFile(pf, raw, 0o600)
	out2 := filepath.Join(t.TempDir(), "not-written")
	code, stdout, stderr = cli(t, "harden", src, "--profile", pf, "--oci-layout", out2, "--no-scan")
	if code != exitDenied || !strings.Contains(stdout, "replay: FAILED") {
		t.Errorf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		t.Error("a hardened image that failed its replay was written")
	}
}
