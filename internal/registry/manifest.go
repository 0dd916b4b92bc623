package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/airlock-dev/airlock/internal/store"
)

// Manifest media types the registry accepts.
const (
	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// ParsedManifest is what the gate needs to know of a manifest body.
type ParsedManifest struct {
	MediaType    string
	ArtifactType string
	Subject      string
	Blobs        []string
	Children     []store.Child
	Annotations  map[string]string
	URLs         []string // external URLs of non-distributable layers
}

// IsIndex reports whether the manifest lists other manifests.
func (p ParsedManifest) IsIndex() bool {
	return p.MediaType == MediaTypeOCIIndex || p.MediaType == MediaTypeDockerList
}

// ManifestError is a manifest that is not acceptable; Code is the OCI error code.
type ManifestError struct {
	Code    string
	Message string
}

func (e *ManifestError) Error() string { return e.Message }

func invalid(format string, args ...any) error {
	return &ManifestError{Code: "MANIFEST_INVALID", Message: fmt.Sprintf(format, args...)}
}

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Platform     *store.Platform   `json:"platform,omitempty"`
	URLs         []string          `json:"urls,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type rawManifest struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptor       `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Manifests     []descriptor      `json:"manifests"`
	Subject       *descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

var (
	digestRE = regexp.MustCompile(`^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
)

// validMediaType follows RFC 6838's restricted-name grammar loosely, enough
// to refuse control characters and garbage that would end up in headers:
// type "/" subtype, each 1–127 characters, starting with a letter or digit,
// then letters, digits and !#$&^_.+-. (Checked by hand: the equivalent
// regular expression with its {0,126} repetitions compiles to a large
// program at every start of the binary.)
func validMediaType(s string) bool {
	typ, sub, ok := strings.Cut(s, "/")
	return ok && restrictedName(typ) && restrictedName(sub)
}

func restrictedName(s string) bool {
	if len(s) == 0 || len(s) > 127 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && strings.IndexByte("!#$&^_.+-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ValidDigest reports whether d is a digest with an algorithm the registry supports.
func ValidDigest(d string) bool { return digestRE.MatchString(d) }

// ParseManifest validates a manifest body sent with Content-Type contentType.
// It refuses anything that is not a well-formed image manifest or index: the
// registry stores nothing it could not later explain to the gate.
func ParseManifest(contentType string, body []byte) (ParsedManifest, error) {
	var p ParsedManifest
	if len(bytes.TrimSpace(body)) == 0 {
		return p, invalid("manifest body is empty")
	}
	var m rawManifest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&m); err != nil {
		return p, invalid("manifest is not valid JSON: %v", err)
	}
	if dec.More() {
		return p, invalid("manifest has trailing data after the JSON document")
	}
	if m.SchemaVersion == nil || *m.SchemaVersion != 2 {
		return p, invalid("manifest schemaVersion must be 2")
	}
	mt := m.MediaType
	if mt == "" {
		mt = contentType
	}
	if contentType != "" && m.MediaType != "" && contentType != m.MediaType {
		return p, invalid("Content-Type %q does not match the manifest's mediaType %q", contentType, m.MediaType)
	}
	if mt == "" {
		// An OCI manifest may omit mediaType; infer it from its shape.
		switch {
		case m.Config != nil:
			mt = MediaTypeOCIManifest
		case m.Manifests != nil:
			mt = MediaTypeOCIIndex
		}
	}
	p.MediaType = mt
	p.ArtifactType = m.ArtifactType
	p.Annotations = m.Annotations
	if m.ArtifactType != "" && !validMediaType(m.ArtifactType) {
		return p, invalid("artifactType %q is not a media type", m.ArtifactType)
	}
	switch mt {
	case MediaTypeOCIManifest, MediaTypeDockerManifest:
		if m.Manifests != nil {
			return p, invalid("an image manifest must not have a manifests list")
		}
		if m.Config == nil {
			return p, invalid("image manifest has no config descriptor")
		}
		if err := checkDescriptor("config", *m.Config); err != nil {
			return p, err
		}
		p.Blobs = append(p.Blobs, m.Config.Digest)
		for i, l := range m.Layers {
			if err := checkDescriptor(fmt.Sprintf("layers[%d]", i), l); err != nil {
				return p, err
			}
			p.Blobs = append(p.Blobs, l.Digest)
			p.URLs = append(p.URLs, l.URLs...)
		}
		if p.ArtifactType == "" {
			p.ArtifactType = m.Config.MediaType
		}
	case MediaTypeOCIIndex, MediaTypeDockerList:
		if m.Config != nil || m.Layers != nil {
			return p, invalid("an image index must not have config or layers")
		}
		for i, c := range m.Manifests {
			if err := checkDescriptor(fmt.Sprintf("manifests[%d]", i), c); err != nil {
				return p, err
			}
			p.Children = append(p.Children, store.Child{Digest: c.Digest, MediaType: c.MediaType, Platform: c.Platform})
		}
	default:
		return p, &ManifestError{Code: "MANIFEST_INVALID", Message: fmt.Sprintf("unsupported manifest media type %q", mt)}
	}
	if m.Subject != nil {
		if err := checkDescriptor("subject", *m.Subject); err != nil {
			return p, err
		}
		p.Subject = m.Subject.Digest
	}
	return p, nil
}

func checkDescriptor(where string, d descriptor) error {
	if !ValidDigest(d.Digest) {
		return &ManifestError{Code: "DIGEST_INVALID", Message: fmt.Sprintf("%s: digest %q is not a sha256 or sha512 digest", where, d.Digest)}
	}
	if d.Size < 0 {
		return invalid("%s: negative size %d", where, d.Size)
	}
	if !validMediaType(d.MediaType) {
		return invalid("%s: mediaType %q is not a media type", where, d.MediaType)
	}
	return nil
}
