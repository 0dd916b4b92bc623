// Package sandboxtest builds the real test images the sandbox, profile and
// harden tests run: Go programs compiled for the test, Debian's static
// busybox, files with modes, symlinks and hard links, in OCI images.
package sandboxtest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var (
	buildMu sync.Mutex
	built   = map[string][]byte{}
)

// GoProgram compiles src (a main package using only the standard library)
// into a static linux binary for the host architecture. Results are cached
// per source for the life of the test binary.
func GoProgram(t testing.TB, src string) []byte {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	sum := sha256.Sum256([]byte(src))
	key := hex.EncodeToString(sum[:])
	if b, ok := built[key]; ok {
		return b
	}
	dir, err := os.MkdirTemp("", "airlock-goprog-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module prog\n\ngo 1.22\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "prog")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	built[key] = b
	return b
}

// Busybox returns Debian's static busybox (package busybox-static). Missing:
// skipped locally, fatal in CI, where .ci/run installs it.
func Busybox(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("busybox-static is not installed: %v", err)
		}
		t.Skipf("busybox-static is not installed: %v", err)
	}
	return b
}

// File is one entry of a test layer.
type File struct {
	Data     []byte
	Mode     int64  // default 0755 for files, 0755 for directories
	Dir      bool   // a directory
	Symlink  string // a symbolic link to this target
	Hardlink string // a hard link to this earlier entry
	UID, GID int
}

// Layer builds an uncompressed-then-gzipped layer from files, written in
// path order (directories are not implied: name them if a test needs their
// modes).
func Layer(t testing.TB, files map[string]File) v1.Layer {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		f := files[n]
		h := &tar.Header{Name: n, Mode: f.Mode, Uid: f.UID, Gid: f.GID, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if h.Mode == 0 {
			h.Mode = 0o755
		}
		switch {
		case f.Dir:
			h.Typeflag = tar.TypeDir
		case f.Symlink != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Symlink
		case f.Hardlink != "":
			h.Typeflag, h.Linkname = tar.TypeLink, f.Hardlink
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return LayerOf(t, buf.Bytes())
}

// LayerOf is the layer of these uncompressed tar bytes exactly as given,
// hostile ones too (names with "..", links anywhere, lying sizes).
func LayerOf(t testing.TB, tarBytes []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarBytes)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image builds a linux OCI image from layers (bottom first) and a config.
func Image(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, MediaType: types.OCILayer,
			History: v1.History{CreatedBy: "airlock test layer", Created: v1.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", hostArch()
	cf.Created = v1.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	cf.Config = cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
