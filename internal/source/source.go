// Package source reads images from anywhere — a remote registry, an OCI
// layout, a `docker save` archive or an OCI archive — and returns them as
// go-containerregistry values, so every later stage consumes one interface
// whatever the origin. Archives are hostile input: they are checked before use.
package source

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Transports.
const (
	Registry      = "registry"
	OCILayout     = "oci-layout"
	DockerArchive = "docker-archive"
	OCIArchive    = "oci-archive"
)

// Source is a parsed SOURCE argument.
type Source struct {
	Given      string // exactly as given
	Transport  string
	Normalized string // registry: docker.io/library/nginx:latest; files: transport:path[:tag]
	Registry   string // upstream host (registry transport)
	Repository string // upstream repository path (registry transport)
	Path       string // file or directory (file transports)
	Tag        string // tag inside a layout or archive, or of the registry reference
	Digest     string // digest of a registry reference by digest

	ref name.Reference
}

// Reference returns the parsed registry reference (registry transport only).
func (s Source) Reference() name.Reference { return s.ref }

// Parse parses SOURCE. insecure allows plain HTTP for registry references.
func Parse(given string, insecure bool) (Source, error) {
	s := Source{Given: given}
	if given == "" {
		return s, errors.New("empty source: give a reference like docker.io/library/nginx:1.27 or oci-layout:DIR")
	}
	for _, t := range []string{OCILayout, DockerArchive, OCIArchive} {
		if rest, ok := strings.CutPrefix(given, t+":"); ok {
			s.Transport = t
			s.Path, s.Tag = splitPathTag(rest)
			if s.Path == "" {
				return s, fmt.Errorf("%s: no path given", given)
			}
			s.Normalized = t + ":" + s.Path
			if s.Tag != "" {
				s.Normalized += ":" + s.Tag
			}
			return s, nil
		}
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(given, opts...)
	if err != nil {
		return s, fmt.Errorf("%q is not an image reference: %w", given, err)
	}
	s.Transport = Registry
	s.ref = ref
	s.Registry = ref.Context().RegistryStr()
	if s.Registry == name.DefaultRegistry {
		s.Registry = "docker.io"
	}
	s.Repository = ref.Context().RepositoryStr()
	s.Normalized = s.Registry + "/" + s.Repository
	switch r := ref.(type) {
	case name.Tag:
		s.Tag = r.TagStr()
		s.Normalized += ":" + s.Tag
	case name.Digest:
		s.Digest = r.DigestStr()
		s.Normalized += "@" + s.Digest
	}
	return s, nil
}

// splitPathTag splits PATH[:TAG]. The shortest prefix before a ':' that
// exists on disk is the path (so names with colons work on both sides);
// otherwise a final ":x" is a tag when x has no '/'.
func splitPathTag(s string) (string, string) {
	if _, err := os.Stat(s); err == nil {
		return s, ""
	}
	for i := strings.Index(s, ":"); i > 0; {
		if _, err := os.Stat(s[:i]); err == nil {
			return s[:i], s[i+1:]
		}
		j := strings.Index(s[i+1:], ":")
		if j < 0 {
			break
		}
		i += j + 1
	}
	i := strings.LastIndex(s, ":")
	if i <= 0 || strings.Contains(s[i+1:], "/") {
		return s, ""
	}
	return s[:i], s[i+1:]
}

// Options for opening a source.
type Options struct {
	Keychain  authn.Keychain      // registry credentials; default: docker config + credential helpers
	Auth      authn.Authenticator // explicit credentials, used instead of Keychain when set
	Transport http.RoundTripper
	Platform  *v1.Platform // narrow an index to one platform
	// MaxArchive bounds the bytes of an archive and its members.
	MaxArchive int64
	// TempDir is where an OCI archive is unpacked (inside the data dir).
	TempDir string
}

// Artifact is what a source resolved to: an index or an image, with its digest.
type Artifact struct {
	Index      v1.ImageIndex // set for an index
	Image      v1.Image      // set for an image
	Digest     v1.Hash
	MediaType  types.MediaType
	ResolvedAt time.Time
	Narrowed   string // platform the index was narrowed to, if any
	cleanup    func()
}

// Close releases temporary files an archive needed.
func (a *Artifact) Close() {
	if a.cleanup != nil {
		a.cleanup()
	}
}

// Open resolves the source to an artifact.
func (s Source) Open(ctx context.Context, o Options) (*Artifact, error) {
	switch s.Transport {
	case Registry:
		return s.openRemote(ctx, o)
	case OCILayout:
		return openLayout(s.Path, s.Tag, o.Platform, nil)
	case DockerArchive:
		return openDockerArchive(s.Path, s.Tag, o)
	case OCIArchive:
		return openOCIArchive(s.Path, s.Tag, o)
	}
	return nil, fmt.Errorf("unknown transport %q", s.Transport)
}

// RemoteOptions are the go-containerregistry options for this source's registry.
func RemoteOptions(ctx context.Context, o Options) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx), remote.WithUserAgent("airlock")}
	if o.Auth != nil {
		opts = append(opts, remote.WithAuth(o.Auth))
	} else {
		kc := o.Keychain
		if kc == nil {
			kc = authn.DefaultKeychain
		}
		opts = append(opts, remote.WithAuthFromKeychain(kc))
	}
	base := o.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	return append(opts, remote.WithTransport(&retryAfterRecorder{base: base}))
}

