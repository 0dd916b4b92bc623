package version

import (
	"strings"
)

// rubygems orders versions as Gem::Version does: segments are runs of digits
// or letters, "-" means ".pre.", trailing zeros of the release and of the
// pre-release part are dropped, and a word sorts before any number (1.0.a <
// 1.0).
type rubygems struct{}

type gemSegment struct {
	s     string
	isNum bool
}

func parseGem(v string) ([]gemSegment, error) {
	if err := checkLen("RubyGems", v); err != nil {
		return nil, err
	}
	v = strings.ReplaceAll(strings.TrimSpace(v), "-", ".pre.")
	var segs []gemSegment
	for i := 0; i < len(v); {
		j := i
		switch {
		case isDigit(v[i]):
			for j < len(v) && isDigit(v[j]) {
				j++
			}
			segs = append(segs, gemSegment{s: strings.TrimLeft(v[i:j], "0"), isNum: true})
		case isAlpha(v[i]):
			for j < len(v) && isAlpha(v[j]) {
				j++
			}
			segs = append(segs, gemSegment{s: v[i:j]})
		case v[i] == '.':
			j++
		default:
			return nil, invalid("RubyGems", v, "invalid character")
		}
		i = j
	}
	if len(segs) == 0 || !segs[0].isNum {
		return nil, invalid("RubyGems", v, "does not start with a number")
	}
	// canonical_segments: drop zeros at the end of the numeric part and at
	// the end of the rest, separately.
	k := len(segs)
	for i, s := range segs {
		if !s.isNum {
			k = i
			break
		}
	}
	trim := func(p []gemSegment) []gemSegment {
		for len(p) > 0 && p[len(p)-1].isNum && p[len(p)-1].s == "" {
			p = p[:len(p)-1]
		}
		return p
	}
	out := append([]gemSegment{}, trim(segs[:k])...)
	return append(out, trim(segs[k:])...), nil
}

func (rubygems) Compare(a, b string) (int, error) {
	sa, err := parseGem(a)
	if err != nil {
		return 0, err
	}
	sb, err := parseGem(b)
	if err != nil {
		return 0, err
	}
	zero := gemSegment{isNum: true}
	for i := 0; i < len(sa) || i < len(sb); i++ {
		l, r := zero, zero
		if i < len(sa) {
			l = sa[i]
		}
		if i < len(sb) {
			r = sb[i]
		}
		switch {
		case l.isNum && r.isNum:
			if c := cmpDigits(l.s, r.s); c != 0 {
				return c, nil
			}
		case l.isNum:
			return 1, nil
		case r.isNum:
			return -1, nil
		default:
			if c := strings.Compare(l.s, r.s); c != 0 {
				return c, nil
			}
		}
	}
	return 0, nil
}

// nuget orders NuGet versions (NuGetVersion): up to four numeric parts,
// a pre-release before its release with labels compared case-insensitively
// (numbers numerically, before words), build metadata ignored.
type nuget struct{}

func (nuget) Compare(a, b string) (int, error) {
	va, err := parseSemver("NuGet", a)
	if err != nil {
		return 0, err
	}
	vb, err := parseSemver("NuGet", b)
	if err != nil {
		return 0, err
	}
	if c := va.cmpCore(vb); c != 0 {
		return c, nil
	}
	pa, pb := strings.ToLower(va.pre), strings.ToLower(vb.pre)
	return cmpPrerelease(pa, pb), nil
}

// pub orders Dart Pub versions (pub_semver): SemVer, except that build
// metadata counts: 1.0.0 < 1.0.0+1 < 1.0.0+a, compared like a pre-release.
type pub struct{}

func (pub) Compare(a, b string) (int, error) {
	va, err := parseSemver("Pub", a)
	if err != nil {
		return 0, err
	}
	vb, err := parseSemver("Pub", b)
	if err != nil {
		return 0, err
	}
	if c := va.cmp(vb); c != 0 {
		return c, nil
	}
	switch {
	case va.build == vb.build:
		return 0, nil
	case va.build == "":
		return -1, nil
	case vb.build == "":
		return 1, nil
	}
	return cmpIdentifiers(strings.Split(va.build, "."), strings.Split(vb.build, "."), strings.Compare), nil
}

// cran orders R package versions (CRAN, Bioconductor) as package_version
// does: non-negative integers separated by "." or "-", a longer version
// after its prefix (1.0 < 1.0.0).
type cran struct{}

func numericParts(eco, v, seps string) ([]string, error) {
	if err := checkLen(eco, v); err != nil {
		return nil, err
	}
	parts := strings.FieldsFunc(strings.TrimSpace(v), func(r rune) bool { return strings.ContainsRune(seps, r) })
	if len(parts) == 0 {
		return nil, invalid(eco, v, "no numeric components")
	}
	for _, p := range parts {
		if !allDigits(p) {
			return nil, invalid(eco, v, "components must be numbers")
		}
	}
	return parts, nil
}

func cmpNumericParts(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if c := cmpDigits(a[i], b[i]); c != 0 {
			return c
		}
	}
	return sign(len(a) - len(b))
}

func (cran) Compare(a, b string) (int, error) {
	pa, err := numericParts("CRAN", a, ".-")
	if err != nil {
		return 0, err
	}
	pb, err := numericParts("CRAN", b, ".-")
	if err != nil {
		return 0, err
	}
	return cmpNumericParts(pa, pb), nil
}

// hackage orders Haskell package versions (Data.Version): integers separated
// by ".", compared as lists (1.0 < 1.0.0).
type hackage struct{}

func (hackage) Compare(a, b string) (int, error) {
	pa, err := numericParts("Hackage", a, ".")
	if err != nil {
		return 0, err
	}
	pb, err := numericParts("Hackage", b, ".")
	if err != nil {
		return 0, err
	}
	return cmpNumericParts(pa, pb), nil
}
