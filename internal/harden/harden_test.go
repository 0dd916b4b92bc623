package harden_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/harden"
	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
)

const appSrc = `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	b, err := os.ReadFile("/etc/app/app.conf")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write(b) })
	http.ListenAndServe(":8080", nil)
}
`

const minerSrc = `package main

import (
	"fmt"
	"net"
)

func main() {
	c, err := net.Dial("tcp", "pool.minexmr.invalid:3333")
	if err != nil {
		return
	}
	fmt.Fprintf(c, "{\"id\":1,\"method\":\"login\",\"params\":{\"login\":\"wallet\"}}\n")
}
`

// TrojanedImage is an app server whose image also carries a miner in
// /usr/local/bin that the entrypoint never runs.
func trojanedImage(t *testing.T) v1.Image {
	t.Helper()
	base := sandboxtest.Layer(t, map[string]sandboxtest.File{
		"etc":                               {Dir: true},
		"etc/passwd":                        {Data: []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"), Mode: 0o644},
		"etc/group":                         {Data: []byte("root:x:0:\napp:x:1000:\n"), Mode: 0o644},
		"etc/ssl/certs/ca-certificates.crt": {Data: []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), Mode: 0o644},
		"usr/share/doc/app/README":          {Data: bytes.Repeat([]byte("documentation nobody reads\n"), 100), Mode: 0o644},
		"usr/local/bin":                     {Dir: true},
		"usr/local/bin/xmrig":               {Data: sandboxtest.GoProgram(t, minerSrc), Mode: 0o755},
		"usr/local/bin/xmrig-helper":        {Hardlink: "usr/local/bin/xmrig"},
		"tmp":                               {Dir: true, Mode: 0o1777},
	})
	app := sandboxtest.Layer(t, map[string]sandboxtest.File{
		"app/server":       {Data: sandboxtest.GoProgram(t, appSrc), Mode: 0o755, UID: 1000, GID: 1000},
		"etc/app/app.conf": {Data: []byte("ok\n"), Mode: 0o640, UID: 0, GID: 1000},
		"etc/app/unused":   {Data: []byte("never read\n"), Mode: 0o644},
	})
	return sandboxtest.Image(t, v1.Config{
		Entrypoint:   []string{"/app/server"},
		Env:          []string{"PATH=/usr/local/bin:/usr/bin:/bin", "APP_MODE=prod"},
		User:         "1000:1000",
		WorkingDir:   "/app",
		ExposedPorts: map[string]struct{}{"8080/tcp": {}},
		Labels:       map[string]string{"org.opencontainers.image.title": "app"},
	}, base, app)
}

func appProfile(t *testing.T, img v1.Image) *profile.Profile {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return &profile.Profile{
		SchemaVersion: profile.SchemaVersion,
		Image:         profile.Image{Digest: d.String()},
		Run:           profile.Run{Entrypoint: []string{"/app/server"}, Duration: "5s", HTTPProbes: []string{"8080/healthz"}},
		Executables:   []profile.Exec{{Path: "/app/server", Argv: [][]string{{"/app/server"}}, Count: 1}},
		Files: profile.Files{
			Read: []profile.Path{{Path: "/etc/app/app.conf", Count: 1}},
		},
		Network: profile.Network{Listening: []profile.Listen{{Proto: "tcp", Addr: "::", Port: 8080}}},
		Exit:    profile.Exit{TimedOut: true},
	}
}

// layerFiles reads the hardened image's single layer: path → header.
func layerFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("hardened image has %d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	var prev string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.TrimSuffix(h.Name, "/")
		if name <= prev {
			t.Errorf("layer entries are not sorted: %s after %s", name, prev)
		}
		prev = name
		out[name] = h
	}
	return out
}