// retryAfterRecorder remembers the last Retry-After an upstream sent, which
// go-containerregistry's errors do not carry, so a rate-limited import is
// retried when the upstream asked rather than at a guess.
type retryAfterRecorder struct {
	base http.RoundTripper
}

// lastRetryAfter is per process: the job runner retries through the store.
var lastRetryAfter sync.Map // host → time.Duration

func (t *retryAfterRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		// Only the latest 429 speaks: one without a delay must not report
		// the delay an earlier one asked for.
		if d := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); d > 0 {
			lastRetryAfter.Store(r.URL.Host, d)
		} else {
			lastRetryAfter.Delete(r.URL.Host)
		}
	}
	return resp, err
}

// parseRetryAfter reads delay-seconds or an HTTP date, capped at an hour.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	return min(d, time.Hour)
}

func (s Source) openRemote(ctx context.Context, o Options) (*Artifact, error) {
	desc, err := remote.Get(s.ref, RemoteOptions(ctx, o)...)
	if err != nil {
		return nil, UpstreamError(s.Given, err)
	}
	a := &Artifact{Digest: desc.Digest, MediaType: desc.MediaType, ResolvedAt: time.Now().UTC()}
	if s.Digest != "" && desc.Digest.String() != s.Digest {
		return nil, fmt.Errorf("%s: upstream answered %s for %s; refusing content whose digest changed in transit", s.Given, desc.Digest, s.Digest)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, UpstreamError(s.Given, err)
		}
		if o.Platform != nil {
			return narrow(a, idx, *o.Platform)
		}
		a.Index = idx
		return a, nil
	}
	img, err := desc.Image()
	if err != nil {
		return nil, UpstreamError(s.Given, err)
	}
	if err := checkPlatform(img, o.Platform, s.Given); err != nil {
		return nil, err
	}
	a.Image = img
	return a, nil
}

// checkPlatform refuses a single-platform image that is not the platform
// asked for: narrowing must never quietly bring in another architecture.
func checkPlatform(img v1.Image, want *v1.Platform, given string) error {
	if want == nil {
		return nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("%s: config: %w", given, err)
	}
	got := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	if !got.Satisfies(*want) {
		return fmt.Errorf("%s is a single %s image, not %s", given, got.String(), want.String())
	}
	return nil
}

// narrow picks one platform of an index.
func narrow(a *Artifact, idx v1.ImageIndex, p v1.Platform) (*Artifact, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var avail []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			continue
		}
		avail = append(avail, m.Platform.String())
		if m.Platform.Satisfies(p) && m.MediaType.IsImage() {
			img, err := idx.Image(m.Digest)
			if err != nil {
				return nil, err
			}
			return &Artifact{Image: img, Digest: m.Digest, MediaType: m.MediaType, ResolvedAt: a.ResolvedAt, Narrowed: p.String(), cleanup: a.cleanup}, nil
		}
	}
	return nil, fmt.Errorf("no image for platform %s in index %s (it has: %s)", p.String(), a.Digest, strings.Join(avail, ", "))
}

// UpstreamError turns a registry error into one sentence a user can act on.
func UpstreamError(ref string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%s: upstream refused access (%d): log in with docker login or give credentials", ref, te.StatusCode)
		case http.StatusNotFound:
			return fmt.Errorf("%s: not found upstream (404): check the repository and tag", ref)
		case http.StatusTooManyRequests:
			rl := &RateLimitError{Ref: ref, Err: te}
			if te.Request != nil {
				if d, ok := lastRetryAfter.Load(te.Request.URL.Host); ok {
					rl.RetryAfter = d.(time.Duration)
				}
			}
			return rl
		}
		return fmt.Errorf("%s: upstream error %d: %v", ref, te.StatusCode, te)
	}
	return fmt.Errorf("%s: %w", ref, err)
}

