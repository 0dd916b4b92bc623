package version

import "strings"

// apk orders Alpine (and Wolfi, Chainguard) versions as `apk version -t`
// does, following the format of apk-package(5):
//
//	number{.number}...{letter}{_suffix{number}}...{~hash}{-r#}
//
// Numbers compare numerically, except that a later component with a leading
// zero compares as text (1.02 < 1.1, as in Gentoo and apk 3); a version with
// more components is greater; a letter sorts after none; suffixes rank
// _alpha < _beta < _pre < _rc < (none) < _cvs < _svn < _git < _hg < _p; the
// hash is ignored; -rN last (a missing revision is r0).
//
// Strings apk would call invalid still get an order, as osv.dev gives them:
// whatever parsed is compared first, text left over after the revision
// makes a version sort lower, and two versions that both stop making sense
// before a revision compare byte by byte.
type apk struct{}

type apkSuffix struct {
	rank int
	num  string
}

type apkVersion struct {
	nums     []string
	letter   byte
	suffixes []apkSuffix
	rev      string
	rest     string // text left over
	invalid  bool   // left over before any revision
}

var apkSuffixRanks = map[string]int{
	"alpha": 0, "beta": 1, "pre": 2, "rc": 3, // (none) is 4
	"cvs": 5, "svn": 6, "git": 7, "hg": 8, "p": 9,
}

const apkNoSuffix = 4

func digitsAt(s string, i int) int {
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	return j
}

func parseAPK(s string) apkVersion {
	var v apkVersion
	i := 0
	if j := digitsAt(s, 0); j > 0 {
		v.nums = append(v.nums, s[:j])
		i = j
		for i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
			j = digitsAt(s, i+1)
			v.nums = append(v.nums, s[i+1:j])
			i = j
		}
	}
	if i < len(s) && isLower(s[i]) {
		v.letter = s[i]
		i++
	}
	for i < len(s) && s[i] == '_' {
		k := i + 1
		for k < len(s) && isLower(s[k]) {
			k++
		}
		rank, ok := apkSuffixRanks[s[i+1:k]]
		if !ok {
			break
		}
		j := digitsAt(s, k)
		v.suffixes = append(v.suffixes, apkSuffix{rank: rank, num: s[k:j]})
		i = j
	}
	if i+1 < len(s) && s[i] == '~' && isHex(s[i+1]) {
		i++
		for i < len(s) && isHex(s[i]) {
			i++
		}
	}
	if i+1 < len(s) && s[i] == '-' && s[i+1] == 'r' {
		j := digitsAt(s, i+2)
		v.rev = s[i+2 : j]
		v.rest = s[j:]
		return v
	}
	v.rest = s[i:]
	v.invalid = v.rest != ""
	return v
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isHex(c byte) bool   { return isDigit(c) || c >= 'a' && c <= 'f' }

func (apk) Compare(a, b string) (int, error) {
	if err := checkLen("Alpine", a); err != nil {
		return 0, err
	}
	if err := checkLen("Alpine", b); err != nil {
		return 0, err
	}
	va, vb := parseAPK(a), parseAPK(b)
	if va.invalid && vb.invalid {
		return strings.Compare(a, b), nil
	}
	return va.cmp(vb), nil
}

func (v apkVersion) cmp(w apkVersion) int {
	for i := range min(len(v.nums), len(w.nums)) {
		x, y := v.nums[i], w.nums[i]
		var c int
		if i > 0 && (x[0] == '0' || y[0] == '0') {
			c = strings.Compare(x, y)
		} else {
			c = cmpDigits(x, y)
		}
		if c != 0 {
			return c
		}
	}
	if c := sign(len(v.nums) - len(w.nums)); c != 0 {
		return c
	}
	if c := sign(int(v.letter) - int(w.letter)); c != 0 {
		return c
	}
	for i := range max(len(v.suffixes), len(w.suffixes)) {
		x, y := apkSuffix{rank: apkNoSuffix}, apkSuffix{rank: apkNoSuffix}
		if i < len(v.suffixes) {
			x = v.suffixes[i]
		}
		if i < len(w.suffixes) {
			y = w.suffixes[i]
		}
		if c := sign(x.rank - y.rank); c != 0 {
			return c
		}
		if c := cmpDigits(x.num, y.num); c != 0 {
			return c
		}
	}
	if c := cmpDigits(v.rev, w.rev); c != 0 {
		return c
	}
	switch {
	case v.rest == "" && w.rest != "":
		return 1
	case v.rest != "" && w.rest == "":
		return -1
	}
	return 0
}
