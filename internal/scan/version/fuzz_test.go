package version

import (
	"errors"
	"path/filepath"
	"testing"
)

// fuzzComparator checks the properties every order must have on any input:
// no panic, errors only wrapping ErrInvalid and for either argument order
// alike, Compare(a, a) == 0 and Compare(a, b) == -Compare(b, a).
func fuzzComparator(f *testing.F, eco string, vectorFiles ...string) {
	c, err := For(eco)
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range vectorFiles {
		vs := readVectors(f, filepath.Join(vectorDir, name))
		for i, v := range vs {
			if i%50 == 0 || i < 40 {
				f.Add(v.a, v.b)
			}
		}
	}
	f.Add("", "0")
	f.Add("1:", "~")
	f.Add("99999999999999999999999999999999.1", "1.99999999999999999999999999999999")
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, errAB := c.Compare(a, b)
		ba, errBA := c.Compare(b, a)
		if (errAB == nil) != (errBA == nil) {
			t.Fatalf("%s: errors differ by argument order for %q, %q: %v / %v", eco, a, b, errAB, errBA)
		}
		if errAB != nil {
			if !errors.Is(errAB, ErrInvalid) {
				t.Fatalf("%s: error does not wrap ErrInvalid: %v", eco, errAB)
			}
			return
		}
		if ab < -1 || ab > 1 {
			t.Fatalf("%s: Compare(%q, %q) = %d, want -1, 0 or 1", eco, a, b, ab)
		}
		if ab != -ba {
			t.Fatalf("%s: Compare(%q, %q) = %d but Compare(%q, %q) = %d", eco, a, b, ab, b, a, ba)
		}
		for _, v := range []string{a, b} {
			if r, err := c.Compare(v, v); err != nil || r != 0 {
				t.Fatalf("%s: Compare(%q, itself) = %d, %v", eco, v, r, err)
			}
		}
	})
}

func FuzzDpkg(f *testing.F) {
	fuzzComparator(f, "Debian:12", "debian-versions.txt", "debian-versions-generated.txt")
}

func FuzzAPK(f *testing.F) {
	fuzzComparator(f, "Alpine:v3.19", "alpine-versions.txt", "alpine-versions-generated.txt")
}

func FuzzRPM(f *testing.F) { fuzzComparator(f, "Red Hat", "redhat-versions.txt") }

func FuzzPEP440(f *testing.F) {
	fuzzComparator(f, "PyPI", "pypi-versions.txt", "pypi-versions-generated.txt")
}

func FuzzSemver(f *testing.F) { fuzzComparator(f, "npm", "semver-versions.txt") }

func FuzzGo(f *testing.F) { fuzzComparator(f, "Go", "semver-versions.txt") }

func FuzzMaven(f *testing.F) {
	fuzzComparator(f, "Maven", "maven-versions.txt", "maven-versions-generated.txt")
}

func FuzzRubyGems(f *testing.F) {
	fuzzComparator(f, "RubyGems", "rubygems-versions.txt", "rubygems-versions-generated.txt")
}

func FuzzNuGet(f *testing.F) { fuzzComparator(f, "NuGet", "nuget-versions.txt") }

func FuzzPackagist(f *testing.F) {
	fuzzComparator(f, "Packagist", "packagist-versions.txt", "packagist-versions-generated.txt")
}

func FuzzPub(f *testing.F) { fuzzComparator(f, "Pub", "pub-versions.txt") }

func FuzzCRAN(f *testing.F) {
	fuzzComparator(f, "CRAN", "cran-versions.txt", "cran-versions-generated.txt")
}

func FuzzHackage(f *testing.F) { fuzzComparator(f, "Hackage", "hackage-versions.txt") }
