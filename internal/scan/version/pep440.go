package version

import (
	"regexp"
	"strings"
)

// pep440 orders PyPI versions by PEP 440 (as the packaging library does):
// epoch, release (trailing zeros ignored), then .devN < aN < bN < rcN <
// release < .postN, and a +local label after the public version it extends.
// Strings that are not PEP 440 versions (old releases on PyPI still carry
// them: "0.9-doduo", "2013-01-21T20:33:09+0100") are ordered as
// setuptools' LegacyVersion did, all before every PEP 440 version.
type pep440 struct{}

var pep440Pattern = regexp.MustCompile(`(?i)^v?(?:(\d+)!)?(\d+(?:\.\d+)*)` +
	`(?:[-_.]?(alpha|a|beta|b|preview|pre|c|rc)[-_.]?(\d+)?)?` +
	`(?:(?:-(\d+))|(?:[-_.]?(post|rev|r)[-_.]?(\d+)?))?` +
	`(?:[-_.]?(dev)[-_.]?(\d+)?)?` +
	`(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?$`)

type pep440Version struct {
	epoch   string
	release []string
	preL    string // "a", "b", "rc" or "" for none
	preN    string
	hasPost bool
	postN   string
	hasDev  bool
	devN    string
	local   []string
	legacy  []string // set for a non-PEP 440 version
}

func parsePEP440(s string) (pep440Version, error) {
	if err := checkLen("PyPI", s); err != nil {
		return pep440Version{}, err
	}
	m := pep440Pattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return pep440Version{legacy: legacyKey(s)}, nil
	}
	v := pep440Version{epoch: m[1], release: strings.Split(m[2], ".")}
	// Trailing zeros do not count: 1.0 == 1.0.0.
	for len(v.release) > 1 && strings.TrimLeft(v.release[len(v.release)-1], "0") == "" {
		v.release = v.release[:len(v.release)-1]
	}
	if m[3] != "" {
		switch strings.ToLower(m[3]) {
		case "a", "alpha":
			v.preL = "a"
		case "b", "beta":
			v.preL = "b"
		default:
			v.preL = "rc"
		}
		v.preN = m[4]
	}
	switch {
	case m[5] != "":
		v.hasPost, v.postN = true, m[5]
	case m[6] != "":
		v.hasPost, v.postN = true, m[7]
	}
	if m[8] != "" {
		v.hasDev, v.devN = true, m[9]
	}
	if m[10] != "" {
		v.local = strings.FieldsFunc(strings.ToLower(m[10]), func(r rune) bool { return r == '-' || r == '_' || r == '.' })
	}
	return v, nil
}

func (pep440) Compare(a, b string) (int, error) {
	va, err := parsePEP440(a)
	if err != nil {
		return 0, err
	}
	vb, err := parsePEP440(b)
	if err != nil {
		return 0, err
	}
	return va.cmp(vb), nil
}

// preRank places the pre-release part: a dev release of the version itself
// (1.0.dev1) before every pre-release, no pre-release after all of them.
func (v pep440Version) preRank() int {
	switch {
	case v.preL == "" && !v.hasPost && v.hasDev:
		return -1
	case v.preL == "":
		return 1
	}
	return 0
}

func (v pep440Version) cmp(w pep440Version) int {
	switch {
	case v.legacy != nil && w.legacy != nil:
		return cmpStrings(v.legacy, w.legacy)
	case v.legacy != nil:
		return -1
	case w.legacy != nil:
		return 1
	}
	if c := cmpDigits(v.epoch, w.epoch); c != 0 {
		return c
	}
	n := max(len(v.release), len(w.release))
	for i := range n {
		var x, y string
		if i < len(v.release) {
			x = v.release[i]
		}
		if i < len(w.release) {
			y = w.release[i]
		}
		if c := cmpDigits(x, y); c != 0 {
			return c
		}
	}
	if c := sign(v.preRank() - w.preRank()); c != 0 {
		return c
	}
	if v.preRank() == 0 {
		if c := strings.Compare(v.preL, w.preL); c != 0 {
			return c
		}
		if c := cmpDigits(v.preN, w.preN); c != 0 {
			return c
		}
	}
	switch {
	case v.hasPost && !w.hasPost:
		return 1
	case !v.hasPost && w.hasPost:
		return -1
	case v.hasPost:
		if c := cmpDigits(v.postN, w.postN); c != 0 {
			return c
		}
	}
	switch {
	case v.hasDev && !w.hasDev:
		return -1
	case !v.hasDev && w.hasDev:
		return 1
	case v.hasDev:
		if c := cmpDigits(v.devN, w.devN); c != 0 {
			return c
		}
	}
	return cmpLocal(v.local, w.local)
}

// cmpLocal orders local version labels: none first, then segment by segment
// with numbers after strings, a longer label after its prefix.
func cmpLocal(a, b []string) int {
	for i := range min(len(a), len(b)) {
		an, bn := allDigits(a[i]), allDigits(b[i])
		switch {
		case an && bn:
			if c := cmpDigits(a[i], b[i]); c != 0 {
				return c
			}
		case an:
			return 1
		case bn:
			return -1
		default:
			if c := strings.Compare(a[i], b[i]); c != 0 {
				return c
			}
		}
	}
	return sign(len(a) - len(b))
}

var legacyReplace = map[string]string{"pre": "c", "preview": "c", "-": "final-", "rc": "c", "dev": "@"}

// legacyKey is setuptools' legacy version key: digit runs zero-padded to
// eight, other runs prefixed with "*", "*final" appended, pre-release
// markers pulled before a "-", trailing zero runs dropped.
func legacyKey(s string) []string {
	s = strings.ToLower(s)
	var raw []string
	for i := 0; i < len(s); {
		j := i + 1
		switch c := s[i]; {
		case isDigit(c):
			for j < len(s) && isDigit(s[j]) {
				j++
			}
		case isLower(c):
			for j < len(s) && isLower(s[j]) {
				j++
			}
		case c == '.' || c == '-':
		default:
			for j < len(s) && !isDigit(s[j]) && !isLower(s[j]) && s[j] != '.' && s[j] != '-' {
				j++
			}
		}
		raw = append(raw, s[i:j])
		i = j
	}
	parts := []string{}
	add := func(p string) {
		if strings.HasPrefix(p, "*") {
			if p < "*final" {
				for len(parts) > 0 && parts[len(parts)-1] == "*final-" {
					parts = parts[:len(parts)-1]
				}
			}
			for len(parts) > 0 && parts[len(parts)-1] == "00000000" {
				parts = parts[:len(parts)-1]
			}
		}
		parts = append(parts, p)
	}
	for _, p := range raw {
		if r, ok := legacyReplace[p]; ok {
			p = r
		}
		if p == "" || p == "." {
			continue
		}
		if isDigit(p[0]) {
			if len(p) < 8 {
				p = strings.Repeat("0", 8-len(p)) + p
			}
			add(p)
		} else {
			add("*" + p)
		}
	}
	add("*final")
	return parts
}

func cmpStrings(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if c := strings.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return sign(len(a) - len(b))
}
