package vulndb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/airlock-dev/airlock/internal/scan"
	"github.com/airlock-dev/airlock/internal/scan/version"
)

var _ scan.Matcher = (*DB)(nil)

// distroFamilies are the ecosystems of operating system packages: a
// language package whose files such a package owns is judged by the
// distribution's advisories, not by the upstream one.
var distroFamilies = map[string]bool{
	"Debian": true, "Ubuntu": true, "Alpine": true, "Wolfi": true, "Chainguard": true, "MinimOS": true,
	"Red Hat": true, "Rocky Linux": true, "AlmaLinux": true, "openSUSE": true, "SUSE": true,
	"Mageia": true, "Photon OS": true, "Azure Linux": true, "openEuler": true,
}

// sourceFamilies file advisories under the source package name (RPM
// distributions use binary or source names).
var sourceFamilies = map[string]bool{
	"Debian": true, "Ubuntu": true, "Alpine": true, "Wolfi": true, "Chainguard": true, "MinimOS": true,
}

// Match finds the advisories affecting each package. All lookups read one
// consistent snapshot of the database, whose digest every finding carries.
//
// A package is skipped when it has no version or ecosystem, or when it is a
// language package owned by a distro package (OwnedByDistro). A version the
// ecosystem's order cannot read is still matched against advisories' explicit
// version lists; its ranges are skipped and the package is logged.
func (d *DB) Match(ctx context.Context, pkgs []scan.Package) ([]scan.Vulnerability, error) {
	tx, err := d.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	defer tx.Rollback()
	snap, err := readSnapshot(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	d.mu.Lock()
	d.snapshot = snap
	d.mu.Unlock()
	m := &matcher{tx: tx, snapshot: snap, records: map[string]*Record{}}
	var out []scan.Vulnerability
	for _, p := range pkgs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		vs, err := m.matchPackage(ctx, p)
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Package.Name != b.Package.Name {
			return a.Package.Name < b.Package.Name
		}
		if a.Package.Location != b.Package.Location {
			return a.Package.Location < b.Package.Location
		}
		return a.ID < b.ID
	})
	return out, nil
}

type matcher struct {
	tx       *sql.Tx
	snapshot string
	records  map[string]*Record
}

type candidate struct {
	advisory  string
	idx       int
	ecosystem string
	affected  []byte
}

