package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/airlock-dev/airlock/bench/internal/host"
)

// Where the image lives upstream and in the peers' destinations.
const (
	imageRepo = "bench/img"
	imageTag  = "1"
	refName   = "org.opencontainers.image.ref.name"
)

// image is the generated image, read from its cached OCI layout.
type image struct {
	dir    string
	img    v1.Image
	digest string
	bytes  int64 // config and layers, as a copy moves them
	layers int
}

type imageSummary struct {
	Digest string  `json:"digest"`
	Bytes  int64   `json:"bytes"`
	MiB    float64 `json:"mib"`
	Layers int     `json:"layers"`
	Layout string  `json:"layout"`
}

func (i *image) summary() imageSummary {
	return imageSummary{Digest: i.digest, Bytes: i.bytes, MiB: float64(i.bytes) / (1 << 20), Layers: i.layers, Layout: i.dir}
}

// cachedImage returns the image of mib MiB in layers layers from the out
// directory, generating it first if no complete layout is there.
func cachedImage(out string, mib, layers int) (*image, error) {
	dir := filepath.Join(out, fmt.Sprintf("layout-%dmib-%dlayers", mib, layers))
	if img, err := openImage(dir); err == nil {
		host.Logf("using the cached image %s (%s)", dir, img.digest)
		return img, nil
	}
	host.Logf("generating a %d MiB image of %d random layers into %s", mib, layers, dir)
	start := time.Now()
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := generate(dir, int64(mib)<<20, layers); err != nil {
		return nil, err
	}
	img, err := openImage(dir)
	if err != nil {
		return nil, err
	}
	host.Logf("generated %s in %.1fs", img.digest, time.Since(start).Seconds())
	return img, nil
}

// generate writes an OCI layout holding one image whose layers are gzip tars
// of one file of random bytes each: incompressible, like real layers already
// are, so no tool can win by compressing. "complete" is written last.
func generate(dir string, total int64, layers int) error {
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return err
	}
	random := mrand.NewChaCha8(seed)
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	created := v1.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	for i := 0; i < layers; i++ {
		size := total / int64(layers)
		if i == layers-1 {
			size = total - size*int64(layers-1)
		}
		path := filepath.Join(work, fmt.Sprintf("layer-%d.tar.gz", i))
		if err := writeLayer(path, fmt.Sprintf("data/random-%d.bin", i), size, random); err != nil {
			return err
		}
		l, err := tarball.LayerFromFile(path, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return err
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, MediaType: types.OCILayer,
			History: v1.History{CreatedBy: fmt.Sprintf("airlock bench: %d random bytes", size), Created: created}})
		if err != nil {
			return err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = created
	cf.Config.Labels = map[string]string{"org.opencontainers.image.title": "airlock import benchmark"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refName: imageRepo + ":" + imageTag})); err != nil {
		return err
	}
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "complete"), nil, 0o644)
}

func writeLayer(path, name string, size int64, random io.Reader) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	// Random bytes do not compress: BestSpeed stores them almost as they are.
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, random, size); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func openImage(dir string) (*image, error) {
	if _, err := os.Stat(filepath.Join(dir, "complete")); err != nil {
		return nil, err
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(im.Manifests) != 1 {
		return nil, fmt.Errorf("%s: want one image, have %d", dir, len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		return nil, err
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	out := &image{dir: dir, img: img, digest: im.Manifests[0].Digest.String(), bytes: m.Config.Size, layers: len(m.Layers)}
	for _, l := range m.Layers {
		st, err := os.Stat(filepath.Join(dir, "blobs", l.Digest.Algorithm, l.Digest.Hex))
		if err != nil || st.Size() != l.Size {
			return nil, fmt.Errorf("%s: layer %s missing or truncated", dir, l.Digest)
		}
		out.bytes += l.Size
	}
	return out, nil
}

// push writes the image to the upstream registry as bench/img:1.
func (i *image) push(ctx context.Context, up *server) error {
	ref, err := name.ParseReference(up.host+"/"+imageRepo+":"+imageTag, name.Insecure)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := remote.Write(ref, i.img, remote.WithContext(ctx), remote.WithAuth(authn.Anonymous)); err != nil {
		return fmt.Errorf("push the image upstream: %w", err)
	}
	host.Logf("pushed %s to the upstream %s in %.1fs", i.digest, ref, time.Since(start).Seconds())
	return nil
}
