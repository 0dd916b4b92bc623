package harden_test

import (
	"archive/tar"
	"context"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/harden"
	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
)

// TestApkDatabaseTrimmed: an Alpine-style installed database keeps the
// stanza of the package whose file is kept and drops the other.
func TestApkDatabaseTrimmed(t *testing.T) {
	db := "C:Q1abc=\nP:musl\nV:1.2.5-r0\nF:lib\nR:ld-musl-x86_64.so.1\nR:libc.musl-x86_64.so.1\n\n" +
		"C:Q1def=\nP:curl\nV:8.9.0-r0\nF:usr/bin\nR:curl\n\n"
	img := sandboxtest.Image(t, v1.Config{Entrypoint: []string{"/app"}}, sandboxtest.Layer(t, map[string]sandboxtest.File{
		"app":                       {Data: []byte("#!/lib/ld-musl-x86_64.so.1\n"), Mode: 0o755},
		"lib/ld-musl-x86_64.so.1":   {Data: []byte("loader"), Mode: 0o755},
		"lib/libc.musl-x86_64.so.1": {Symlink: "ld-musl-x86_64.so.1"},
		"usr/bin/curl":              {Data: []byte("curl"), Mode: 0o755},
		"lib/apk/db/installed":      {Data: []byte(db), Mode: 0o644},
	}))
	d, _ := img.Digest()
	res, err := harden.Harden(context.Background(), img, &profile.Profile{Image: profile.Image{Digest: d.String()}}, harden.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if !slices.Equal(res.Report.Packages.Kept, []string{"musl"}) || !slices.Equal(res.Report.Packages.Removed, []string{"curl"}) {
		t.Fatalf("packages %+v", res.Report.Packages)
	}
	ix, err := harden.NewIndex(context.Background(), res.Image, t.TempDir(), harden.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	b, err := ix.ReadFile("/lib/apk/db/installed", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "P:musl\n") || strings.Contains(string(b), "P:curl") {
		t.Errorf("trimmed database:\n%s", b)
	}
	if !slices.Contains(res.Report.Removed.Executables, "/usr/bin/curl") {
		t.Errorf("removed executables %v", res.Report.Removed.Executables)
	}
}

// TestHardLinksStayHardLinks: two kept names of one file are one file and
// a hard link in the hardened layer.
func TestHardLinksStayHardLinks(t *testing.T) {
	img := sandboxtest.Image(t, v1.Config{Entrypoint: []string{"/bin/a"}}, sandboxtest.Layer(t, map[string]sandboxtest.File{
		"bin/a": {Data: []byte("program"), Mode: 0o755},
		"bin/b": {Hardlink: "bin/a"},
		"bin/c": {Hardlink: "bin/a"},
	}))
	d, _ := img.Digest()
	pr := &profile.Profile{Image: profile.Image{Digest: d.String()}, Executables: []profile.Exec{{Path: "/bin/c"}}}
	res, err := harden.Harden(context.Background(), img, pr, harden.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	files := layerFiles(t, res.Image)
	a, b, c := files["/bin/a"], files["/bin/b"], files["/bin/c"]
	if a == nil || b != nil || c == nil {
		t.Fatalf("kept a %v b %v c %v", a != nil, b != nil, c != nil)
	}
	if a.Typeflag != tar.TypeReg || a.Size != 7 || c.Typeflag != tar.TypeLink || c.Linkname != "bin/a" {
		t.Errorf("a %c %d, c %c → %s", a.Typeflag, a.Size, c.Typeflag, c.Linkname)
	}
}
