package server

import (
	"context"
	"fmt"
	"io"

	"github.com/airlock-dev/airlock/internal/attest"
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

// Reattest signs the SBOM and vulnerability attestations of an approved
// digest again, as of now (after a re-evaluation changed its findings), and
// stores them beside its approval — the approval envelope itself is kept
// byte for byte — under the same .att tag in every repository holding an
// unrevoked attestation of it. The previous attestation image stays
// reachable by digest and as a referrer.
func (d *Decider) Reattest(ctx context.Context, img store.Image) error {
	if d.Registry == nil || img.State != store.Approved || len(img.Repositories) == 0 {
		return nil
	}
	_, ev, err := d.Verdict(ctx, img.Digest)
	if err != nil {
		return err
	}
	scanned, err := d.scanAttestations(ctx, img, ev)
	if err != nil {
		return err
	}
	targets := []string{img.Digest}
	for _, c := range img.Children {
		targets = append(targets, c.Digest)
	}
	for _, t := range targets {
		if len(scanned[t]) == 0 {
			continue
		}
		atts, err := d.Store.Attestations(ctx, t)
		if err != nil {
			return err
		}
		done := map[string]bool{}
		for _, a := range atts { // newest first: the one in force per repository
			if a.RevokedAt != nil || done[a.Repository] {
				continue
			}
			done[a.Repository] = true
			if err := d.reattestOne(ctx, a, scanned[t]); err != nil {
				return fmt.Errorf("attestation of %s in %s: %w", t, a.Repository, err)
			}
		}
	}
	return nil
}

func (d *Decider) reattestOne(ctx context.Context, a store.Attestation, scanned []attest.Layer) error {
	old, err := d.Registry.Image(ctx, a.Repository, a.Manifest)
	if err != nil {
		return err
	}
	m, err := old.Manifest()
	if err != nil {
		return err
	}
	if m.Subject == nil {
		return fmt.Errorf("attestation %s has no subject", a.Manifest)
	}
	var approval []byte
	for _, l := range m.Layers {
		if l.Annotations[attest.AnnotationPredicateType] != attest.ApprovalPredicateType {
			continue
		}
		if l.Size > 4<<20 {
			return fmt.Errorf("approval layer %s is %d bytes", l.Digest, l.Size)
		}
		layer, err := old.LayerByDigest(l.Digest)
		if err != nil {
			return err
		}
		rc, err := layer.Compressed()
		if err != nil {
			return err
		}
		approval, err = io.ReadAll(io.LimitReader(rc, 4<<20))
		rc.Close()
		if err != nil {
			return err
		}
		break
	}
	if approval == nil {
		return fmt.Errorf("attestation %s holds no approval", a.Manifest)
	}
	layers := append([]attest.Layer{{Envelope: approval, PredicateType: attest.ApprovalPredicateType}}, scanned...)
	img, err := attest.ManifestOf(layers, *m.Subject)
	if err != nil {
		return err
	}
	md, err := d.Registry.PutOwnArtifact(ctx, a.Repository, a.Tag, img, "scan attestations of "+a.Digest+" signed again after re-evaluation")
	if err != nil {
		return err
	}
	if md == a.Manifest {
		return nil
	}
	n := a
	n.Manifest, n.CreatedAt = md, d.now()
	return d.Store.RecordAttestation(ctx, n)
}
