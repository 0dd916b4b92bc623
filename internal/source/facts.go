package source

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// ImageFacts are what an image's config says about it upstream.
type ImageFacts struct {
	Digest   string            `json:"digest"`
	Platform string            `json:"platform,omitempty"`
	Created  *time.Time        `json:"created,omitempty"`
	Author   string            `json:"author,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	History  []HistoryEntry    `json:"history,omitempty"`
	Layers   int               `json:"layers"`
	Size     int64             `json:"size"` // compressed bytes of config and layers
}

// HistoryEntry is one step of the image's build history.
type HistoryEntry struct {
	Created    *time.Time `json:"created,omitempty"`
	CreatedBy  string     `json:"createdBy,omitempty"`
	Comment    string     `json:"comment,omitempty"`
	EmptyLayer bool       `json:"emptyLayer,omitempty"`
}

// Attachment is a signature, attestation or other artifact found upstream
// for a digest. It is recorded as found; verifying it is the decision's job.
type Attachment struct {
	Kind         string `json:"kind"` // cosign-signature, cosign-attestation, cosign-sbom, referrer
	Subject      string `json:"subject"`
	Reference    string `json:"reference,omitempty"`
	Digest       string `json:"digest"`
	ArtifactType string `json:"artifactType,omitempty"`
}

// Facts is the upstream description recorded with an import.
type Facts struct {
	Images      []ImageFacts `json:"images"`
	Attachments []Attachment `json:"attachments,omitempty"`
	Narrowed    string       `json:"narrowedToPlatform,omitempty"`
}

// Describe collects config facts of every image of the artifact.
func Describe(a *Artifact) (Facts, error) {
	f := Facts{Narrowed: a.Narrowed}
	if a.Image != nil {
		im, err := imageFacts(a.Image, "")
		if err != nil {
			return f, err
		}
		f.Images = append(f.Images, im)
		return f, nil
	}
	im, err := a.Index.IndexManifest()
	if err != nil {
		return f, err
	}
	for _, m := range im.Manifests {
		if !m.MediaType.IsImage() {
			continue
		}
		img, err := a.Index.Image(m.Digest)
		if err != nil {
			return f, err
		}
		p := ""
		if m.Platform != nil {
			p = m.Platform.String()
		}
		facts, err := imageFacts(img, p)
		if err != nil {
			return f, err
		}
		f.Images = append(f.Images, facts)
	}
	return f, nil
}

func imageFacts(img v1.Image, platform string) (ImageFacts, error) {
	var f ImageFacts
	d, err := img.Digest()
	if err != nil {
		return f, err
	}
	f.Digest = d.String()
	cf, err := img.ConfigFile()
	if err != nil {
		return f, fmt.Errorf("config of %s: %w", d, err)
	}
	f.Platform = platform
	if f.Platform == "" && cf.OS != "" {
		f.Platform = (&v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}).String()
	}
	if !cf.Created.IsZero() {
		t := cf.Created.UTC()
		f.Created = &t
	}
	f.Author = cf.Author
	f.Labels = cf.Config.Labels
	for _, h := range cf.History {
		e := HistoryEntry{CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if !h.Created.IsZero() {
			t := h.Created.UTC()
			e.Created = &t
		}
		f.History = append(f.History, e)
	}
	m, err := img.Manifest()
	if err != nil {
		return f, err
	}
	f.Layers = len(m.Layers)
	f.Size = m.Config.Size
	for _, l := range m.Layers {
		f.Size += l.Size
	}
	return f, nil
}

// FindAttachments looks upstream for cosign's tag-based signatures,
// attestations and SBOMs (sha256-<hex>.sig/.att/.sbom) and for OCI referrers
// of each digest. Lookup failures are not errors: absence is a finding too.
func FindAttachments(ctx context.Context, s Source, digests []string, o Options) []Attachment {
	if s.Transport != Registry {
		return nil
	}
	repo := s.ref.Context()
	opts := RemoteOptions(ctx, o)
	var out []Attachment
	for _, d := range digests {
		alg, hex, ok := strings.Cut(d, ":")
		if !ok {
			continue
		}
		for _, suffix := range []struct{ ext, kind string }{{"sig", "cosign-signature"}, {"att", "cosign-attestation"}, {"sbom", "cosign-sbom"}} {
			tag := repo.Tag(alg + "-" + hex + "." + suffix.ext)
			desc, err := remote.Head(tag, opts...)
			if err != nil {
				continue
			}
			out = append(out, Attachment{Kind: suffix.kind, Subject: d, Reference: tag.String(), Digest: desc.Digest.String()})
		}
		idx, err := remote.Referrers(repo.Digest(d), opts...)
		if err != nil {
			continue
		}
		im, err := idx.IndexManifest()
		if err != nil {
			continue
		}
		for _, m := range im.Manifests {
			out = append(out, Attachment{Kind: "referrer", Subject: d, Digest: m.Digest.String(), ArtifactType: m.ArtifactType})
		}
	}
	return out
}

// PrivateRepository names the private copy of an upstream repository:
// <upstream-host>/<path>, with a port written host_port (':' is not allowed
// in repository names). mappings rewrite prefixes ("docker.io/library/" →
// "library/") before that default applies.
func PrivateRepository(s Source, mappings map[string]string) string {
	up := s.Registry + "/" + s.Repository
	best := ""
	for from := range mappings {
		if strings.HasPrefix(up, from) && len(from) > len(best) {
			best = from
		}
	}
	if best != "" {
		up = mappings[best] + strings.TrimPrefix(up, best)
	}
	return strings.ToLower(strings.Replace(up, ":", "_", 1))
}
