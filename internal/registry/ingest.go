package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/distribution/distribution/v3"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/internal/store"
)

// ResolveTag returns the digest tag points to in repo, or "" if there is no such tag.
func (g *Registry) ResolveTag(ctx context.Context, repo, tag string) (string, error) {
	if !ValidRepository(repo) || !ValidTag(tag) {
		return "", nil
	}
	return g.resolveTag(ctx, repo, tag)
}

// Progress reports bytes of one blob copied so far.
type Progress func(blob string, done, total int64)

// IngestResult is what an ingest stored.
type IngestResult struct {
	Digest    string
	MediaType string
	Size      int64    // bytes of blobs copied (not counting blobs already present)
	Manifests []string // every manifest stored, children first
	// TagsKept lists tags left on an approved digest instead of moving them.
	TagsKept []string
}

// Ingest copies an image or index into repo through distribution's storage,
// verifying every digest on the way (a blob or manifest whose bytes do not
// hash to their descriptor is refused), records every manifest in the store
// as pushed by actor, and tags the top manifest. Tags pointing to an approved
// digest are not moved (approved tags are immutable); they are reported.
func (g *Registry) Ingest(ctx context.Context, repo string, tags []string, idx v1.ImageIndex, img v1.Image, actor string, progress Progress) (IngestResult, error) {
	var res IngestResult
	if !ValidRepository(repo) {
		return res, fmt.Errorf("invalid repository name %q", repo)
	}
	for _, t := range tags {
		if !ValidTag(t) {
			return res, fmt.Errorf("invalid tag %q", t)
		}
	}
	rep, err := g.repository(ctx, repo)
	if err != nil {
		return res, err
	}
	in := &ingest{g: g, rep: rep, repo: repo, actor: actor, progress: progress, done: map[string]bool{}}
	var top manifestBlob
	if idx != nil {
		top, err = in.index(ctx, idx)
	} else {
		top, err = in.image(ctx, img)
	}
	if err != nil {
		return res, err
	}
	res.Digest, res.MediaType, res.Size, res.Manifests = top.digest, top.mediaType, in.copied, in.manifests
	for _, t := range tags {
		kept, err := in.tag(ctx, t, top)
		if err != nil {
			return res, err
		}
		if kept {
			res.TagsKept = append(res.TagsKept, t)
		}
	}
	return res, nil
}

type manifestBlob struct {
	digest, mediaType string
	raw               []byte
}

type ingest struct {
	g         *Registry
	rep       distribution.Repository
	repo      string
	actor     string
	progress  Progress
	mu        sync.Mutex
	copied    int64
	manifests []string
	done      map[string]bool
}

func (in *ingest) index(ctx context.Context, idx v1.ImageIndex) (manifestBlob, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return manifestBlob{}, err
	}
	for _, m := range im.Manifests {
		switch {
		case m.MediaType.IsIndex():
			child, err := idx.ImageIndex(m.Digest)
			if err != nil {
				return manifestBlob{}, err
			}
			if _, err := in.index(ctx, child); err != nil {
				return manifestBlob{}, err
			}
		case m.MediaType.IsImage():
			child, err := idx.Image(m.Digest)
			if err != nil {
				return manifestBlob{}, err
			}
			if _, err := in.image(ctx, child); err != nil {
				return manifestBlob{}, err
			}
		default:
			return manifestBlob{}, fmt.Errorf("index lists %s of unsupported media type %s", m.Digest, m.MediaType)
		}
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return manifestBlob{}, err
	}
	mt, err := idx.MediaType()
	if err != nil {
		return manifestBlob{}, err
	}
	d, err := idx.Digest()
	if err != nil {
		return manifestBlob{}, err
	}
	return in.putManifest(ctx, d.String(), string(mt), raw)
}

func (in *ingest) image(ctx context.Context, img v1.Image) (manifestBlob, error) {
	m, err := img.Manifest()
	if err != nil {
		return manifestBlob{}, err
	}
	// The config first, then the layers, a few at a time.
	cfg, err := img.RawConfigFile()
	if err != nil {
		return manifestBlob{}, err
	}
	if err := in.blob(ctx, m.Config, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(cfg)), nil }); err != nil {
		return manifestBlob{}, err
	}
	sem := make(chan struct{}, 4)
	errc := make(chan error, len(m.Layers))
	var wg sync.WaitGroup
	for _, l := range m.Layers {
		if len(l.URLs) > 0 {
			return manifestBlob{}, fmt.Errorf("layer %s lives outside the registry (%s); foreign layers cannot be vetted", l.Digest, l.URLs[0])
		}
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			return manifestBlob{}, err
		}
		wg.Add(1)
		go func(desc v1.Descriptor, layer v1.Layer) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errc <- in.blob(ctx, desc, layer.Compressed)
		}(l, layer)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return manifestBlob{}, err
		}
	}
	raw, err := img.RawManifest()
	if err != nil {
		return manifestBlob{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return manifestBlob{}, err
	}
	d, err := img.Digest()
	if err != nil {
		return manifestBlob{}, err
	}
	return in.putManifest(ctx, d.String(), string(mt), raw)
}

