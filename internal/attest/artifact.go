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

// Manifest builds the image cosign reads as an attestation: one layer, the
// DSSE envelope, with the predicateType annotation, and subject set to the
// attested manifest so the referrers API lists it too.
func Manifest(envelope []byte, predicateType string, subject v1.Descriptor) (v1.Image, error) {
	layer := static.NewLayer(envelope, MediaTypeDSSE)
	ld, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(v1.ConfigFile{
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{ld}},
	})
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
		Layers: []v1.Descriptor{{
			MediaType: MediaTypeDSSE, Size: int64(len(envelope)), Digest: ld,
			Annotations: map[string]string{AnnotationSignature: "", AnnotationPredicateType: predicateType},
		}},
		Subject: &v1.Descriptor{MediaType: subject.MediaType, Size: subject.Size, Digest: subject.Digest},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&artifact{manifest: raw, config: cfg, layer: layer, layerDigest: ld})
}

type artifact struct {
	manifest, config []byte
	layer            v1.Layer
	layerDigest      v1.Hash
}

func (a *artifact) RawConfigFile() ([]byte, error)      { return a.config, nil }
func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == a.layerDigest {
		return a.layer, nil
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
