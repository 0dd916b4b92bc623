package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
)

// Image reads a stored image manifest, whatever its state, as a v1.Image
// for Airlock's own vetting stages (the scan reads quarantined content;
// clients never get it this way). Blobs stream from storage on demand.
func (g *Registry) Image(ctx context.Context, repo, dgst string) (v1.Image, error) {
	raw, mt, err := g.RawManifest(ctx, repo, dgst)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&storedImage{g: g, ctx: ctx, repo: repo, raw: raw, mt: types.MediaType(mt)})
}

// RawManifest returns a stored manifest's bytes and media type.
func (g *Registry) RawManifest(ctx context.Context, repo, dgst string) ([]byte, string, error) {
	if !ValidDigest(dgst) {
		return nil, "", fmt.Errorf("invalid digest %q", dgst)
	}
	rep, err := g.repository(ctx, repo)
	if err != nil {
		return nil, "", err
	}
	ms, err := rep.Manifests(ctx)
	if err != nil {
		return nil, "", err
	}
	m, err := ms.Get(ctx, digest.Digest(dgst))
	if err != nil {
		return nil, "", fmt.Errorf("manifest %s@%s: %w", repo, dgst, err)
	}
	mt, raw, err := m.Payload()
	if err != nil {
		return nil, "", err
	}
	if got := digest.FromBytes(raw); got.String() != dgst {
		return nil, "", fmt.Errorf("manifest %s@%s: stored bytes hash to %s", repo, dgst, got)
	}
	return raw, mt, nil
}

func (g *Registry) openBlob(ctx context.Context, repo string, h v1.Hash) (io.ReadCloser, int64, error) {
	rep, err := g.repository(ctx, repo)
	if err != nil {
		return nil, 0, err
	}
	bs := rep.Blobs(ctx)
	d, err := bs.Stat(ctx, digest.Digest(h.String()))
	if err != nil {
		return nil, 0, fmt.Errorf("blob %s: %w", h, err)
	}
	rc, err := bs.Open(ctx, digest.Digest(h.String()))
	if err != nil {
		return nil, 0, fmt.Errorf("blob %s: %w", h, err)
	}
	return rc, d.Size, nil
}

type storedImage struct {
	g    *Registry
	ctx  context.Context
	repo string
	raw  []byte
	mt   types.MediaType
}

func (s *storedImage) RawManifest() ([]byte, error)        { return s.raw, nil }
func (s *storedImage) MediaType() (types.MediaType, error) { return s.mt, nil }

func (s *storedImage) RawConfigFile() ([]byte, error) {
	m, err := v1.ParseManifest(bytesReader(s.raw))
	if err != nil {
		return nil, err
	}
	rc, size, err := s.g.openBlob(s.ctx, s.repo, m.Config.Digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > 16<<20 {
		return nil, fmt.Errorf("config %s is %d bytes", m.Config.Digest, size)
	}
	return io.ReadAll(io.LimitReader(rc, size))
}

func (s *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := v1.ParseManifest(bytesReader(s.raw))
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if l.Digest == h {
			return &storedLayer{s: s, desc: l}, nil
		}
	}
	if m.Config.Digest == h {
		return &storedLayer{s: s, desc: m.Config}, nil
	}
	return nil, fmt.Errorf("image has no layer %s", h)
}

type storedLayer struct {
	s    *storedImage
	desc v1.Descriptor
}

func (l *storedLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *storedLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *storedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }
func (l *storedLayer) Compressed() (io.ReadCloser, error) {
	rc, _, err := l.s.g.openBlob(l.s.ctx, l.s.repo, l.desc.Digest)
	return rc, err
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
