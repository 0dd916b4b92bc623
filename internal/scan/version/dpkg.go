package version

import "strings"

// dpkg orders Debian and Ubuntu versions as `dpkg --compare-versions` does:
// [epoch:]upstream[-revision], compared epoch first (numerically), then
// upstream and revision with dpkg's verrevcmp, where "~" sorts before
// everything, even the end of the string.
type dpkg struct{}

type dpkgVersion struct {
	epoch, upstream, revision string
}

func parseDpkg(s string) (dpkgVersion, error) {
	const eco = "Debian"
	if err := checkLen(eco, s); err != nil {
		return dpkgVersion{}, err
	}
	s = strings.TrimSpace(s)
	var v dpkgVersion
	if i := strings.IndexByte(s, ':'); i >= 0 {
		v.epoch = s[:i]
		if !allDigits(v.epoch) {
			return v, invalid(eco, s, "epoch is not a number")
		}
		s = s[i+1:]
	}
	if j := strings.LastIndexByte(s, '-'); j >= 0 {
		v.revision = s[j+1:]
		s = s[:j]
	}
	v.upstream = s
	if v.upstream == "" {
		return v, invalid(eco, s, "no upstream version")
	}
	for i := 0; i < len(v.upstream); i++ {
		c := v.upstream[i]
		if !isAlnum(c) && !strings.ContainsRune(".+~-:_", rune(c)) {
			return v, invalid(eco, s, "invalid character in upstream version")
		}
	}
	for i := 0; i < len(v.revision); i++ {
		c := v.revision[i]
		if !isAlnum(c) && !strings.ContainsRune(".+~_", rune(c)) {
			return v, invalid(eco, s, "invalid character in revision")
		}
	}
	return v, nil
}

func (dpkg) Compare(a, b string) (int, error) {
	va, err := parseDpkg(a)
	if err != nil {
		return 0, err
	}
	vb, err := parseDpkg(b)
	if err != nil {
		return 0, err
	}
	if c := cmpDigits(va.epoch, vb.epoch); c != 0 {
		return c, nil
	}
	if c := verrevcmp(va.upstream, vb.upstream); c != 0 {
		return c, nil
	}
	return verrevcmp(va.revision, vb.revision), nil
}

// dpkgOrder is the weight of one non-digit character in verrevcmp: the end
// of the string and digits 0, "~" -1, letters their code, others after letters.
func dpkgOrder(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	c := s[i]
	switch {
	case isDigit(c):
		return 0
	case isAlpha(c):
		return int(c)
	case c == '~':
		return -1
	}
	return int(c) + 256
}

// verrevcmp is dpkg's lib/dpkg/version.c verrevcmp: alternating runs of
// non-digits (compared by dpkgOrder) and digits (compared numerically).
func verrevcmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := dpkgOrder(a, i), dpkgOrder(b, j)
			if ac != bc {
				return sign(ac - bc)
			}
			i++
			j++
		}
		si := i
		for si < len(a) && isDigit(a[si]) {
			si++
		}
		sj := j
		for sj < len(b) && isDigit(b[sj]) {
			sj++
		}
		if c := cmpDigits(a[i:si], b[j:sj]); c != 0 {
			return c
		}
		i, j = si, sj
	}
	return 0
}
