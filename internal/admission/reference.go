package admission

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Image is an image reference as a container runtime reads it: the registry
// host, the repository path inside it, and the tag and digest if given.
type Image struct {
	Given      string // exactly as written in the object
	Host       string // registry host[:port] after normalisation (docker.io for short names)
	Repository string // path inside the registry, e.g. team/app
	Tag        string
	Digest     string // sha256:<hex> when pinned
}

// maxReferenceLength bounds a reference before it is parsed; the longest
// legal one (255-character name, 128-character tag, a sha512 digest) is far
// shorter.
const maxReferenceLength = 1024

// ParseImage parses an image reference the way the kubelet's runtime does
// (distribution's normalisation: "nginx" is docker.io/library/nginx), so the
// host compared with the private registry is the host that would be
// contacted. A reference the runtime could not pull is an error.
func ParseImage(s string) (Image, error) {
	img := Image{Given: s}
	if s == "" {
		return img, fmt.Errorf("the image is empty; write a reference like REGISTRY/REPO:TAG@sha256:DIGEST")
	}
	if len(s) > maxReferenceLength {
		return img, fmt.Errorf("the image reference is %d characters, longer than any valid reference (%d)", len(s), maxReferenceLength)
	}
	if strings.TrimSpace(s) != s {
		return img, fmt.Errorf("%q has leading or trailing white space", s)
	}
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return img, fmt.Errorf("%q is not a valid image reference: %v", s, err)
	}
	img.Host = reference.Domain(named)
	img.Repository = reference.Path(named)
	if t, ok := named.(reference.Tagged); ok {
		img.Tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		dg := d.Digest()
		if dg.Algorithm() != digest.SHA256 {
			return img, fmt.Errorf("%q is pinned with %s; Airlock approves sha256 digests only", s, dg.Algorithm())
		}
		if err := dg.Validate(); err != nil {
			return img, fmt.Errorf("%q has an invalid digest: %v", s, err)
		}
		img.Digest = dg.String()
	}
	return img, nil
}

// Name is HOST/REPOSITORY.
func (i Image) Name() string { return i.Host + "/" + i.Repository }

// Pinned is HOST/REPOSITORY[:TAG]@DIGEST with the given digest.
func (i Image) Pinned(dgst string) string {
	s := i.Name()
	if i.Tag != "" {
		s += ":" + i.Tag
	}
	return s + "@" + dgst
}

// hostSet holds the registry hosts that are the private registry. Matching is
// exact (after lower-casing, since host names are case-insensitive): a
// lookalike such as registry.local.evil.com or registry.local:444 is another
// host.
type hostSet map[string]bool

func newHostSet(hosts []string) (hostSet, error) {
	hs := hostSet{}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if strings.ContainsAny(h, "/@ ") {
			return nil, fmt.Errorf("registry host %q must be HOST or HOST:PORT, without a path, user or scheme", h)
		}
		// The host must be what the runtime would read as a registry host.
		named, err := reference.ParseNormalizedNamed(h + "/x")
		if err != nil || !strings.EqualFold(reference.Domain(named), h) {
			return nil, fmt.Errorf("registry host %q is not a registry host a runtime would contact (use a name with a dot or a port, or localhost)", h)
		}
		hs[strings.ToLower(h)] = true
	}
	if len(hs) == 0 {
		return nil, fmt.Errorf("no private registry host configured; set admission.registryHosts (or registryHost)")
	}
	return hs, nil
}

func (hs hostSet) has(host string) bool { return hs[strings.ToLower(host)] }

func (hs hostSet) first() string {
	best := ""
	for h := range hs {
		if best == "" || h < best {
			best = h
		}
	}
	return best
}