func TestTrojanedImageLosesTheMiner(t *testing.T) {
	ctx := context.Background()
	img := trojanedImage(t)
	pr := appProfile(t, img)
	res, err := harden.Harden(ctx, img, pr, harden.Options{TempDir: t.TempDir(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	files := layerFiles(t, res.Image)
	for _, p := range []string{"/app/server", "/etc/app/app.conf", "/etc/passwd", "/etc/group", "/etc/ssl/certs/ca-certificates.crt", "/app", "/etc", "/etc/app", "/tmp"} {
		if files[p] == nil {
			t.Errorf("hardened image lacks %s", p)
		}
	}
	for _, p := range []string{"/usr/local/bin/xmrig", "/usr/local/bin/xmrig-helper", "/etc/app/unused", "/usr/share/doc/app/README"} {
		if files[p] != nil {
			t.Errorf("hardened image still has %s", p)
		}
	}
	rep := res.Report
	for _, p := range []string{"/usr/local/bin/xmrig", "/usr/local/bin/xmrig-helper"} {
		if !slices.Contains(rep.Removed.Executables, p) {
			t.Errorf("removed executables %v lack %s", rep.Removed.Executables, p)
		}
	}
	if slices.Contains(rep.Removed.Executables, "/app/server") {
		t.Error("the entrypoint is listed as removed")
	}
	// Metadata is the layers' own.
	if h := files["/etc/app/app.conf"]; h.Mode != 0o640 || h.Gid != 1000 || h.Uid != 0 {
		t.Errorf("app.conf header %o %d:%d, want 0640 0:1000", h.Mode, h.Uid, h.Gid)
	}
	if h := files["/app/server"]; h.Uid != 1000 || h.Mode != 0o755 {
		t.Errorf("server header %o uid %d", h.Mode, h.Uid)
	}
	if h := files["/tmp"]; h.Mode != 0o1777 {
		t.Errorf("/tmp mode %o, want 1777", h.Mode)
	}
	reasons := map[string][]string{}
	for _, k := range rep.Kept {
		reasons[k.Path] = k.Reasons
	}
	if !slices.Contains(reasons["/app/server"], "executed") || !slices.Contains(reasons["/etc/app/app.conf"], "read") {
		t.Errorf("reasons: server %v, app.conf %v", reasons["/app/server"], reasons["/etc/app/app.conf"])
	}
	if r := reasons["/etc/ssl/certs/ca-certificates.crt"]; len(r) == 0 || !strings.HasPrefix(r[0], "default ca-certificates") {
		t.Errorf("CA bundle reasons %v", r)
	}
	if rep.Removed.Files < 4 || rep.Hardened.Bytes >= rep.Original.Bytes || rep.Hardened.Size >= rep.Original.Size {
		t.Errorf("report: removed %d files; bytes %d → %d; size %d → %d", rep.Removed.Files, rep.Original.Bytes, rep.Hardened.Bytes, rep.Original.Size, rep.Hardened.Size)
	}

	// Same config, annotations naming the original and the profile.
	ocf, _ := img.ConfigFile()
	hcf, err := res.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hcf.Config.Entrypoint, ocf.Config.Entrypoint) || !slices.Equal(hcf.Config.Env, ocf.Config.Env) ||
		hcf.Config.User != ocf.Config.User || hcf.Config.WorkingDir != ocf.Config.WorkingDir ||
		len(hcf.Config.ExposedPorts) != 1 || hcf.Config.Labels["org.opencontainers.image.title"] != "app" ||
		hcf.Architecture != ocf.Architecture || hcf.OS != "linux" {
		t.Errorf("config changed: %+v", hcf.Config)
	}
	m, err := res.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	od, _ := img.Digest()
	if m.Annotations[harden.AnnotationBaseDigest] != od.String() || m.Annotations[harden.AnnotationProfile] == "" {
		t.Errorf("annotations %v", m.Annotations)
	}
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("media type %s", m.MediaType)
	}
}

func TestHardenIsReproducible(t *testing.T) {
	ctx := context.Background()
	img := trojanedImage(t)
	pr := appProfile(t, img)
	var digests []string
	for i := 0; i < 2; i++ {
		res, err := harden.Harden(ctx, img, pr, harden.Options{TempDir: t.TempDir(), Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		d, err := res.Image.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d.String())
		res.Close()
	}
	if digests[0] != digests[1] {
		t.Fatalf("same input, different digests: %v", digests)
	}
	// A different keep-list is a different image.
	res, err := harden.Harden(ctx, img, pr, harden.Options{TempDir: t.TempDir(), Version: "test",
		Keep: []harden.KeepRule{{Glob: "/usr/share/doc/**", Source: "flag"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if d, _ := res.Image.Digest(); d.String() == digests[0] {
		t.Fatal("a keep-list did not change the image")
	}
}

func TestKeepFixesAMissedCodePath(t *testing.T) {
	ctx := context.Background()
	img := trojanedImage(t)
	pr := appProfile(t, img)
	res, err := harden.Harden(ctx, img, pr, harden.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if layerFiles(t, res.Image)["/etc/app/unused"] != nil {
		t.Fatal("a file the profile never saw was kept")
	}
	res.Close()
	res, err = harden.Harden(ctx, img, pr, harden.Options{TempDir: t.TempDir(), Keep: []harden.KeepRule{{Glob: "/etc/app/*", Source: "flag"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if layerFiles(t, res.Image)["/etc/app/unused"] == nil {
		t.Fatal("--keep /etc/app/* did not keep /etc/app/unused")
	}
	for _, k := range res.Report.Kept {
		if k.Path == "/etc/app/unused" && !slices.Contains(k.Reasons, "keep /etc/app/* (flag)") {
			t.Errorf("reasons %v", k.Reasons)
		}
	}
}

func TestDefaultsCanBeTurnedOff(t *testing.T) {
	ctx := context.Background()
	img := trojanedImage(t)
	pr := appProfile(t, img)
	res, err := harden.Harden(ctx, img, pr, harden.Options{TempDir: t.TempDir(), NoDefaults: []string{"ca-certificates", "passwd"}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	files := layerFiles(t, res.Image)
	if files["/etc/ssl/certs/ca-certificates.crt"] != nil || files["/etc/passwd"] != nil {
		t.Error("a default turned off was kept")
	}
	if files["/etc/group"] == nil {
		t.Error("a default left on was dropped")
	}
	if _, err := harden.Harden(ctx, img, pr, harden.Options{TempDir: t.TempDir(), NoDefaults: []string{"everything"}}); err == nil {
		t.Error("an unknown default was accepted")
	}
}

func TestProfileOfAnotherImageIsRefused(t *testing.T) {
	img := trojanedImage(t)
	pr := appProfile(t, img)
	pr.Image.Digest = "sha256:" + strings.Repeat("0", 64)
	if _, err := harden.Harden(context.Background(), img, pr, harden.Options{TempDir: t.TempDir()}); err == nil {
		t.Fatal("a profile of another image was accepted")
	}
}

// TestShellScriptEntrypoint: a busybox script keeps /bin/sh and the busybox
// it links to, and the applets it ran; the rest of busybox's links go.
func TestShellScriptEntrypoint(t *testing.T) {
	bb := sandboxtest.Busybox(t)
	img := sandboxtest.Image(t, v1.Config{Entrypoint: []string{"/app/start.sh"}},
		sandboxtest.Layer(t, map[string]sandboxtest.File{
			"bin/busybox":           {Data: bb, Mode: 0o755},
			"bin/sh":                {Symlink: "busybox"},
			"bin/cat":               {Symlink: "/bin/busybox"},
			"bin/wget":              {Symlink: "busybox"},
			"usr/bin/env":           {Symlink: "../../bin/busybox"},
			"app/start.sh":          {Data: []byte("#!/bin/sh\ncat /app/msg\nexec sleep 1\n"), Mode: 0o755},
			"app/msg":               {Data: []byte("hello\n"), Mode: 0o644},
			"app/tool.py":           {Data: []byte("#!/usr/bin/env -S python3 -u\nprint(1)\n"), Mode: 0o755},
			"usr/local/bin/python3": {Data: []byte("#!/bin/sh\necho fake python\n"), Mode: 0o755},
		}))
	d, _ := img.Digest()
	pr := &profile.Profile{Image: profile.Image{Digest: d.String()},
		Executables: []profile.Exec{{Path: "/app/start.sh"}, {Path: "/bin/cat"}, {Path: "/app/tool.py"}},
		Files:       profile.Files{Read: []profile.Path{{Path: "/app/msg"}}}}
	res, err := harden.Harden(context.Background(), img, pr, harden.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	files := layerFiles(t, res.Image)
	for _, p := range []string{"/bin/busybox", "/bin/sh", "/bin/cat", "/app/start.sh", "/app/msg", "/usr/bin/env", "/usr/local/bin/python3"} {
		if files[p] == nil {
			t.Errorf("lacks %s", p)
		}
	}
	if files["/bin/wget"] != nil {
		t.Error("kept /bin/wget, which nothing ran")
	}
	if h := files["/bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
		t.Errorf("/bin/sh is not the symlink it was: %+v", h)
	}
	reasons := map[string][]string{}
	for _, k := range res.Report.Kept {
		reasons[k.Path] = k.Reasons
	}
	if !slices.Contains(reasons["/bin/sh"], "script interpreter of /app/start.sh (symbolic link on the way)") {
		t.Errorf("/bin/sh reasons %v", reasons["/bin/sh"])
	}
	if !slices.Contains(reasons["/usr/local/bin/python3"], "program /bin/busybox runs for /app/tool.py") {
		t.Errorf("python3 reasons %v", reasons["/usr/local/bin/python3"])
	}
}

// TestSharedLibraries builds an image from a dynamically linked program of
// the host and the libraries the host's loader resolves for it (ldd is the
// oracle), plus libraries it does not need, in the host's merged-/usr
// layout; hardening keeps exactly the loader's set.
// sharedLibraryImage builds an image from a dynamically linked program of
// the host (run with --version) and the libraries the host's loader
// resolves for it (ldd is the oracle), plus a program and libraries it does
// not need (the decoys), in the host's merged-/usr layout.
func sharedLibraryImage(t *testing.T) (v1.Image, string, map[string]sandboxtest.File, []string, int) {
	t.Helper()
	prog := ""
	for _, p := range []string{"/usr/bin/curl", "/usr/bin/ls"} {
		if _, err := os.Stat(p); err == nil {
			prog = p
			break
		}
	}
	ldd, err := exec.LookPath("ldd")
	if prog == "" || err != nil {
		needHost(t, "no dynamically linked program or ldd on this host")
	}
	out, err := exec.Command(ldd, prog).Output()
	if err != nil {
		needHost(t, fmt.Sprintf("ldd %s: %v", prog, err))
	}
	var needed []string
	for _, line := range strings.Split(string(out), "\n") {
		fs := strings.Fields(line)
		switch {
		case len(fs) >= 3 && fs[1] == "=>" && strings.HasPrefix(fs[2], "/"):
			needed = append(needed, fs[2])
		case len(fs) >= 1 && strings.HasPrefix(fs[0], "/"):
			needed = append(needed, fs[0])
		}
	}
	if len(needed) < 2 {
		t.Skipf("%s needs too little: %v", prog, needed)
	}
	files := map[string]sandboxtest.File{}
	addHost := func(p string) {
		// Copy p with every symlink on its way, as the host has them.
		for hops := 0; hops < 40; hops++ {
			cur := "/"
			resolved := true
			for _, c := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
				next := filepath.Join(cur, c)
				fi, err := os.Lstat(next)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode()&os.ModeSymlink != 0 {
					target, _ := os.Readlink(next)
					files[strings.TrimPrefix(next, "/")] = sandboxtest.File{Symlink: target}
					if !filepath.IsAbs(target) {
						target = filepath.Join(cur, target)
					}
					p = filepath.Join(target, strings.TrimPrefix(p, next))
					resolved = false
					break
				}
				cur = next
			}
			if resolved {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				files[strings.TrimPrefix(p, "/")] = sandboxtest.File{Data: b, Mode: 0o755}
				return
			}
		}
		t.Fatalf("too many links resolving %s", p)
	}
	addHost(prog)
	for _, n := range needed {
		addHost(n)
	}
	// Decoys: libraries and a program nothing here needs.
	decoys := []string{}
	for _, d := range []string{"/usr/bin/ls", "/usr/bin/cp", "/usr/bin/tar"} {
		if d != prog {
			if _, err := os.Stat(d); err == nil {
				addHost(d)
				decoys = append(decoys, d)
				break
			}
		}
	}
	matches, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/libstdc++.so.6*")
	matches2, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/libsqlite3.so*")
	for _, m := range append(matches, matches2...) {
		if fi, err := os.Lstat(m); err == nil && fi.Mode().IsRegular() {
			addHost(m)
			decoys = append(decoys, m)
		}
	}
	files["etc/ld.so.conf"] = sandboxtest.File{Data: []byte("include /etc/ld.so.conf.d/*.conf\n"), Mode: 0o644}
	files["etc/ld.so.conf.d/x86_64-linux-gnu.conf"] = sandboxtest.File{Data: []byte("/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n"), Mode: 0o644}
	img := sandboxtest.Image(t, v1.Config{Entrypoint: []string{prog}, Cmd: []string{"--version"}}, sandboxtest.Layer(t, files))
	return img, prog, files, decoys, len(needed)
}

func TestSharedLibraries(t *testing.T) {
	img, prog, files, decoys, needed := sharedLibraryImage(t)
	d, _ := img.Digest()
	pr := &profile.Profile{Image: profile.Image{Digest: d.String()}, Executables: []profile.Exec{{Path: prog}}}
	res, err := harden.Harden(context.Background(), img, pr, harden.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	got := layerFiles(t, res.Image)
	for p := range files {
		p = "/" + p
		h := got[p]
		wantKept := !slices.ContainsFunc(decoys, func(d string) bool { return d == p })
		if wantKept && h == nil && !strings.HasPrefix(p, "/etc/ld.so.conf") {
			t.Errorf("the loader needs %s, the hardened image lacks it", p)
		}
		if !wantKept && h != nil {
			t.Errorf("kept %s, which %s does not need", p, prog)
		}
	}
	if len(res.Report.Notes) > 0 {
		t.Errorf("notes: %v", res.Report.Notes)
	}
	sort.Strings(decoys)
	t.Logf("%s: %d libraries kept; decoys removed: %v", prog, needed, decoys)
}
