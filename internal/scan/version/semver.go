package version

import (
	"strings"
)

// semver orders versions by Semantic Versioning 2.0.0 (npm, crates.io, Hex):
// numeric major.minor.patch, a pre-release before its release, pre-release
// identifiers compared numerically or in ASCII order, build metadata
// ignored. Like osv.dev it reads loosely: a leading "v", fewer or more than
// three numeric components (missing ones are zero, extra ones compared in
// turn) and a pre-release without its hyphen ("1.0.0beta").
type semver struct{ eco string }

type semverVersion struct {
	nums  []string
	pre   string
	build string
}

func parseSemver(eco, s string) (semverVersion, error) {
	if err := checkLen(eco, s); err != nil {
		return semverVersion{}, err
	}
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "v"), "V")
	var v semverVersion
	if i := strings.IndexByte(s, '+'); i >= 0 {
		s, v.build = s[:i], s[i+1:]
	}
	i := 0
	for {
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j == i {
			break
		}
		v.nums = append(v.nums, s[i:j])
		i = j
		if i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
			i++
			continue
		}
		break
	}
	if len(v.nums) == 0 {
		return v, invalid(eco, s, "does not start with a number")
	}
	rest := s[i:]
	if rest != "" {
		rest = strings.TrimPrefix(rest, "-")
		if rest == "" {
			return v, invalid(eco, s, "empty pre-release")
		}
		v.pre = rest
	}
	return v, nil
}

func (c semver) Compare(a, b string) (int, error) {
	va, err := parseSemver(c.eco, a)
	if err != nil {
		return 0, err
	}
	vb, err := parseSemver(c.eco, b)
	if err != nil {
		return 0, err
	}
	return va.cmp(vb), nil
}

func (v semverVersion) cmpCore(w semverVersion) int {
	n := max(len(v.nums), len(w.nums), 3)
	for i := range n {
		var x, y string
		if i < len(v.nums) {
			x = v.nums[i]
		}
		if i < len(w.nums) {
			y = w.nums[i]
		}
		if c := cmpDigits(x, y); c != 0 {
			return c
		}
	}
	return 0
}

func (v semverVersion) cmp(w semverVersion) int {
	if c := v.cmpCore(w); c != 0 {
		return c
	}
	return cmpPrerelease(v.pre, w.pre)
}

// cmpPrerelease applies SemVer's rule 11: no pre-release after any; else
// dot-separated identifiers, numbers before words, numbers numerically,
// words in ASCII order, a longer list after its prefix.
func cmpPrerelease(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "":
		return 1
	case b == "":
		return -1
	}
	return cmpIdentifiers(strings.Split(a, "."), strings.Split(b, "."), strings.Compare)
}

func cmpIdentifiers(a, b []string, words func(x, y string) int) int {
	for i := range min(len(a), len(b)) {
		an, bn := allDigits(a[i]), allDigits(b[i])
		switch {
		case an && bn:
			if c := cmpDigits(a[i], b[i]); c != 0 {
				return c
			}
		case an:
			return -1
		case bn:
			return 1
		default:
			if c := words(a[i], b[i]); c != 0 {
				return sign(c)
			}
		}
	}
	return sign(len(a) - len(b))
}

// goVersion orders Go module versions: SemVer with a "v" (OSV's Go ranges
// leave it out), pseudo-versions (v0.0.0-20220906165146-f3363e06e74c) being
// ordinary pre-releases, and the Go toolchain's own tags for stdlib and
// toolchain: go1.21.3, go1.21rc2 (1.21.0-rc.2), go1.20 (1.20.0).
type goVersion struct{}

func (goVersion) Compare(a, b string) (int, error) {
	return semver{eco: "Go"}.Compare(goTagToSemver(a), goTagToSemver(b))
}

// goTagToSemver turns a Go release tag into SemVer and leaves anything else
// alone.
func goTagToSemver(s string) string {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "go") || len(t) < 3 || !isDigit(t[2]) {
		return s
	}
	t = t[2:]
	// Strip a build suffix such as "go1.21.3 X:boringcrypto" or "-bigcorp".
	if i := strings.IndexAny(t, " +-"); i >= 0 {
		t = t[:i]
	}
	pre := ""
	for _, p := range []string{"rc", "beta", "alpha"} {
		if i := strings.Index(t, p); i > 0 {
			pre = "-" + p + "." + t[i+len(p):]
			t = t[:i]
			break
		}
	}
	switch strings.Count(t, ".") {
	case 0:
		t += ".0.0"
	case 1:
		t += ".0"
	}
	return t + pre
}
