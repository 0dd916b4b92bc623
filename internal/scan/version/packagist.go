package version

import "strings"

// packagist orders Composer versions as PHP's version_compare does (which
// Composer's semver library uses after normalising): a leading "v" dropped,
// "-", "_" and "+" as dots, a dot between digits and non-digits, then part by
// part: numbers numerically, special words dev < alpha = a < beta = b <
// RC = rc < # (any number) < pl = p, any other word before all of them.
type packagist struct{}

// canonicalPHP is php_canonicalize_version, except that "#" (PHP's name for
// "any number") is kept as a word, as osv.dev's Packagist order does.
func canonicalPHP(v string) string {
	if v == "" {
		return v
	}
	isDig := func(c byte) bool { return isDigit(c) }
	isNonDig := func(c byte) bool { return !isDigit(c) && c != '.' }
	var b strings.Builder
	b.WriteByte(v[0])
	last := v[0]
	lastOut := func() byte { s := b.String(); return s[len(s)-1] }
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '-' || c == '_' || c == '+':
			if lastOut() != '.' {
				b.WriteByte('.')
			}
		case (isNonDig(last) && isDig(c)) || (isDig(last) && isNonDig(c)):
			if lastOut() != '.' {
				b.WriteByte('.')
			}
			b.WriteByte(c)
		case !isAlnum(c) && c != '#':
			if lastOut() != '.' {
				b.WriteByte('.')
			}
		default:
			b.WriteByte(c)
		}
		last = c
	}
	return b.String()
}

// phpSpecialOrder is compare_special_version_forms' table, matched by prefix.
func phpSpecialOrder(form string) int {
	for _, f := range []struct {
		name  string
		order int
	}{{"dev", 0}, {"alpha", 1}, {"a", 1}, {"beta", 2}, {"b", 2}, {"RC", 3}, {"rc", 3}, {"#", 4}, {"pl", 5}, {"p", 5}} {
		if strings.HasPrefix(form, f.name) {
			return f.order
		}
	}
	return -1
}

const phpNumber = "#N#"

// phpVersionCompare is php_version_compare, with numbers of any size.
func phpVersionCompare(a, b string, depth int) int {
	if a == "" || b == "" {
		switch {
		case a == "" && b == "":
			return 0
		case a != "":
			return 1
		}
		return -1
	}
	if a[0] != '#' {
		a = canonicalPHP(a)
	}
	if b[0] != '#' {
		b = canonicalPHP(b)
	}
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	i := 0
	c := 0
	for ; i < len(pa) && i < len(pb); i++ {
		x, y := pa[i], pb[i]
		dx := x != "" && isDigit(x[0])
		dy := y != "" && isDigit(y[0])
		switch {
		case dx && dy:
			c = cmpDigits(leadingDigits(x), leadingDigits(y))
		case !dx && !dy:
			c = sign(phpSpecialOrder(x) - phpSpecialOrder(y))
		case dx:
			c = sign(phpSpecialOrder(phpNumber) - phpSpecialOrder(y))
		default:
			c = sign(phpSpecialOrder(x) - phpSpecialOrder(phpNumber))
		}
		if c != 0 {
			return c
		}
	}
	if depth > 2 {
		return 0
	}
	switch {
	case i < len(pa):
		rest := pa[i]
		if rest != "" && isDigit(rest[0]) {
			return 1
		}
		return phpVersionCompare(strings.Join(pa[i:], "."), phpNumber, depth+1)
	case i < len(pb):
		rest := pb[i]
		if rest != "" && isDigit(rest[0]) {
			return -1
		}
		return phpVersionCompare(phpNumber, strings.Join(pb[i:], "."), depth+1)
	}
	return 0
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i]
}

func trimV(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 1 && (s[0] == 'v' || s[0] == 'V') && isDigit(s[1]) {
		return s[1:]
	}
	return s
}

func (packagist) Compare(a, b string) (int, error) {
	if err := checkLen("Packagist", a); err != nil {
		return 0, err
	}
	if err := checkLen("Packagist", b); err != nil {
		return 0, err
	}
	return phpVersionCompare(trimV(a), trimV(b), 0), nil
}
