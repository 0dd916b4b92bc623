// Package scan produces the evidence behind every verdict: the inventory of
// an image (SBOM), known vulnerabilities matched offline against imported
// OSV advisories, malicious content, secrets, typosquatted names and
// base-image age. Detectors are plugins behind one interface each,
// registered in one list.
package scan

import "context"

// Package is one inventory entry, with the file that proves it and the layer
// that added it.
type Package struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	Ecosystem string `json:"ecosystem"` // OSV ecosystem: "Debian:12", "Alpine:v3.19", "Ubuntu:22.04", "Go", "PyPI", "npm", "Maven", "crates.io", …
	PURL      string `json:"purl,omitempty"`
	Type      string `json:"type,omitempty"`   // deb, apk, rpm, go-module, python, npm, java-archive, rust-crate, binary
	Source    string `json:"source,omitempty"` // distro source package name (advisories are filed against it)
	Location  string `json:"location"`         // file that proves it, absolute in the image
	Layer     string `json:"layer,omitempty"`  // digest of the layer that added it
	// OwnedByDistro marks a language package whose files a distro package owns:
	// the upstream language advisory is not reported for it (the distro's is).
	OwnedByDistro bool `json:"ownedByDistro,omitempty"`
}

// Severity levels.
const (
	SeverityCritical = "CRITICAL"
	SeverityHigh     = "HIGH"
	SeverityMedium   = "MEDIUM"
	SeverityLow      = "LOW"
	SeverityUnknown  = "UNKNOWN"
)

// Vulnerability is a known vulnerability of one package.
type Vulnerability struct {
	ID             string   `json:"id"`
	Aliases        []string `json:"aliases,omitempty"`
	Summary        string   `json:"summary,omitempty"`
	Package        Package  `json:"package"`
	Installed      string   `json:"installed"`
	Fixed          string   `json:"fixed,omitempty"` // first fixed version, "" if none
	Severity       string   `json:"severity"`
	CVSSScore      float64  `json:"cvssScore,omitempty"`
	CVSSVector     string   `json:"cvssVector,omitempty"`
	VendorSeverity string   `json:"vendorSeverity,omitempty"`
	Status         string   `json:"status,omitempty"`     // affected, will-not-fix, fix-deferred; not-affected is not reported
	Snapshot       string   `json:"snapshot"`             // digest of the advisory DB snapshot used
	Suppressed     string   `json:"suppressed,omitempty"` // why a VEX statement suppressed it
}

// Matcher finds known vulnerabilities of packages in an advisory database.
type Matcher interface {
	Match(ctx context.Context, pkgs []Package) ([]Vulnerability, error)
	// Snapshot is the digest of the advisory data the matcher uses.
	Snapshot() string
}