// candidates lists the affected entries filed under a package name, or
// (unless sourceOnly) listing it among the binaries built from them.
func (m *matcher) candidates(ctx context.Context, family, name string, sourceOnly bool) ([]candidate, error) {
	q := `SELECT advisory, idx, ecosystem, affected FROM packages WHERE family = ? AND name = ?`
	args := []any{family, name}
	if !sourceOnly {
		q += ` UNION SELECT p.advisory, p.idx, p.ecosystem, p.affected FROM binaries b
			JOIN packages p ON p.advisory = b.advisory AND p.idx = b.idx WHERE b.family = ? AND b.name = ?`
		args = append(args, family, name)
	}
	rows, err := m.tx.QueryContext(ctx, q+` ORDER BY 1, 2`, args...)
	if err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	defer rows.Close()
	var out []candidate
	for rows.Next() {
		var c candidate
		if err := rows.Scan(&c.advisory, &c.idx, &c.ecosystem, &c.affected); err != nil {
			return nil, fmt.Errorf("match: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// record reads an advisory's header: the record without affected[].
func (m *matcher) record(ctx context.Context, id string) (*Record, error) {
	if r, ok := m.records[id]; ok {
		return r, nil
	}
	var raw []byte
	var withdrawn sql.NullString
	if err := m.tx.QueryRowContext(ctx, `SELECT header, withdrawn FROM advisories WHERE id = ?`, id).Scan(&raw, &withdrawn); err != nil {
		return nil, fmt.Errorf("match: read %s: %w", id, err)
	}
	r := &Record{ID: id, Withdrawn: withdrawn.String}
	if !withdrawn.Valid {
		if err := json.Unmarshal(raw, r); err != nil {
			return nil, fmt.Errorf("match: read %s: %w", id, err)
		}
	}
	m.records[id] = r
	return r, nil
}

func (m *matcher) matchPackage(ctx context.Context, p scan.Package) ([]scan.Vulnerability, error) {
	fam := version.Family(p.Ecosystem)
	if fam == "" || p.Name == "" || p.Version == "" {
		return nil, nil
	}
	if canon, err := canonicalFamily(fam); err == nil {
		fam = canon
	}
	if p.OwnedByDistro && !distroFamilies[fam] {
		return nil, nil
	}
	var cands []candidate
	switch {
	case sourceFamilies[fam] && p.Source != "":
		// Debian, Ubuntu and Alpine file advisories under the source
		// package, whose version the binary package may not share.
		c, err := m.candidates(ctx, fam, p.Source, true)
		if err != nil {
			return nil, err
		}
		cands = c
	default:
		c, err := m.candidates(ctx, fam, normalizeName(fam, p.Name), false)
		if err != nil {
			return nil, err
		}
		cands = c
		// RPM distributions publish under binary or source package names;
		// both share the version-release, so both are looked up.
		if distroFamilies[fam] && !sourceFamilies[fam] && p.Source != "" && p.Source != p.Name {
			c, err := m.candidates(ctx, fam, p.Source, false)
			if err != nil {
				return nil, err
			}
			cands = append(cands, c...)
		}
	}
	if len(cands) == 0 {
		return nil, nil
	}
	eco, ecoErr := version.For(p.Ecosystem)
	var out []scan.Vulnerability
	seen := map[string]int{}
	for _, c := range cands {
		if !sameEcosystem(p.Ecosystem, c.ecosystem) {
			continue
		}
		r, err := m.record(ctx, c.advisory)
		if err != nil {
			return nil, err
		}
		if r.Withdrawn != "" {
			continue
		}
		var a Affected
		if err := json.Unmarshal(c.affected, &a); err != nil {
			return nil, fmt.Errorf("match: read %s: %w", r.ID, err)
		}
		hit, fixed, problems := evaluate(a, p.Version, fam, eco, ecoErr)
		for _, pr := range problems {
			slog.Debug("advisory range not evaluated", "advisory", r.ID, "package", p.Name, "version", p.Version, "reason", pr)
		}
		if !hit {
			continue
		}
		state := distroState(r, a)
		if state == stateNotAffected {
			continue
		}
		if state == "" {
			state = stateAffected
		}
		v := m.finding(r, a, p, fixed, state)
		if i, dup := seen[r.ID]; dup {
			// The same advisory twice for one package (several affected
			// entries): keep one, with the later fix.
			if fixed != "" && out[i].Fixed != "" && eco != nil {
				if c, err := eco.Compare(fixed, out[i].Fixed); err == nil && c > 0 {
					out[i].Fixed = fixed
				}
			}
			continue
		}
		seen[r.ID] = len(out)
		out = append(out, v)
	}
	return out, nil
}

func canonicalFamily(fam string) (string, error) {
	for _, f := range version.Ecosystems() {
		if strings.EqualFold(f, fam) {
			return f, nil
		}
	}
	return "", version.ErrUnsupported
}

// sameEcosystem reports whether an advisory's ecosystem applies to a
// package's: the same family, and releases that agree as far as both go
// ("Ubuntu:22.04" and "Ubuntu:22.04:LTS", "Alpine:3.19" and "Alpine:v3.19",
// "Debian:12.5" and "Debian:12"). "Ubuntu:Pro:18.04:LTS" (ESM) is not
// "Ubuntu:18.04:LTS". A package without a release matches every release.
func sameEcosystem(pkg, adv string) bool {
	pf, pr := splitEcosystem(pkg)
	af, ar := splitEcosystem(adv)
	if !strings.EqualFold(pf, af) {
		return false
	}
	if len(pr) == 0 || len(ar) == 0 {
		return true
	}
	for i := range min(len(pr), len(ar)) {
		if pr[i] != ar[i] {
			return false
		}
	}
	return true
}

func splitEcosystem(eco string) (string, []string) {
	parts := strings.Split(eco, ":")
	fam := strings.TrimSpace(parts[0])
	var rel []string
	for _, p := range parts[1:] {
		p = strings.ToLower(strings.TrimSpace(p))
		switch {
		case strings.EqualFold(fam, "Alpine"):
			p = strings.TrimPrefix(p, "v")
		case strings.EqualFold(fam, "Debian"):
			p, _, _ = strings.Cut(p, ".")
		}
		rel = append(rel, p)
	}
	// Trailing empty parts and the ":LTS" marker carry no release.
	for len(rel) > 0 && (rel[len(rel)-1] == "" || rel[len(rel)-1] == "lts") {
		rel = rel[:len(rel)-1]
	}
	return fam, rel
}

type eventKind int

const (
	evIntroduced eventKind = iota
	evFixed
	evLastAffected
	evLimit
)

type event struct {
	kind eventKind
	ver  string
}

// evaluate decides whether version v is affected by one affected entry:
// listed in its versions, or inside one of its ECOSYSTEM or SEMVER ranges
// (GIT ranges are ignored). It returns the first fixed version when a range
// says so, and why any range could not be evaluated.
func evaluate(a Affected, v, family string, eco version.Comparator, ecoErr error) (bool, string, []string) {
	var problems []string
	listed := false
	for _, lv := range a.Versions {
		if string(lv) == v {
			listed = true
			break
		}
		if eco != nil {
			if c, err := eco.Compare(string(lv), v); err == nil && c == 0 {
				listed = true
				break
			}
		}
	}
	hit, fixed, anyFix, noFix := false, "", "", false
	for _, rg := range a.Ranges {
		var cmp version.Comparator
		switch strings.ToUpper(rg.Type) {
		case "ECOSYSTEM":
			if ecoErr != nil {
				problems = append(problems, ecoErr.Error())
				continue
			}
			cmp = eco
		case "SEMVER":
			if family == "Go" {
				cmp, _ = version.For("Go")
			} else {
				cmp, _ = version.For("npm")
			}
		default:
			continue
		}
		in, fix, next, err := inRange(cmp, rg.Events, v)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if next != "" && anyFix == "" {
			anyFix = next
		}
		if !in {
			continue
		}
		hit = true
		switch {
		case fix == "":
			noFix = true
		case fixed == "":
			fixed = fix
		default:
			if c, err := cmp.Compare(fix, fixed); err == nil && c > 0 {
				fixed = fix
			}
		}
	}
	if noFix {
		fixed = ""
	}
	if !hit && listed {
		return true, anyFix, problems
	}
	return hit, fixed, problems
}

// inRange evaluates one range as the OSV schema specifies: events sorted by
// version, introduced turning "affected" on, fixed (v >= fixed) and
// last_affected (v > last_affected) turning it off, and, when limit events
// exist, only versions below a limit affected. It returns the fixed version
// closing the interval v is in, and the first fixed version above v.
func inRange(cmp version.Comparator, raw []Event, v string) (in bool, fix, next string, err error) {
	if _, err := cmp.Compare(v, v); err != nil {
		return false, "", "", err
	}
	var evs []event
	for _, e := range raw {
		var ev event
		switch {
		case e.Introduced != "":
			ev = event{evIntroduced, string(e.Introduced)}
		case e.Fixed != "":
			ev = event{evFixed, string(e.Fixed)}
		case e.LastAffected != "":
			ev = event{evLastAffected, string(e.LastAffected)}
		case e.Limit != "":
			ev = event{evLimit, string(e.Limit)}
		default:
			continue
		}
		if ev.kind == evIntroduced && ev.ver == "0" || ev.kind == evLimit && ev.ver == "*" {
			evs = append(evs, ev)
			continue
		}
		if _, err := cmp.Compare(ev.ver, ev.ver); err != nil {
			slog.Debug("advisory event skipped", "version", ev.ver, "reason", err)
			continue
		}
		evs = append(evs, ev)
	}
	less := func(a, b event) int {
		za := a.kind == evIntroduced && a.ver == "0"
		zb := b.kind == evIntroduced && b.ver == "0"
		switch {
		case za && zb:
			return 0
		case za:
			return -1
		case zb:
			return 1
		}
		c, _ := cmp.Compare(a.ver, b.ver)
		if c == 0 {
			return int(a.kind) - int(b.kind)
		}
		return c
	}
	sort.SliceStable(evs, func(i, j int) bool { return less(evs[i], evs[j]) < 0 })
	var limits []string
	from := -1
	for i, e := range evs {
		var c int
		if !(e.kind == evIntroduced && e.ver == "0") && !(e.kind == evLimit && e.ver == "*") {
			c, _ = cmp.Compare(v, e.ver)
		}
		switch e.kind {
		case evIntroduced:
			if e.ver == "0" || c >= 0 {
				in, from = true, i
			}
		case evFixed:
			if c >= 0 {
				in = false
			} else if next == "" {
				next = e.ver
			}
		case evLastAffected:
			if c > 0 {
				in = false
			}
		case evLimit:
			if e.ver != "*" {
				limits = append(limits, e.ver)
			}
		}
	}
	if in && len(limits) > 0 {
		below := false
		for _, l := range limits {
			if c, err := cmp.Compare(v, l); err == nil && c < 0 {
				below = true
			}
		}
		in = below
	}
	if in {
		for _, e := range evs[from+1:] {
			if e.kind == evFixed {
				fix = e.ver
				break
			}
			if e.kind == evLastAffected {
				break
			}
		}
	}
	return in, fix, next, nil
}

// Distro states, as Vulnerability.Status reports them.
const (
	stateAffected    = "affected"
	stateWillNotFix  = "will-not-fix"
	stateFixDeferred = "fix-deferred"
	stateNotAffected = "not-affected"
)

// distroState reads a distribution's own verdict on an affected package,
// where its records carry one: a status in ecosystem_specific or
// database_specific (affected entry or record), or Debian's urgency
// "end-of-life". It returns "" when the record says nothing.
func distroState(r *Record, a Affected) string {
	for _, raw := range []json.RawMessage{a.EcosystemSpecific, a.DatabaseSpecific, r.DatabaseSpecific} {
		if len(raw) == 0 {
			continue
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(raw, &fields) != nil {
			continue
		}
		for _, key := range []string{"status", "state", "fix_status", "fixStatus", "fix_state", "resolution"} {
			var s string
			if json.Unmarshal(fields[key], &s) != nil || s == "" {
				continue
			}
			if st := normalizeState(s); st != "" {
				return st
			}
		}
		var urgency string
		if json.Unmarshal(fields["urgency"], &urgency) == nil && strings.EqualFold(urgency, "end-of-life") {
			return stateWillNotFix
		}
	}
	return ""
}

func normalizeState(s string) string {
	k := strings.Map(func(r rune) rune {
		switch r {
		case '-', '_', ' ', '\'':
			return -1
		}
		return r
	}, strings.ToLower(s))
	switch k {
	case "notaffected", "notvulnerable", "unaffected", "notapplicable":
		return stateNotAffected
	case "willnotfix", "wontfix", "wontfixed", "ignored", "outofsupportscope", "endoflife":
		return stateWillNotFix
	case "deferred", "fixdeferred", "postponed":
		return stateFixDeferred
	case "affected", "vulnerable", "needed", "needstriage", "pending", "released", "fixed", "active":
		return stateAffected
	}
	return ""
}

func (m *matcher) finding(r *Record, a Affected, p scan.Package, fixed, state string) scan.Vulnerability {
	v := scan.Vulnerability{
		ID:        r.ID,
		Aliases:   aliases(r),
		Summary:   summary(r),
		Package:   p,
		Installed: p.Version,
		Fixed:     fixed,
		Status:    state,
		Snapshot:  m.snapshot,
	}
	best, vector := bestCVSS(r, a)
	if best != nil {
		v.CVSSScore, v.CVSSVector = best.Score, best.Vector
		v.Severity = best.Severity()
	} else if vector != "" {
		v.CVSSVector = vector
	}
	v.VendorSeverity = vendorSeverity(r, a)
	if v.Severity == "" {
		v.Severity = scan.SeverityUnknown
		switch v.VendorSeverity {
		case scan.SeverityCritical, scan.SeverityHigh, scan.SeverityMedium, scan.SeverityLow:
			v.Severity = v.VendorSeverity
		}
	}
	return v
}

// aliases are the record's aliases and upstream ids, and the related id a
// distro record is named after (UBUNTU-CVE-2024-6387 → CVE-2024-6387), so
// that a VEX statement about the CVE finds it.
func aliases(r *Record) []string {
	set := map[string]bool{}
	for _, a := range append(append([]string{}, r.Aliases...), r.Upstream...) {
		if a != "" && a != r.ID {
			set[a] = true
		}
	}
	for _, rel := range r.Related {
		if rel != "" && strings.HasSuffix(r.ID, "-"+rel) {
			set[rel] = true
		}
	}
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

func summary(r *Record) string {
	s := r.Summary
	if s == "" {
		s, _, _ = strings.Cut(strings.TrimSpace(r.Details), "\n")
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// bestCVSS scores every CVSS vector the record gives for this package (the
// affected entry's, the record's, and those of each CVE an Ubuntu notice
// fixes) and returns the highest score of the preferred version: v3.x, else
// v4.0, else v2 (v3 first because that is the scale most advisories and
// policies are written against; a record with only a v4.0 vector is rated
// by it). When only vectors Airlock does not score are present, it returns
// nil and the first of them.
func bestCVSS(r *Record, a Affected) (*CVSS, string) {
	sevs := append(append([]Severity{}, a.Severity...), r.Severity...)
	sevs = append(sevs, cvesMapSeverities(a)...)
	var best *CVSS
	unscored := ""
	rank := func(c *CVSS) int {
		switch c.Version {
		case "2.0":
			return 0
		case "4.0":
			return 1
		}
		return 2
	}
	for _, s := range sevs {
		if !strings.HasPrefix(s.Type, "CVSS_") {
			continue
		}
		c, err := ParseCVSS(s.Type, s.Score)
		if err != nil {
			if unscored == "" && errors.Is(err, ErrUnscored) {
				unscored = s.Score
			}
			continue
		}
		if best == nil || rank(&c) > rank(best) || rank(&c) == rank(best) && c.Score > best.Score {
			cc := c
			best = &cc
		}
	}
	return best, unscored
}

// cvesMapSeverities reads Ubuntu notices' database_specific.cves_map.
func cvesMapSeverities(a Affected) []Severity {
	if len(a.DatabaseSpecific) == 0 {
		return nil
	}
	var ds struct {
		CVEsMap struct {
			CVEs []struct {
				Severity []Severity `json:"severity"`
			} `json:"cves"`
		} `json:"cves_map"`
	}
	if json.Unmarshal(a.DatabaseSpecific, &ds) != nil {
		return nil
	}
	var out []Severity
	for _, c := range ds.CVEsMap.CVEs {
		out = append(out, c.Severity...)
	}
	return out
}

// vendorSeverity is the severity the publisher assigned, on Airlock's scale
// where the word maps onto it (Ubuntu priority, Debian urgency, GitHub's
// database_specific.severity, an "Ubuntu" severity entry), else the word.
func vendorSeverity(r *Record, a Affected) string {
	var words []string
	for _, raw := range []json.RawMessage{a.EcosystemSpecific, a.DatabaseSpecific, r.DatabaseSpecific} {
		var fields map[string]json.RawMessage
		if len(raw) == 0 || json.Unmarshal(raw, &fields) != nil {
			continue
		}
		for _, key := range []string{"severity", "ubuntu_priority", "urgency", "priority"} {
			var s string
			if json.Unmarshal(fields[key], &s) == nil && s != "" {
				words = append(words, s)
			}
		}
	}
	for _, s := range append(append(append([]Severity{}, a.Severity...), r.Severity...), cvesMapSeverities(a)...) {
		if !strings.HasPrefix(s.Type, "CVSS_") && s.Score != "" {
			words = append(words, s.Score)
		}
	}
	best, bestRank := "", -1
	for _, w := range words {
		n, rank := normalizeVendor(w)
		if n == "" {
			continue
		}
		if rank > bestRank {
			best, bestRank = n, rank
		}
	}
	return best
}

func normalizeVendor(w string) (string, int) {
	switch strings.ToLower(strings.TrimSpace(w)) {
	case "critical":
		return scan.SeverityCritical, 4
	case "high", "important":
		return scan.SeverityHigh, 3
	case "medium", "moderate":
		return scan.SeverityMedium, 2
	case "low", "negligible", "unimportant", "minor":
		return scan.SeverityLow, 1
	case "", "not yet assigned", "unknown", "none", "end-of-life", "untriaged":
		return "", -1
	}
	return strings.ToUpper(w), 0
}
