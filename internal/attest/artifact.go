package attest

import (
	"crypto"
	"encoding/json"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/airlock-dev/airlock/internal/registry"
)

// Media types and annotations of the attestation layout cosign reads.
const (
	MediaTypeDSSE = "application/vnd.dsse.envelope.v1+json"
	// AnnotationSignature is present (empty) on every cosign layer; for
	// attestations the signature lives inside the envelope.
	AnnotationSignature = "dev.cosignproject.cosign/signature"
	// AnnotationPredicateType lets readers pick attestations without opening them.
	AnnotationPredicateType = "predicateType"
)

// AttTag is the tag cosign looks under for the attestations of digest:
// sha256:<hex> → sha256-<hex>.att.
func AttTag(digest string) string { return strings.Replace(digest, ":", "-", 1) + ".att" }

// Layer is one signed attestation in the image cosign reads: a DSSE
// envelope and the predicate type of the statement inside.
type Layer struct {
	Envelope      []byte
	PredicateType string
}

// Manifest builds the image cosign reads as an attestation: one layer, the
// DSSE envelope, with the predicateType annotation, and subject set to the
// attested manifest so the referrers API lists it too.
func Manifest(envelope []byte, predicateType string, subject v1.Descriptor) (v1.Image, error) {
	return ManifestOf([]Layer{{Envelope: envelope, PredicateType: predicateType}}, subject)
}

// ManifestOf builds the attestation image with one layer per envelope, in
// order: cosign keeps every attestation of a digest as a layer of the one
// image under sha256-<hex>.att and picks them by predicateType.
func ManifestOf(layers []Layer, subject v1.Descriptor) (v1.Image, error) {
	if len(layers) == 0 {
		return nil, fmt.Errorf("an attestation image needs at least one envelope")
	}
	var descs []v1.Descriptor
	var diffIDs []v1.Hash
	var blobs []v1.Layer
	for _, l := range layers {
		layer := static.NewLayer(l.Envelope, MediaTypeDSSE)
		ld, err := layer.Digest()
		if err != nil {
			return nil, err
		}
		blobs = append(blobs, layer)
		diffIDs = append(diffIDs, ld)
		descs = append(descs, v1.Descriptor{
			MediaType: MediaTypeDSSE, Size: int64(len(l.Envelope)), Digest: ld,
			Annotations: map[string]string{AnnotationSignature: "", AnnotationPredicateType: l.PredicateType},
		})
	}
	cfg, err := json.Marshal(v1.ConfigFile{RootFS: v1.RootFS{Type: "layers", DiffIDs: diffIDs}})
	if err != nil {
		return nil, err
	}
	return registry.Artifact(registry.ArtifactManifest{
		ArtifactType: MediaTypeDSSE,
		Config:       v1.Descriptor{MediaType: types.OCIConfigJSON},
		Layers:       descs,
		Subject:      &subject,
	}, cfg, blobs...)
}

// SignStatement signs an in-toto statement and returns the envelope as JSON.
func SignStatement(k crypto.Signer, st Statement) ([]byte, error) {
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	env, err := Sign(k, PayloadTypeInToto, payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(env)
}