// RateLimitError is an upstream 429.
type RateLimitError struct {
	Ref        string
	Err        *transport.Error
	RetryAfter time.Duration // what the upstream's Retry-After asked for, if anything
}

func (e *RateLimitError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%s: upstream rate limit (429); it asks to retry after %s", e.Ref, e.RetryAfter)
	}
	return fmt.Sprintf("%s: upstream rate limit (429); try again later", e.Ref)
}

func openLayout(dir, tag string, platform *v1.Platform, cleanup func()) (*Artifact, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%s is not an OCI layout: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%s: index.json: %w", dir, err)
	}
	var pick *v1.Descriptor
	var names []string
	// An exact name wins; otherwise a tag may match the end of a full
	// reference, and must then match only one image.
	var exact, suffix []int
	for i, m := range im.Manifests {
		n := m.Annotations["org.opencontainers.image.ref.name"]
		if n != "" {
			names = append(names, n)
		}
		switch {
		case tag == "":
		case n == tag:
			exact = append(exact, i)
		case strings.HasSuffix(n, ":"+tag):
			suffix = append(suffix, i)
		}
	}
	matches := exact
	if len(matches) == 0 {
		matches = suffix
	}
	for _, i := range matches {
		if pick != nil && im.Manifests[i].Digest != pick.Digest {
			var candidates []string
			for _, j := range matches {
				candidates = append(candidates, im.Manifests[j].Annotations["org.opencontainers.image.ref.name"])
			}
			return nil, fmt.Errorf("%s has %d images named %q; give the full name (one of: %s)", dir, len(matches), tag, strings.Join(candidates, ", "))
		}
		pick = &im.Manifests[i]
	}
	switch {
	case tag != "" && pick == nil:
		return nil, fmt.Errorf("%s has no image named %q (it has: %s)", dir, tag, strings.Join(names, ", "))
	case tag == "" && len(im.Manifests) == 0:
		return nil, fmt.Errorf("%s holds no images", dir)
	case tag == "" && len(im.Manifests) == 1:
		pick = &im.Manifests[0]
	case tag == "":
		return nil, fmt.Errorf("%s holds %d images; name one with :TAG (it has: %s)", dir, len(im.Manifests), strings.Join(names, ", "))
	}
	a := &Artifact{Digest: pick.Digest, MediaType: pick.MediaType, ResolvedAt: time.Now().UTC(), cleanup: cleanup}
	if pick.MediaType.IsIndex() {
		child, err := idx.ImageIndex(pick.Digest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		if platform != nil {
			return narrow(a, child, *platform)
		}
		a.Index = child
		return a, nil
	}
	img, err := idx.Image(pick.Digest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if err := checkPlatform(img, platform, dir); err != nil {
		return nil, err
	}
	a.Image = img
	return a, nil
}

func openDockerArchive(path, tag string, o Options) (*Artifact, error) {
	if err := CheckArchive(path, o.MaxArchive); err != nil {
		return nil, err
	}
	var t *name.Tag
	if tag != "" {
		// docker save names images repo:tag, e.g. docker-archive:app.tar:nginx:1.27.
		nt, err := name.NewTag(tag)
		if err != nil {
			return nil, fmt.Errorf("%q is not an image name in the archive: %w", tag, err)
		}
		t = &nt
	}
	img, err := tarball.ImageFromPath(path, t)
	if err != nil {
		return nil, fmt.Errorf("%s is not a usable docker save archive: %w", path, err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	return &Artifact{Image: img, Digest: d, MediaType: mt, ResolvedAt: time.Now().UTC()}, nil
}

func openOCIArchive(path, tag string, o Options) (*Artifact, error) {
	dir, err := os.MkdirTemp(o.TempDir, "oci-archive-")
	if err != nil {
		return nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	if err := ExtractArchive(path, dir, o.MaxArchive); err != nil {
		cleanup()
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		cleanup()
		return nil, fmt.Errorf("%s is not an OCI archive: it has no index.json", path)
	}
	a, err := openLayout(dir, tag, o.Platform, cleanup)
	if err != nil {
		cleanup()
		return nil, err
	}
	return a, nil
}
