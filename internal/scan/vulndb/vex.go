package vulndb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/scan"
)

// VEXDocument is an OpenVEX document (https://github.com/openvex/spec),
// v0.2.0 or the earlier v0.0.1 forms (vulnerability and products as plain
// strings).
type VEXDocument struct {
	Context    string         `json:"@context"`
	ID         string         `json:"@id"`
	Author     string         `json:"author"`
	Timestamp  string         `json:"timestamp"`
	Version    json.Number    `json:"version,omitempty"`
	Statements []VEXStatement `json:"statements"`
}

// VEXStatement says how one vulnerability affects some products.
type VEXStatement struct {
	Vulnerability   VEXVulnerability `json:"vulnerability"`
	Products        []VEXProduct     `json:"products"`
	Status          string           `json:"status"`
	Justification   string           `json:"justification,omitempty"`
	ImpactStatement string           `json:"impact_statement,omitempty"`
	ActionStatement string           `json:"action_statement,omitempty"`
	StatusNotes     string           `json:"status_notes,omitempty"`
	Timestamp       string           `json:"timestamp,omitempty"`
}

// VEXVulnerability names a vulnerability by name, @id and aliases.
type VEXVulnerability struct {
	ID      string   `json:"@id,omitempty"`
	Name    string   `json:"name,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
}

// UnmarshalJSON accepts the object form and v0.0.1's plain string.
func (v *VEXVulnerability) UnmarshalJSON(b []byte) error {
	if s, ok := jsonString(b); ok {
		*v = VEXVulnerability{Name: s}
		return nil
	}
	type plain VEXVulnerability
	return json.Unmarshal(b, (*plain)(v))
}

// VEXProduct identifies a product (an image, a package) and optionally the
// subcomponents of it a statement is about.
type VEXProduct struct {
	ID            string            `json:"@id,omitempty"`
	Identifiers   map[string]string `json:"identifiers,omitempty"`
	Hashes        map[string]string `json:"hashes,omitempty"`
	Subcomponents []VEXProduct      `json:"subcomponents,omitempty"`
}

// UnmarshalJSON accepts the object form and v0.0.1's plain string.
func (p *VEXProduct) UnmarshalJSON(b []byte) error {
	if s, ok := jsonString(b); ok {
		*p = VEXProduct{ID: s}
		return nil
	}
	type plain VEXProduct
	return json.Unmarshal(b, (*plain)(p))
}

func jsonString(b []byte) (string, bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(b, &s) != nil {
		return "", false
	}
	return s, true
}

// VEX statuses.
const (
	VEXNotAffected        = "not_affected"
	VEXAffected           = "affected"
	VEXFixed              = "fixed"
	VEXUnderInvestigation = "under_investigation"
)

// MaxVEXBytes bounds one VEX document.
const MaxVEXBytes = 16 << 20

// ErrBadVEX is wrapped by every error about an unusable VEX document.
var ErrBadVEX = errors.New("bad OpenVEX document")

// ParseOpenVEX reads and checks one OpenVEX document: every statement needs
// a vulnerability, a known status, products, and (for not_affected) a
// justification or impact statement, as the specification requires.
func ParseOpenVEX(data []byte) (*VEXDocument, error) {
	if len(data) > MaxVEXBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadVEX, MaxVEXBytes)
	}
	var doc VEXDocument
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadVEX, err)
	}
	if !strings.Contains(doc.Context, "openvex") {
		return nil, fmt.Errorf("%w: @context %q is not an OpenVEX context", ErrBadVEX, doc.Context)
	}
	for i, s := range doc.Statements {
		switch {
		case s.Vulnerability.Name == "" && s.Vulnerability.ID == "":
			return nil, fmt.Errorf("%w: statement %d names no vulnerability", ErrBadVEX, i)
		case len(s.Products) == 0:
			return nil, fmt.Errorf("%w: statement %d (%s) names no product", ErrBadVEX, i, s.Vulnerability.Name)
		}
		switch s.Status {
		case VEXNotAffected:
			if s.Justification == "" && s.ImpactStatement == "" {
				return nil, fmt.Errorf("%w: statement %d (%s) is not_affected without a justification or impact statement", ErrBadVEX, i, s.Vulnerability.Name)
			}
		case VEXAffected, VEXFixed, VEXUnderInvestigation:
		default:
			return nil, fmt.Errorf("%w: statement %d (%s) has unknown status %q", ErrBadVEX, i, s.Vulnerability.Name, s.Status)
		}
	}
	return &doc, nil
}

type timedStatement struct {
	at time.Time
	s  *VEXStatement
}

// ApplyVEX returns vulns with each finding that an OpenVEX statement covers
// marked: not_affected and fixed set Suppressed to the status and its
// justification; affected and under_investigation keep (or put back) the
// finding. A statement covers a finding when it names the finding's id or
// one of its aliases, and one of its products is the finding's package (by
// purl) or the image (by digest, as "sha256:…", a pkg:oci purl or a
// sha-256 hash) with no subcomponents or with the package among them. When
// several statements cover one finding, the latest (by timestamp) wins.
// Findings are never dropped: the caller decides what suppressed means.
func ApplyVEX(vulns []scan.Vulnerability, imageDigest string, docs ...*VEXDocument) []scan.Vulnerability {
	var stmts []timedStatement
	for _, d := range docs {
		if d == nil {
			continue
		}
		docAt, _ := parseTime(d.Timestamp)
		for i := range d.Statements {
			at := docAt
			if t, err := parseTime(d.Statements[i].Timestamp); err == nil {
				at = t
			}
			stmts = append(stmts, timedStatement{at: at, s: &d.Statements[i]})
		}
	}
	sort.SliceStable(stmts, func(i, j int) bool { return stmts[i].at.Before(stmts[j].at) })
	out := make([]scan.Vulnerability, len(vulns))
	copy(out, vulns)
	for i := range out {
		v := &out[i]
		for _, ts := range stmts {
			s := ts.s
			if !namesVulnerability(s.Vulnerability, v) || !coversPackage(s.Products, v.Package, imageDigest) {
				continue
			}
			switch s.Status {
			case VEXNotAffected:
				why := s.Justification
				if why == "" {
					why = s.ImpactStatement
				}
				v.Suppressed = "vex: not_affected: " + why
			case VEXFixed:
				v.Suppressed = "vex: fixed"
			default:
				v.Suppressed = ""
			}
		}
	}
	return out
}

func namesVulnerability(sv VEXVulnerability, v *scan.Vulnerability) bool {
	ids := append([]string{v.ID}, v.Aliases...)
	for _, n := range append([]string{sv.Name, sv.ID}, sv.Aliases...) {
		if n == "" {
			continue
		}
		for _, id := range ids {
			if strings.EqualFold(n, id) {
				return true
			}
		}
	}
	return false
}

func coversPackage(products []VEXProduct, p scan.Package, image string) bool {
	for _, prod := range products {
		if isImage(prod, image) {
			if len(prod.Subcomponents) == 0 {
				return true
			}
			for _, sub := range prod.Subcomponents {
				if isPackage(sub, p) {
					return true
				}
			}
			continue
		}
		if isPackage(prod, p) {
			return true
		}
	}
	return false
}

func productIDs(prod VEXProduct) []string {
	ids := []string{prod.ID}
	for _, k := range []string{"purl", "cpe23", "cpe22"} {
		if v := prod.Identifiers[k]; v != "" {
			ids = append(ids, v)
		}
	}
	return ids
}

func isImage(prod VEXProduct, digest string) bool {
	if digest == "" {
		return false
	}
	hex := strings.TrimPrefix(digest, "sha256:")
	for k, h := range prod.Hashes {
		if strings.EqualFold(k, "sha-256") && strings.EqualFold(h, hex) {
			return true
		}
	}
	for _, id := range productIDs(prod) {
		if id == "" {
			continue
		}
		if id == digest {
			return true
		}
		if pu, ok := parsePURL(id); ok && pu.typ == "oci" && pu.version == digest {
			return true
		}
		// name@sha256:… image references
		if _, d, ok := strings.Cut(id, "@"); ok && d == digest {
			return true
		}
	}
	return false
}

func isPackage(prod VEXProduct, p scan.Package) bool {
	if p.PURL == "" {
		return false
	}
	want, ok := parsePURL(p.PURL)
	if !ok {
		return false
	}
	for _, id := range productIDs(prod) {
		got, ok := parsePURL(id)
		if !ok {
			continue
		}
		if got.typ == want.typ && strings.EqualFold(got.namespace, want.namespace) && strings.EqualFold(got.name, want.name) &&
			(got.version == "" || got.version == want.version) {
			return true
		}
	}
	return false
}

type purl struct{ typ, namespace, name, version string }

// parsePURL reads the parts of a package URL that identify a package;
// qualifiers and subpath are ignored.
func parsePURL(s string) (purl, bool) {
	rest, ok := strings.CutPrefix(s, "pkg:")
	if !ok {
		return purl{}, false
	}
	rest = strings.TrimLeft(rest, "/")
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest = rest[:i]
	}
	var p purl
	typ, rest, ok := strings.Cut(rest, "/")
	if !ok || typ == "" {
		return purl{}, false
	}
	p.typ = strings.ToLower(typ)
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		p.version, rest = rest[i+1:], rest[:i]
	}
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		p.namespace, p.name = rest[:i], rest[i+1:]
	} else {
		p.name = rest
	}
	dec := func(x string) string {
		if u, err := url.PathUnescape(x); err == nil {
			return u
		}
		return x
	}
	p.namespace, p.name, p.version = dec(p.namespace), dec(p.name), dec(p.version)
	return p, p.name != ""
}
