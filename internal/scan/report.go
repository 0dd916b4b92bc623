package scan

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// Finding types.
const (
	TypeVulnerability = "vulnerability"
	TypeMalware       = "malware"
	TypeSecret        = "secret"
	TypeName          = "name"
	TypeAge           = "age"
	TypeMisconfig     = "misconfig"
)

// Finding severities in reports are lower case, as the policy reads them.
var severityRank = map[string]int{"critical": 5, "high": 4, "medium": 3, "low": 2, "info": 1, "unknown": 0}

// SeverityRank orders severities (critical highest); unknown names are 0.
func SeverityRank(s string) int { return severityRank[strings.ToLower(s)] }

// ValidSeverity reports whether s names a severity.
func ValidSeverity(s string) bool { _, ok := severityRank[strings.ToLower(s)]; return ok }

// Location is where a finding is: a file and the layer that added it, or a
// part of the image config ("config:Env", "config:History[3]").
type Location struct {
	Path  string `json:"path"`
	Line  int    `json:"line,omitempty"`
	Layer string `json:"layer,omitempty"`
}

// PackageRef names the package a finding is about.
type PackageRef struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	Ecosystem string `json:"ecosystem,omitempty"`
	PURL      string `json:"purl,omitempty"`
}

// Finding is one piece of evidence against an image. The JSON form is the
// documented report schema (docs in README "Scan").
type Finding struct {
	Type     string      `json:"type"`
	Detector string      `json:"detector"`
	Severity string      `json:"severity"`
	ID       string      `json:"id"`
	Title    string      `json:"title"`
	Package  *PackageRef `json:"package,omitempty"`
	Location Location    `json:"location"`
	// Evidence is what matched, redacted for secrets: never the whole secret.
	Evidence string   `json:"evidence,omitempty"`
	Fixed    string   `json:"fixed,omitempty"`
	Aliases  []string `json:"aliases,omitempty"`
	// Suppressed says why a VEX statement suppressed the finding.
	Suppressed string `json:"suppressed,omitempty"`
}

// ImageInfo describes the scanned image.
type ImageInfo struct {
	Reference  string    `json:"reference"`
	Repository string    `json:"repository,omitempty"`
	Digest     string    `json:"digest"`
	Platform   string    `json:"platform,omitempty"`
	Created    time.Time `json:"created,omitempty"`
	OS         OSInfo    `json:"os"`
	Layers     []string  `json:"layers"`
}

// OSInfo is the image's distribution from os-release.
type OSInfo struct {
	ID         string `json:"id,omitempty"`
	VersionID  string `json:"versionId,omitempty"`
	PrettyName string `json:"prettyName,omitempty"`
	EOL        string `json:"eol,omitempty"` // end-of-life date, if known
}

// Summary counts findings.
type Summary struct {
	BySeverity   map[string]int `json:"bySeverity"`
	ByType       map[string]int `json:"byType"`
	Packages     int            `json:"packages"`
	FixAvailable int            `json:"fixAvailable"` // vulnerabilities with a fixed version
	Suppressed   int            `json:"suppressed"`
}

// ScannerInfo records what produced the report.
type ScannerInfo struct {
	Version      string  `json:"version"`
	Inventory    string  `json:"inventory"` // library and version
	Rules        int     `json:"rules"`
	RulesDigest  string  `json:"rulesDigest"`
	AdvisoryDB   string  `json:"advisoryDb,omitempty"` // snapshot digest; "" when none was used
	DurationSecs float64 `json:"durationSeconds"`
}

// Report is the result of scanning one image.
type Report struct {
	SchemaVersion   string          `json:"schemaVersion"`
	Image           ImageInfo       `json:"image"`
	Scanner         ScannerInfo     `json:"scanner"`
	Summary         Summary         `json:"summary"`
	Findings        []Finding       `json:"findings"`
	Packages        []Package       `json:"packages"`
	Vulnerabilities []Vulnerability `json:"vulnerabilities,omitempty"`
	Notes           []string        `json:"notes,omitempty"`
	ScannedAt       time.Time       `json:"scannedAt"`
}

// ReportSchemaVersion is the version of the JSON report schema.
const ReportSchemaVersion = "airlock.dev/scan/v1"

// Finish sorts findings (most severe first) and fills the summary.
func (r *Report) Finish() {
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if ra, rb := SeverityRank(a.Severity), SeverityRank(b.Severity); ra != rb {
			return ra > rb
		}
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Location.Path < b.Location.Path
	})
	s := Summary{BySeverity: map[string]int{}, ByType: map[string]int{}, Packages: len(r.Packages)}
	for _, f := range r.Findings {
		if f.Suppressed != "" {
			s.Suppressed++
			continue
		}
		s.BySeverity[f.Severity]++
		s.ByType[f.Type]++
		if f.Type == TypeVulnerability && f.Fixed != "" {
			s.FixAvailable++
		}
	}
	r.Summary = s
}

// Worst returns the highest severity among unsuppressed findings, "" if none.
func (r *Report) Worst() string {
	best, rank := "", -1
	for _, f := range r.Findings {
		if f.Suppressed != "" {
			continue
		}
		if k := SeverityRank(f.Severity); k > rank {
			best, rank = f.Severity, k
		}
	}
	return best
}

// AtLeast counts unsuppressed findings of severity sev or worse.
func (r *Report) AtLeast(sev string) int {
	min := SeverityRank(sev)
	n := 0
	for _, f := range r.Findings {
		if f.Suppressed == "" && SeverityRank(f.Severity) >= min {
			n++
		}
	}
	return n
}

// VulnerabilityFinding turns a matched vulnerability into a finding.
func VulnerabilityFinding(v Vulnerability) Finding {
	f := Finding{
		Type: TypeVulnerability, Detector: "advisories", Severity: strings.ToLower(v.Severity), ID: v.ID,
		Title:    v.Summary,
		Package:  &PackageRef{Name: v.Package.Name, Version: v.Installed, Ecosystem: v.Package.Ecosystem, PURL: v.Package.PURL},
		Location: Location{Path: v.Package.Location, Layer: v.Package.Layer},
		Fixed:    v.Fixed, Aliases: v.Aliases, Suppressed: v.Suppressed,
	}
	if f.Severity == "" {
		f.Severity = "unknown"
	}
	if f.Title == "" {
		f.Title = v.ID + " in " + v.Package.Name
	}
	if v.Fixed != "" {
		f.Evidence = v.Package.Name + " " + v.Installed + " (fixed in " + v.Fixed + ")"
	} else {
		f.Evidence = v.Package.Name + " " + v.Installed + " (no fix)"
	}
	return f
}

// Redact keeps a secret recognisable without revealing it: a short prefix,
// the length, and nothing else.
func Redact(secret string) string {
	secret = strings.TrimSpace(secret)
	n := len(secret)
	keep := 4
	switch {
	case n <= 8:
		keep = 0
	case n <= 16:
		keep = 2
	}
	if strings.HasPrefix(secret, "-----BEGIN") {
		if i := strings.Index(secret[5:], "-----"); i >= 0 {
			return secret[:i+10] + " … (redacted)"
		}
	}
	return secret[:keep] + strings.Repeat("*", 8) + " (" + strconv.Itoa(n) + " chars, redacted)"
}
