package version

import "strings"

// rpm orders Red Hat, SUSE, Rocky, Alma and other RPM versions as rpm's
// rpmverCmp does: [epoch:]version[-release], each part compared with
// rpmvercmp ("~" sorts before everything, "^" after the end but before
// anything else), a missing part before a present one.
type rpm struct{}

type rpmVersion struct {
	epoch, version, release string
	hasRelease              bool
}

// parseRPM splits like rpm's rpmverParse: an epoch only when the colon
// follows a run of digits at the start, the release after the last hyphen.
func parseRPM(s string) (rpmVersion, error) {
	if err := checkLen("Red Hat", s); err != nil {
		return rpmVersion{}, err
	}
	var v rpmVersion
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	rest := s
	if i < len(s) && s[i] == ':' {
		v.epoch = s[:i]
		rest = s[i+1:]
	}
	if j := strings.LastIndexByte(rest, '-'); j >= 0 {
		v.release, v.hasRelease = rest[j+1:], true
		rest = rest[:j]
	}
	v.version = rest
	return v, nil
}

func (rpm) Compare(a, b string) (int, error) {
	va, err := parseRPM(a)
	if err != nil {
		return 0, err
	}
	vb, err := parseRPM(b)
	if err != nil {
		return 0, err
	}
	ea, eb := va.epoch, vb.epoch
	if ea == "" {
		ea = "0"
	}
	if eb == "" {
		eb = "0"
	}
	if c := rpmvercmp(ea, eb); c != 0 {
		return c, nil
	}
	if c := rpmvercmp(va.version, vb.version); c != 0 {
		return c, nil
	}
	switch {
	case !va.hasRelease && !vb.hasRelease:
		return 0, nil
	case !vb.hasRelease:
		return 1, nil
	case !va.hasRelease:
		return -1, nil
	}
	return rpmvercmp(va.release, vb.release), nil
}

// rpmvercmp is rpm's lib/rpmvercmp.c: runs of digits or of letters,
// separated by anything else, compared pairwise; numbers beat letters.
func rpmvercmp(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	sep := func(c byte) bool { return !isAlnum(c) && c != '~' && c != '^' }
	for i < len(a) || j < len(b) {
		for i < len(a) && sep(a[i]) {
			i++
		}
		for j < len(b) && sep(b[j]) {
			j++
		}
		ca, cb := byte(0), byte(0)
		if i < len(a) {
			ca = a[i]
		}
		if j < len(b) {
			cb = b[j]
		}
		if ca == '~' || cb == '~' {
			if ca != '~' {
				return 1
			}
			if cb != '~' {
				return -1
			}
			i++
			j++
			continue
		}
		if ca == '^' || cb == '^' {
			if i >= len(a) {
				return -1
			}
			if j >= len(b) {
				return 1
			}
			if ca != '^' {
				return 1
			}
			if cb != '^' {
				return -1
			}
			i++
			j++
			continue
		}
		if i >= len(a) || j >= len(b) {
			break
		}
		si, sj := i, j
		isNum := isDigit(a[i])
		if isNum {
			for si < len(a) && isDigit(a[si]) {
				si++
			}
			for sj < len(b) && isDigit(b[sj]) {
				sj++
			}
		} else {
			for si < len(a) && isAlpha(a[si]) {
				si++
			}
			for sj < len(b) && isAlpha(b[sj]) {
				sj++
			}
		}
		if sj == j {
			// Different kinds of segment: a number is newer than letters.
			if isNum {
				return 1
			}
			return -1
		}
		if isNum {
			if c := cmpDigits(a[i:si], b[j:sj]); c != 0 {
				return c
			}
		} else if c := strings.Compare(a[i:si], b[j:sj]); c != 0 {
			return c
		}
		i, j = si, sj
	}
	switch {
	case i >= len(a) && j >= len(b):
		return 0
	case i >= len(a):
		return -1
	}
	return 1
}
