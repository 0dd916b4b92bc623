package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Facts the built images carry, checked back through Describe.
var (
	builtAt   = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	builtBy   = "Airlock tests <tests@airlock.invalid>"
	buildStep = "COPY hello /usr/local/bin/hello"
	envStep   = "ENV GREETING=hello"
)

// testImages are real images built once per test binary: a single-arch
// image (Docker media types, so a docker save archive reproduces its
// digest) and a two-platform OCI index, each holding a freshly compiled Go
// binary and Debian's static busybox.
type testImages struct {
	single v1.Image          // linux/amd64, Docker media types
	amd64  v1.Image          // linux/amd64, OCI media types
	arm64  v1.Image          // linux/arm64, OCI media types
	index  v1.ImageIndex     // amd64 + arm64 with platforms
	hello  map[string][]byte // compiled binary by GOARCH
}

var (
	imagesOnce sync.Once
	images     *testImages
	imagesSkip string
	imagesErr  error
)

// fixtures returns the shared images, skipping when busybox is missing
// locally (and failing in CI, where it must be installed).
func fixtures(t testing.TB) *testImages {
	t.Helper()
	imagesOnce.Do(func() { images, imagesSkip, imagesErr = buildImages() })
	if imagesSkip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(imagesSkip)
		}
		t.Skip(imagesSkip)
	}
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
	return images
}

func buildImages() (*testImages, string, error) {
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, "no /bin/busybox (install Debian's busybox-static): " + err.Error(), nil
	}
	ti := &testImages{hello: map[string][]byte{}}
	for _, arch := range []string{"amd64", "arm64"} {
		b, err := compileHello(arch)
		if err != nil {
			return nil, "", err
		}
		ti.hello[arch] = b
	}
	if ti.single, err = buildImage("amd64", ti.hello["amd64"], busybox, false); err != nil {
		return nil, "", err
	}
	if ti.amd64, err = buildImage("amd64", ti.hello["amd64"], busybox, true); err != nil {
		return nil, "", err
	}
	if ti.arm64, err = buildImage("arm64", ti.hello["arm64"], nil, true); err != nil {
		return nil, "", err
	}
	ti.index = mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: ti.amd64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: ti.arm64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	return ti, "", nil
}

// compileHello builds testdata/hello for linux/arch and returns the binary.
func compileHello(arch string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "airlock-hello-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./testdata/hello")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build hello for %s: %v\n%s", arch, err, msg)
	}
	return os.ReadFile(out)
}

// buildImage makes a one-layer image holding hello (and busybox when given).
func buildImage(arch string, hello, busybox []byte, oci bool) (v1.Image, error) {
	var files []tarMember
	files = append(files,
		tarMember{Name: "usr/", Type: tar.TypeDir, Mode: 0o755},
		tarMember{Name: "usr/local/", Type: tar.TypeDir, Mode: 0o755},
		tarMember{Name: "usr/local/bin/", Type: tar.TypeDir, Mode: 0o755},
		tarMember{Name: "usr/local/bin/hello", Type: tar.TypeReg, Mode: 0o755, Body: hello},
	)
	if busybox != nil {
		files = append(files,
			tarMember{Name: "bin/", Type: tar.TypeDir, Mode: 0o755},
			tarMember{Name: "bin/busybox", Type: tar.TypeReg, Mode: 0o755, Body: busybox},
			tarMember{Name: "bin/sh", Type: tar.TypeSymlink, Link: "busybox"},
		)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(tarBytes(files...)); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	layerType, manifestType, configType := types.DockerLayer, types.DockerManifestSchema2, types.DockerConfigJSON
	if oci {
		layerType, manifestType, configType = types.OCILayer, types.OCIManifestSchema1, types.OCIConfigJSON
	}
	blob := gz.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob)), nil
	}, tarball.WithMediaType(layerType))
	if err != nil {
		return nil, err
	}
	base, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Author:       builtBy,
		Config: v1.Config{
			Entrypoint: []string{"/usr/local/bin/hello"},
			Env:        []string{"GREETING=hello"},
			Labels:     map[string]string{"org.opencontainers.image.title": "hello", "arch": arch},
		},
		History: []v1.History{{Created: v1.Time{Time: builtAt}, CreatedBy: envStep, EmptyLayer: true}},
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: layerType,
		History:   v1.History{Created: v1.Time{Time: builtAt}, CreatedBy: buildStep, Comment: "the real binary"},
	})
	if err != nil {
		return nil, err
	}
	img = mutate.MediaType(img, manifestType)
	img = mutate.ConfigMediaType(img, configType)
	return mutate.CreatedAt(img, v1.Time{Time: builtAt})
}

// helloMachine reads /usr/local/bin/hello out of the image's layers and
// returns its ELF machine, proving the artifact carries the real binary.
func helloMachine(t *testing.T, img v1.Image) elf.Machine {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name != "usr/local/bin/hello" {
				continue
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			rc.Close()
			ef, err := elf.NewFile(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("hello in the image is not an ELF binary: %v", err)
			}
			return ef.Machine
		}
		rc.Close()
	}
	t.Fatal("no usr/local/bin/hello in the image")
	return 0
}

// loopbackRegistry starts go-containerregistry's in-memory registry, with
// the OCI referrers API, on 127.0.0.1 and returns its host:port.
func loopbackRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(
		registry.Logger(log.New(io.Discard, "", 0)),
		registry.WithReferrersSupport(true),
	))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func mustDigest(t testing.TB, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustTag(t testing.TB, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// tarMember is one member of a tar the tests write with archive/tar.
type tarMember struct {
	Name string
	Type byte
	Mode int64
	Link string
	Body []byte
	Size int64 // header size when it should differ from len(Body)
}

// tarBytes writes members with archive/tar. Header sizes may lie (Size),
// and the writer's complaint about a short body is ignored so that lie
// reaches the file.
func tarBytes(members ...tarMember) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		size := int64(len(m.Body))
		if m.Size != 0 {
			size = m.Size
		}
		if m.Type != tar.TypeReg {
			size = 0
		}
		mode := m.Mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Name: m.Name, Typeflag: m.Type, Mode: mode, Linkname: m.Link, Size: size,
			ModTime: builtAt, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			panic(fmt.Sprintf("tar header %q: %v", m.Name, err))
		}
		if _, err := tw.Write(m.Body); err != nil {
			panic(err)
		}
		if m.Size != 0 && m.Size != int64(len(m.Body)) {
			// A lying header: stop here, the archive ends short.
			tw.Flush()
			return buf.Bytes()
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// tarDir archives the files under dir with names relative to it, the way
// `tar -C dir -cf out .` does (including the leading "./" entry).
func tarDir(t testing.TB, dir, out string) {
	t.Helper()
	members := []tarMember{{Name: "./", Type: tar.TypeDir, Mode: 0o755}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = "./" + filepath.ToSlash(rel)
		if d.IsDir() {
			members = append(members, tarMember{Name: rel + "/", Type: tar.TypeDir, Mode: 0o755})
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		members = append(members, tarMember{Name: rel, Type: tar.TypeReg, Body: b})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, tarBytes(members...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tree lists every path under dir (relative, with a trailing '/' for
// directories and " -> target" for symlinks), to compare before and after.
// dir itself is not listed.
func tree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			rel += " -> " + target
		case d.IsDir():
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
