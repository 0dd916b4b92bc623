package server

import (
	"context"
	"fmt"

	"github.com/airlock-dev/airlock/internal/store"
)

// SyncAttestations gives every repository that holds an approved digest the
// attestations signed for it: a repository that received the digest after
// it was approved (a push or import of the same digest elsewhere) gets a
// copy of the newest unrevoked attestation of the digest and of each child,
// under the same .att tag and as a referrer, so cosign and airlock verify
// work there too.
func (d *Decider) SyncAttestations(ctx context.Context) error {
	if d.Registry == nil {
		return nil
	}
	imgs, err := d.Store.Images(ctx, store.ImageFilter{State: store.Approved})
	if err != nil {
		return err
	}
	for _, img := range imgs {
		if img.Subject != "" {
			continue
		}
		targets := []string{img.Digest}
		for _, c := range img.Children {
			targets = append(targets, c.Digest)
		}
		for _, t := range targets {
			if err := d.syncAttestation(ctx, img, t); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *Decider) syncAttestation(ctx context.Context, img store.Image, target string) error {
	atts, err := d.Store.Attestations(ctx, target)
	if err != nil {
		return err
	}
	var newest *store.Attestation
	held := map[string]bool{}
	for i, a := range atts {
		if a.RevokedAt != nil {
			continue
		}
		if newest == nil {
			newest = &atts[i]
		}
		if a.Manifest == atts[0].Manifest {
			held[a.Repository] = true
		}
	}
	if newest == nil {
		return nil // approved without an attestation of ours (allow-unvetted, or a pushed artifact)
	}
	for _, repo := range img.Repositories {
		if held[repo] {
			continue
		}
		art, err := d.Registry.Image(ctx, newest.Repository, newest.Manifest)
		if err != nil {
			return fmt.Errorf("read attestation %s of %s in %s: %w", newest.Manifest, target, newest.Repository, err)
		}
		md, err := d.Registry.PutOwnArtifact(ctx, repo, newest.Tag, art, "attestation of "+target+" copied to a repository that received it after approval")
		if err != nil {
			return fmt.Errorf("copy attestation of %s to %s: %w", target, repo, err)
		}
		a := *newest
		a.Repository, a.Manifest, a.CreatedAt = repo, md, d.now()
		if err := d.Store.RecordAttestation(ctx, a); err != nil {
			return err
		}
		d.Log.Info("attestation copied to a new repository", "digest", target, "repository", repo)
	}
	return nil
}
