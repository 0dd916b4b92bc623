package profile

// Status of the profile stage's evidence.
const (
	StatusProfiled    = "profiled"     // the image ran in the sandbox; Profile is set
	StatusUnavailable = "unavailable"  // no sandbox on this host (not Linux, no privileges)
	StatusNotRunnable = "not-runnable" // nothing to run: no entrypoint or cmd, no image for this host's platform
)

// StageEvidence is what the pipeline's profile stage records for a digest:
// the profile itself (when the image ran), the referrers it attached and
// the diff against the profile of the repository's last approved digest.
// The policy reads it (internal/policy ProfileFacts).
type StageEvidence struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"` // why there is no profile
	// Digest is the image manifest that ran (a child of an index for this
	// host's platform, or the digest itself).
	Digest        string     `json:"digest,omitempty"`
	Platform      string     `json:"platform,omitempty"`
	ProfileDigest string     `json:"profileDigest,omitempty"` // sha256 of the attached document
	Profile       *Profile   `json:"profile,omitempty"`
	Artifacts     []Artifact `json:"artifacts,omitempty"`
	Baseline      *Baseline  `json:"baseline,omitempty"` // nil: no earlier approved digest with a profile
	Critical      []string   `json:"critical"`           // codes of the critical notes
}

// Artifact is a referrer the stage attached.
type Artifact struct {
	Repository   string `json:"repository"`
	Manifest     string `json:"manifest"`
	ArtifactType string `json:"artifactType"`
	Blob         string `json:"blob"`
}

// Baseline is the comparison with the last approved digest of the same repository.
type Baseline struct {
	Digest string `json:"digest"`
	Diff   Diff   `json:"diff"`
}
