package registry

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/internal/store"
)

// OwnActor is the actor Airlock records for artifacts it makes itself.
const OwnActor = "airlock"

// PutOwnArtifact stores an artifact Airlock made itself (an attestation
// signed on approval) in repo, records it approved by "airlock" so pullers
// and cosign can fetch it, and points tag at it. The tag is Airlock's own
// (sha256-<hex>.att), so it moves even from an approved digest: a re-approval
// replaces the attestation cosign reads; the old one stays, by digest and as
// a referrer.
func (g *Registry) PutOwnArtifact(ctx context.Context, repo, tag string, img v1.Image, why string) (string, error) {
	res, err := g.Ingest(ctx, repo, nil, nil, img, OwnActor, nil)
	if err != nil {
		return "", err
	}
	rec, err := g.store.Image(ctx, res.Digest)
	if err != nil {
		return "", err
	}
	switch rec.State {
	case store.Approved:
	case store.Quarantined:
		if _, err := g.store.Transition(ctx, res.Digest, store.Approved, OwnActor, why, nil); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("artifact %s is %s; it cannot be served", res.Digest, rec.State)
	}
	if tag == "" {
		return res.Digest, nil
	}
	if !ValidTag(tag) {
		return "", fmt.Errorf("invalid tag %q", tag)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return "", err
	}
	rep, err := g.repository(ctx, repo)
	if err != nil {
		return "", err
	}
	if err := rep.Tags(ctx).Tag(ctx, tag, ocispec.Descriptor{Digest: digest.Digest(res.Digest), MediaType: res.MediaType, Size: int64(len(raw))}); err != nil {
		return "", fmt.Errorf("tag %s:%s: %w", repo, tag, err)
	}
	return res.Digest, nil
}

// MatchGlob reports whether repo matches glob as --allow-unvetted reads it
// (`*` within one path component, `**` across components).
func MatchGlob(glob, repo string) bool { return newGlobMatcher([]string{glob}).match(repo) }
