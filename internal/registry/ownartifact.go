package registry

import (
	"encoding/json"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media type and content of the OCI empty config (image-spec 1.1).
const (
	MediaTypeEmpty = "application/vnd.oci.empty.v1+json"
	emptyJSON      = "{}"
)

// ArtifactManifest is an OCI 1.1 image manifest with artifactType and
// subject: the form of every artifact Airlock attaches to a digest (scan
// reports, SBOMs, profiles, hardening reports, attestations).
type ArtifactManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     types.MediaType   `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        v1.Descriptor     `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Subject       *v1.Descriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Artifact is the image of manifest m with config as its config blob and
// layers as its layers (each must be named in m.Layers). subject is copied
// down to media type, size and digest.
func Artifact(m ArtifactManifest, config []byte, layers ...v1.Layer) (v1.Image, error) {
	m.SchemaVersion, m.MediaType = 2, types.OCIManifestSchema1
	cd, _, err := v1.SHA256(strings.NewReader(string(config)))
	if err != nil {
		return nil, err
	}
	m.Config.Size, m.Config.Digest = int64(len(config)), cd
	if m.Subject != nil {
		m.Subject = &v1.Descriptor{MediaType: m.Subject.MediaType, Size: m.Subject.Size, Digest: m.Subject.Digest}
	}
	a := &ownArtifact{config: config, blobs: map[v1.Hash]v1.Layer{cd: static.NewLayer(config, m.Config.MediaType)}}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		if _, dup := a.blobs[d]; dup {
			return nil, fmt.Errorf("artifact blob %s is given twice", d)
		}
		a.blobs[d] = l
	}
	if a.manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	return partial.CompressedToImage(a)
}

// Referrer builds an OCI 1.1 artifact: one blob of artifactType with
// subject set, so the referrers API lists it under the subject.
func Referrer(blob []byte, artifactType string, subject v1.Descriptor, annotations map[string]string) (v1.Image, error) {
	layer := static.NewLayer(blob, types.MediaType(artifactType))
	ld, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	return Artifact(ArtifactManifest{
		ArtifactType: artifactType,
		Config:       v1.Descriptor{MediaType: MediaTypeEmpty},
		Layers:       []v1.Descriptor{{MediaType: types.MediaType(artifactType), Size: int64(len(blob)), Digest: ld}},
		Subject:      &subject,
		Annotations:  annotations,
	}, []byte(emptyJSON), layer)
}

type ownArtifact struct {
	manifest, config []byte
	blobs            map[v1.Hash]v1.Layer // layers and the config, by digest
}

func (a *ownArtifact) RawConfigFile() ([]byte, error)      { return a.config, nil }
func (a *ownArtifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *ownArtifact) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *ownArtifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := a.blobs[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("artifact has no blob %s", h)
}
