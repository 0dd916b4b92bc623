// Package version orders package versions the way each ecosystem's own tool
// does (dpkg, apk, rpm, PEP 440, SemVer, Maven, …), so that an advisory's
// affected ranges are evaluated exactly as the ecosystem means them.
package version

import (
	"errors"
	"fmt"
	"strings"
)

// Comparator orders two versions of one ecosystem: Compare returns -1 if a
// sorts before b, 0 if they are equal in that ecosystem and +1 if a sorts
// after b. An error wraps ErrInvalid when a version cannot be read.
type Comparator interface {
	Compare(a, b string) (int, error)
}

// ErrInvalid is wrapped by every error about a version string that cannot be
// parsed in its ecosystem.
var ErrInvalid = errors.New("invalid version")

// ErrUnsupported is returned by For for an ecosystem with no known order.
var ErrUnsupported = errors.New("unsupported ecosystem")

// maxLen bounds the length of a version string: real versions are short, and
// a bound keeps hostile input from costing more than a few microseconds.
const maxLen = 1024

func invalid(eco, v, why string) error {
	if len(v) > 64 {
		v = v[:64] + "…"
	}
	return fmt.Errorf("%w: %s version %q: %s", ErrInvalid, eco, v, why)
}

// Ecosystem families, the part of an OSV ecosystem name before the first
// colon ("Debian:12" → "Debian").
var families = map[string]Comparator{
	"Debian":       dpkg{},
	"Ubuntu":       dpkg{},
	"Alpine":       apk{},
	"Wolfi":        apk{},
	"Chainguard":   apk{},
	"MinimOS":      apk{},
	"Red Hat":      rpm{},
	"Rocky Linux":  rpm{},
	"AlmaLinux":    rpm{},
	"openSUSE":     rpm{},
	"SUSE":         rpm{},
	"Mageia":       rpm{},
	"Photon OS":    rpm{},
	"Azure Linux":  rpm{},
	"openEuler":    rpm{},
	"PyPI":         pep440{},
	"npm":          semver{eco: "npm"},
	"crates.io":    semver{eco: "crates.io"},
	"Hex":          semver{eco: "Hex"},
	"Bitnami":      semver{eco: "Bitnami"},
	"SwiftURL":     semver{eco: "SwiftURL"},
	"Go":           goVersion{},
	"Maven":        maven{},
	"RubyGems":     rubygems{},
	"NuGet":        nuget{},
	"Packagist":    packagist{},
	"Pub":          pub{},
	"CRAN":         cran{},
	"Bioconductor": cran{},
	"Hackage":      hackage{},
	"GHC":          hackage{},
}

// Family returns the ecosystem family of an OSV ecosystem name: "Debian:12"
// → "Debian", "Ubuntu:Pro:18.04:LTS" → "Ubuntu", "Alpine:v3.19" → "Alpine".
func Family(ecosystem string) string {
	if i := strings.IndexByte(ecosystem, ':'); i >= 0 {
		ecosystem = ecosystem[:i]
	}
	return strings.TrimSpace(ecosystem)
}

// For returns the comparator for an OSV ecosystem name, release suffixes
// included ("Debian:12", "Alpine:v3.19", "Ubuntu:22.04:LTS").
func For(ecosystem string) (Comparator, error) {
	fam := Family(ecosystem)
	if c, ok := families[fam]; ok {
		return c, nil
	}
	for name, c := range families {
		if strings.EqualFold(name, fam) {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupported, ecosystem)
}

// Ecosystems lists the ecosystem families For knows.
func Ecosystems() []string {
	out := make([]string, 0, len(families))
	for name := range families {
		out = append(out, name)
	}
	return out
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }

// cmpDigits compares two strings of decimal digits as numbers of any size;
// the empty string is zero.
func cmpDigits(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return sign(len(a) - len(b))
	}
	return strings.Compare(a, b)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// checkLen refuses empty, over-long and non-printable version strings, which no
// ecosystem publishes.
func checkLen(eco, v string) error {
	if v == "" {
		return invalid(eco, v, "empty")
	}
	if len(v) > maxLen {
		return invalid(eco, v, fmt.Sprintf("longer than %d bytes", maxLen))
	}
	return nil
}
