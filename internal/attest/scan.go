package attest

import (
	"encoding/json"
	"time"
)

// Predicate types of the scan attestations, as cosign names them for
// `cosign verify-attestation --type cyclonedx|vuln`.
const (
	CycloneDXPredicateType = "https://cyclonedx.org/bom"
	VulnPredicateType      = "https://cosign.sigstore.dev/attestation/vuln/v1"
)

// Vuln is the cosign vulnerability predicate
// (https://github.com/sigstore/cosign/blob/main/specs/COSIGN_VULN_ATTESTATION_SPEC.md):
// which scanner and advisory data produced which result, and when.
type Vuln struct {
	Invocation VulnInvocation `json:"invocation"`
	Scanner    VulnScanner    `json:"scanner"`
	Metadata   VulnMetadata   `json:"metadata"`
}

// VulnInvocation names what ran the scan.
type VulnInvocation struct {
	Parameters json.RawMessage `json:"parameters"`
	URI        string          `json:"uri"`
	EventID    string          `json:"event_id"`
	BuilderID  string          `json:"builder.id"`
}

// VulnScanner names the scanner, its advisory data and the result.
type VulnScanner struct {
	URI     string          `json:"uri"`
	Version string          `json:"version"`
	DB      VulnDB          `json:"db"`
	Result  json.RawMessage `json:"result"`
}

// VulnDB names the advisory data: for Airlock the OSV snapshot digest.
type VulnDB struct {
	URI     string `json:"uri"`
	Version string `json:"version"`
}

// VulnMetadata says when the scan ran.
type VulnMetadata struct {
	ScanStartedOn  time.Time `json:"scanStartedOn"`
	ScanFinishedOn time.Time `json:"scanFinishedOn"`
}

// VulnResult is Airlock's result inside the vuln predicate: every
// vulnerability finding of the image under the named advisory snapshot,
// with waivers that were in force when it was signed.
type VulnResult struct {
	Image           string           `json:"image"`
	Snapshot        string           `json:"snapshot"`
	Reevaluated     bool             `json:"reevaluated"` // matched again after the scan, against newer advisories
	Vulnerabilities []map[string]any `json:"vulnerabilities"`
}
