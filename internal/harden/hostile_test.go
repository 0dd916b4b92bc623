package harden_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/harden"
	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
)

// rawLayer is a layer from tar entries written exactly as given (names with
// "..", absolute names, links anywhere), which sandboxtest.Layer would not
// write.
type rawEntry struct {
	name, link string
	typ        byte
	data       string
	mode       int64
}

func rawTar(t testing.TB, entries []rawEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, ModTime: time.Unix(1, 0), Format: tar.FormatPAX}
		if h.Mode == 0 {
			h.Mode = 0o755
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.data))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// TestIndexLayers checks the final file set: whiteouts, opaque directories,
// replaced directories, hard links and parents that are symlinks.
func TestIndexLayers(t *testing.T) {
	l1 := rawTar(t, []rawEntry{
		{name: "usr/", typ: tar.TypeDir},
		{name: "usr/lib/", typ: tar.TypeDir},
		{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
		{name: "usr/lib/a.so", typ: tar.TypeReg, data: "a"},
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/old", typ: tar.TypeReg, data: "old"},
		{name: "etc/keep", typ: tar.TypeReg, data: "keep"},
		{name: "opt/x/", typ: tar.TypeDir},
		{name: "opt/x/1", typ: tar.TypeReg, data: "1"},
		{name: "opt/x/2", typ: tar.TypeReg, data: "2"},
		{name: "var/d/", typ: tar.TypeDir},
		{name: "var/d/f", typ: tar.TypeReg, data: "f"},
		{name: "bin/orig", typ: tar.TypeReg, data: "program"},
	})
	l2 := rawTar(t, []rawEntry{
		{name: "lib/b.so", typ: tar.TypeReg, data: "b"}, // lands in /usr/lib through the symlink
		{name: "etc/.wh.old", typ: tar.TypeReg},
		{name: "opt/x/.wh..wh..opq", typ: tar.TypeReg},
		{name: "opt/x/3", typ: tar.TypeReg, data: "3"},
		{name: "var/d", typ: tar.TypeReg, data: "now a file"},
		{name: "bin/link", typ: tar.TypeLink, link: "bin/orig"},
		{name: "./bin/../../../etc/escaped", typ: tar.TypeReg, data: "clean"},
	})
	img := sandboxtest.Image(t, v1.Config{}, sandboxtest.LayerOf(t, l1), sandboxtest.LayerOf(t, l2))
	ix, err := harden.NewIndex(context.Background(), img, t.TempDir(), harden.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	want := map[string]bool{
		"/usr": true, "/usr/lib": true, "/lib": true, "/usr/lib/a.so": true, "/usr/lib/b.so": true,
		"/etc": true, "/etc/keep": true, "/etc/escaped": true, "/opt/x": true, "/opt/x/3": true, "/var/d": true,
		"/bin/orig": true, "/bin/link": true,
	}
	got := map[string]bool{}
	for _, p := range ix.Paths() {
		got[p] = true
		if !want[p] {
			t.Errorf("unexpected %s", p)
		}
	}
	for p := range want {
		if !got[p] {
			t.Errorf("missing %s", p)
		}
	}
	if b, err := ix.ReadFile("/bin/link", 100); err != nil || string(b) != "program" {
		t.Errorf("hard link content %q %v", b, err)
	}
	if r, links := ix.Resolve("/lib/b.so", 40); r != "/usr/lib/b.so" || len(links) != 1 || links[0] != "/lib" {
		t.Errorf("Resolve(/lib/b.so) = %s %v", r, links)
	}
}

// TestHostileLayersAreRefused: bad layers give a LayerError and leave
// nothing behind.
func TestHostileLayersAreRefused(t *testing.T) {
	for name, entries := range map[string][]rawEntry{
		"hard link to nothing":      {{name: "a", typ: tar.TypeLink, link: "does/not/exist"}},
		"hard link out of the root": {{name: "a", typ: tar.TypeLink, link: "../../../../etc/passwd"}},
		"hard link to a directory":  {{name: "d/", typ: tar.TypeDir}, {name: "a", typ: tar.TypeLink, link: "d"}},
		"symlink with no target":    {{name: "a", typ: tar.TypeSymlink}},
		"root as a file":            {{name: "a/../..", typ: tar.TypeReg, data: "x"}},
	} {
		t.Run(name, func(t *testing.T) {
			tmp := t.TempDir()
			img := sandboxtest.Image(t, v1.Config{}, sandboxtest.LayerOf(t, rawTar(t, entries)))
			_, err := harden.NewIndex(context.Background(), img, tmp, harden.Limits{})
			var le *harden.LayerError
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a LayerError", err)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("left %d files behind", len(left))
			}
		})
	}
	t.Run("over the size limit", func(t *testing.T) {
		img := sandboxtest.Image(t, v1.Config{}, sandboxtest.LayerOf(t, rawTar(t, []rawEntry{{name: "big", typ: tar.TypeReg, data: strings.Repeat("x", 4096)}})))
		_, err := harden.NewIndex(context.Background(), img, t.TempDir(), harden.Limits{MaxFileBytes: 1024})
		var le *harden.LayerError
		if !errors.As(err, &le) {
			t.Fatalf("got %v", err)
		}
	})
}

// TestHostileProfileStaysInside: a profile naming paths with "..", an image
// whose symlinks point at the host's absolute paths and out of the root, and
// a symlink loop; hardening reads nothing of the host and writes nothing
// outside its temporary directory.
func TestHostileProfileStaysInside(t *testing.T) {
	host := t.TempDir()
	secret := filepath.Join(host, "secret")
	if err := os.WriteFile(secret, []byte("HOST SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	canary := filepath.Join(host, "canary")
	layer := rawTar(t, []rawEntry{
		{name: "app", typ: tar.TypeReg, data: "#!" + secret + "\n", mode: 0o755},
		{name: "etc/abs", typ: tar.TypeSymlink, link: host},
		{name: "etc/up", typ: tar.TypeSymlink, link: "../../../../../../" + host},
		{name: "etc/loop1", typ: tar.TypeSymlink, link: "loop2"},
		{name: "etc/loop2", typ: tar.TypeSymlink, link: "loop1"},
		{name: "etc/out", typ: tar.TypeSymlink, link: canary},
		{name: "lib/x.so", typ: tar.TypeSymlink, link: "/../../.." + secret},
	})
	img := sandboxtest.Image(t, v1.Config{Entrypoint: []string{"/app"}}, sandboxtest.LayerOf(t, layer))
	d, _ := img.Digest()
	pr := &profile.Profile{Image: profile.Image{Digest: d.String()},
		Executables: []profile.Exec{{Path: "/app"}, {Path: "/../../.." + secret}},
		Files: profile.Files{
			Read:    []profile.Path{{Path: "/etc/abs/secret"}, {Path: "/etc/up/secret"}, {Path: "/etc/loop1/x"}, {Path: "/../../.." + secret}, {Path: "/lib/x.so"}},
			Written: []profile.Path{{Path: "/etc/out"}, {Path: "../../" + canary}},
			Created: []profile.Path{{Path: canary}},
			Missing: []profile.Path{{Path: "/etc/out/new"}},
		},
	}
	tmp := t.TempDir()
	res, err := harden.Harden(context.Background(), img, pr, harden.Options{TempDir: tmp})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := mustLayer(t, res.Image).Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	all, _ := io.ReadAll(rc)
	rc.Close()
	if bytes.Contains(all, []byte("HOST SECRET")) {
		t.Error("the hardened layer holds a host file's content")
	}
	if _, err := os.Stat(canary); !os.IsNotExist(err) {
		t.Errorf("hardening created %s on the host", canary)
	}
	for name, h := range layerFiles(t, res.Image) {
		if strings.Contains(name, "..") || !strings.HasPrefix(name, "/") {
			t.Errorf("entry %q is not a clean path", name)
		}
		_ = h
	}
	res.Close()
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left %d files in the temporary directory", len(left))
	}
	if b, _ := os.ReadFile(secret); string(b) != "HOST SECRET" {
		t.Error("the host file changed")
	}
}

func mustLayer(t *testing.T, img v1.Image) v1.Layer {
	ls, err := img.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("layers: %v %d", err, len(ls))
	}
	return ls[0]
}

// TestHugeProfile: a profile naming many paths the image does not have is
// handled without keeping anything extra.
func TestHugeProfile(t *testing.T) {
	img := trojanedImage(t)
	pr := appProfile(t, img)
	for i := 0; i < 200_000; i++ {
		pr.Files.Read = append(pr.Files.Read, profile.Path{Path: fmt.Sprintf("/nowhere/%d/../../etc/app/../x%d", i, i)})
	}
	res, err := harden.Harden(context.Background(), img, pr, harden.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if layerFiles(t, res.Image)["/usr/local/bin/xmrig"] != nil {
		t.Error("the miner was kept")
	}
}

func FuzzIndexLayer(f *testing.F) {
	f.Add(rawTar(f, []rawEntry{{name: "a", typ: tar.TypeReg, data: "x"}, {name: "b", typ: tar.TypeLink, link: "a"}}), "/b")
	f.Add(rawTar(f, []rawEntry{{name: "l", typ: tar.TypeSymlink, link: "../../etc"}, {name: "l/x", typ: tar.TypeReg, data: "x"}}), "/l/x")
	f.Add(rawTar(f, []rawEntry{{name: "d/", typ: tar.TypeDir}, {name: "d/.wh..wh..opq", typ: tar.TypeReg}, {name: ".wh.d", typ: tar.TypeReg}}), "/d")
	f.Add([]byte("not a tar"), "/")
	f.Fuzz(func(t *testing.T, data []byte, read string) {
		img := sandboxtest.Image(t, v1.Config{}, sandboxtest.LayerOf(t, data), sandboxtest.LayerOf(t, data))
		d, _ := img.Digest()
		pr := &profile.Profile{Image: profile.Image{Digest: d.String()}, Files: profile.Files{Read: []profile.Path{{Path: read}}}}
		tmp := t.TempDir()
		res, err := harden.Harden(context.Background(), img, pr, harden.Options{TempDir: tmp, Limits: harden.Limits{MaxTotalBytes: 1 << 20}})
		if err != nil {
			var le *harden.LayerError
			if !errors.As(err, &le) {
				t.Fatalf("not a layer error: %v", err)
			}
			return
		}
		for name := range layerFiles(t, res.Image) {
			if strings.Contains(name+"/", "/../") || strings.Contains(name, "//") {
				t.Errorf("entry %q is not clean", name)
			}
		}
		res.Close()
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("left %d files behind", len(left))
		}
	})
}

func FuzzKeepSet(f *testing.F) {
	f.Add("/etc/x", "../../../etc", "/lib/a", "/lib/**")
	f.Add("/a/b", "/", "/a/b/../../../c", "/[")
	f.Add("#!/usr/bin/env python3", "a/b/c", "/x", "/*")
	// The start of a real dynamically linked program: the ELF walk reads
	// its truncated headers.
	if b, err := os.ReadFile("/usr/bin/true"); err == nil && len(b) > 8192 {
		f.Add(string(b[:8192]), "../lib", "/bin/app", "/lib/**")
	}
	f.Fuzz(func(t *testing.T, content, linkTarget, path, keep string) {
		if strings.ContainsRune(linkTarget, 0) || len(linkTarget) > 1000 {
			t.Skip("tar cannot carry this link target")
		}
		layer := rawTar(t, []rawEntry{
			{name: "bin/app", typ: tar.TypeReg, data: content},
			{name: "lib/l", typ: tar.TypeSymlink, link: linkTarget + "x"},
			{name: "usr/bin/env", typ: tar.TypeSymlink, link: linkTarget},
			{name: "etc/x", typ: tar.TypeReg, data: "x"},
		})
		img := sandboxtest.Image(t, v1.Config{Entrypoint: []string{"/bin/app"}}, sandboxtest.LayerOf(t, layer))
		d, _ := img.Digest()
		pr := &profile.Profile{Image: profile.Image{Digest: d.String()},
			Executables: []profile.Exec{{Path: path}},
			Files:       profile.Files{Read: []profile.Path{{Path: "/lib/l/" + path}}, Missing: []profile.Path{{Path: path}}}}
		var rules []harden.KeepRule
		if harden.ValidateGlob(keep) == nil {
			rules = append(rules, harden.KeepRule{Glob: keep, Source: "flag"})
		}
		res, err := harden.Harden(context.Background(), img, pr, harden.Options{TempDir: t.TempDir(), Keep: rules})
		if err != nil {
			t.Fatal(err)
		}
		defer res.Close()
		for name := range layerFiles(t, res.Image) {
			if strings.Contains(name+"/", "/../") {
				t.Errorf("entry %q escapes", name)
			}
		}
	})
}
