package attest

import (
	"bytes"
	"crypto"
	"encoding/json"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
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
	a := &artifact{layers: map[v1.Hash]v1.Layer{}}
	var descs []v1.Descriptor
	var diffIDs []v1.Hash
	for _, l := range layers {
		layer := static.NewLayer(l.Envelope, MediaTypeDSSE)
		ld, err := layer.Digest()
		if err != nil {
			return nil, err
		}
		if _, dup := a.layers[ld]; dup {
			return nil, fmt.Errorf("envelope %s is given twice", ld)
		}
		a.layers[ld] = layer
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
	cd, _, err := v1.SHA256(bytes.NewReader(cfg))
	if err != nil {
		return nil, err
	}
	m := struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     types.MediaType   `json:"mediaType"`
		ArtifactType  string            `json:"artifactType"`
		Config        v1.Descriptor     `json:"config"`
		Layers        []v1.Descriptor   `json:"layers"`
		Subject       *v1.Descriptor    `json:"subject"`
		Annotations   map[string]string `json:"annotations,omitempty"`
	}{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  MediaTypeDSSE,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfg)), Digest: cd},
		Layers:        descs,
		Subject:       &v1.Descriptor{MediaType: subject.MediaType, Size: subject.Size, Digest: subject.Digest},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	a.manifest, a.config = raw, cfg
	return partial.CompressedToImage(a)
}

type artifact struct {
	manifest, config []byte
	layers           map[v1.Hash]v1.Layer
}

func (a *artifact) RawConfigFile() ([]byte, error)      { return a.config, nil }
func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := a.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("attestation has no layer %s", h)
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