// blob copies one blob unless the repository has it; distribution verifies
// the digest and size at commit.
func (in *ingest) blob(ctx context.Context, desc v1.Descriptor, open func() (io.ReadCloser, error)) error {
	key := desc.Digest.String()
	in.mu.Lock()
	seen := in.done[key]
	in.done[key] = true
	in.mu.Unlock()
	if seen {
		return nil
	}
	bs := in.rep.Blobs(ctx)
	if _, err := bs.Stat(ctx, digest.Digest(key)); err == nil {
		return nil
	}
	rc, err := open()
	if err != nil {
		return fmt.Errorf("read blob %s: %w", key, err)
	}
	defer rc.Close()
	w, err := bs.Create(ctx)
	if err != nil {
		return fmt.Errorf("store blob %s: %w", key, err)
	}
	var r io.Reader = io.LimitReader(rc, desc.Size+1)
	if in.progress != nil {
		r = &countingReader{r: r, fn: func(n int64) { in.progress(key, n, desc.Size) }}
	}
	n, err := io.Copy(w, r)
	if err != nil {
		_ = w.Cancel(ctx)
		if strings.Contains(err.Error(), "verifying") {
			// The reader checks the digest as it streams (go-containerregistry's verify).
			return fmt.Errorf("blob %s: content does not match its digest; refusing content changed in transit", key)
		}
		return fmt.Errorf("copy blob %s: %w", key, err)
	}
	if n != desc.Size {
		_ = w.Cancel(ctx)
		return fmt.Errorf("blob %s has %d bytes, its descriptor says %d; refusing content changed in transit", key, n, desc.Size)
	}
	if _, err := w.Commit(ctx, ocispec.Descriptor{Digest: digest.Digest(key), Size: desc.Size, MediaType: string(desc.MediaType)}); err != nil {
		_ = w.Cancel(ctx)
		var inv distribution.ErrBlobInvalidDigest
		if errors.As(err, &inv) {
			return fmt.Errorf("blob %s: content does not match its digest; refusing content changed in transit", key)
		}
		return fmt.Errorf("commit blob %s: %w", key, err)
	}
	in.mu.Lock()
	in.copied += n
	in.mu.Unlock()
	return nil
}

// putManifest stores a manifest whose bytes must hash to want, and records it.
func (in *ingest) putManifest(ctx context.Context, want, mediaType string, raw []byte) (manifestBlob, error) {
	mb := manifestBlob{digest: want, mediaType: mediaType, raw: raw}
	if got := computeDigest("sha256", raw); got != want {
		return mb, fmt.Errorf("manifest %s hashes to %s; refusing content changed in transit", want, got)
	}
	if int64(len(raw)) > in.g.maxSize {
		return mb, fmt.Errorf("manifest %s is larger than the limit of %d bytes", want, in.g.maxSize)
	}
	parsed, err := ParseManifest(mediaType, raw)
	if err != nil {
		return mb, fmt.Errorf("manifest %s: %w", want, err)
	}
	m, _, err := distribution.UnmarshalManifest(mediaType, raw)
	if err != nil {
		return mb, fmt.Errorf("manifest %s: %w", want, err)
	}
	ms, err := in.rep.Manifests(ctx)
	if err != nil {
		return mb, err
	}
	got, err := ms.Put(ctx, m)
	if err != nil {
		return mb, fmt.Errorf("store manifest %s: %w", want, err)
	}
	if got.String() != want {
		return mb, fmt.Errorf("manifest %s was stored as %s", want, got)
	}
	if _, err := in.g.store.RecordManifest(ctx, store.Manifest{
		Repository: in.repo, Digest: want, MediaType: parsed.MediaType, ArtifactType: parsed.ArtifactType,
		Size: int64(len(raw)), Subject: parsed.Subject, Blobs: parsed.Blobs, Children: parsed.Children,
		Annotations: parsed.Annotations, Actor: in.actor,
	}); err != nil {
		return mb, fmt.Errorf("record manifest %s: %w", want, err)
	}
	in.manifests = append(in.manifests, want)
	return mb, nil
}

// tag points tag at top unless it points to another approved digest.
func (in *ingest) tag(ctx context.Context, tag string, top manifestBlob) (kept bool, err error) {
	cur, err := in.g.resolveTag(ctx, in.repo, tag)
	if err != nil {
		return false, err
	}
	if cur == top.digest {
		return false, nil
	}
	if cur != "" && !in.g.allow.match(in.repo) {
		state, _, err := in.g.store.ManifestServable(ctx, in.repo, cur)
		if err != nil {
			return false, err
		}
		if state == store.Approved {
			return true, nil
		}
	}
	in.g.cache.manifestWritten()
	defer in.g.cache.manifestWritten()
	err = in.rep.Tags(ctx).Tag(ctx, tag, ocispec.Descriptor{Digest: digest.Digest(top.digest), MediaType: top.mediaType, Size: int64(len(top.raw))})
	return false, err
}

type countingReader struct {
	r  io.Reader
	n  int64
	fn func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.fn(c.n)
	return n, err
}
