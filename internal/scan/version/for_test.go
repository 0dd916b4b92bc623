package version

import (
	"errors"
	"strings"
	"testing"
)

func TestFor(t *testing.T) {
	for _, tc := range []struct {
		eco  string
		want Comparator
	}{
		{"Debian:12", dpkg{}},
		{"Debian", dpkg{}},
		{"Ubuntu:22.04:LTS", dpkg{}},
		{"Ubuntu:Pro:18.04:LTS", dpkg{}},
		{"Alpine:v3.19", apk{}},
		{"Wolfi", apk{}},
		{"Red Hat:enterprise_linux:9::appstream", rpm{}},
		{"Rocky Linux:9", rpm{}},
		{"openSUSE:Leap 15.5", rpm{}},
		{"PyPI", pep440{}},
		{"pypi", pep440{}},
		{"npm", semver{eco: "npm"}},
		{"crates.io", semver{eco: "crates.io"}},
		{"Go", goVersion{}},
		{"Maven", maven{}},
		{"RubyGems", rubygems{}},
		{"NuGet", nuget{}},
		{"Packagist", packagist{}},
		{"Pub", pub{}},
		{"CRAN", cran{}},
		{"Hackage", hackage{}},
	} {
		got, err := For(tc.eco)
		if err != nil || got != tc.want {
			t.Errorf("For(%q) = %#v, %v; want %#v", tc.eco, got, err, tc.want)
		}
	}
	for _, eco := range []string{"", "GIT", "Linux", "Debian-ish"} {
		if _, err := For(eco); !errors.Is(err, ErrUnsupported) {
			t.Errorf("For(%q) error = %v, want ErrUnsupported", eco, err)
		}
	}
}

// TestOrders covers cases the upstream vectors do not: Go toolchain tags and
// pseudo-versions, distro versions as found in images and advisories.
func TestOrders(t *testing.T) {
	for _, tc := range []struct {
		eco, a, b string
		want      int
	}{
		// Go: OSV ranges have no "v"; modules do; stdlib comes as go1.x tags.
		{"Go", "v0.0.0-20220906165146-f3363e06e74c", "0.0.0-20220906165146-f3363e06e74c", 0},
		{"Go", "v0.0.0-20220805013720-a33c5aa5df48", "0.0.0-20220906165146-f3363e06e74c", -1},
		{"Go", "v0.1.0", "0.0.0-20220906165146-f3363e06e74c", 1},
		{"Go", "v1.2.4-0.20191109021931-daa7c04131f5", "1.2.4", -1},
		{"Go", "v1.2.4-0.20191109021931-daa7c04131f5", "1.2.3", 1},
		{"Go", "v2.0.0+incompatible", "2.0.0", 0},
		{"Go", "go1.19", "1.19.0-0", 1},
		{"Go", "go1.19", "1.19.0", 0},
		{"Go", "go1.18.5", "1.18.6", -1},
		{"Go", "go1.21rc2", "1.21.0-0", 1},
		{"Go", "go1.21rc2", "1.21.0", -1},
		{"Go", "go1.22.1 X:boringcrypto", "1.22.1", 0},
		// dpkg: epochs, tildes, revisions as Ubuntu publishes them.
		{"Ubuntu:22.04:LTS", "1:8.9p1-3ubuntu0.7", "1:8.9p1-3ubuntu0.10", -1},
		{"Ubuntu:22.04:LTS", "8.9p1-3ubuntu0.10", "1:8.9p1-3ubuntu0.7", -1},
		{"Debian:12", "1.2.3~rc1-1", "1.2.3-1", -1},
		{"Debian:12", "2.35-0ubuntu3.4", "2.35-0ubuntu3.3", 1},
		{"Ubuntu:24.04:LTS", "5.6.1+really5.4.5-1build0.1", "5.6.1+really5.4.5-1", 1},
		// rpm: tilde and caret.
		{"Red Hat", "1.0~rc1-1.el9", "1.0-1.el9", -1},
		{"Red Hat", "1.0^git1-1", "1.0-1", 1},
		{"Red Hat", "2:1.0-1", "1:9.9-9", 1},
		// PEP 440
		{"PyPI", "1.0.dev1", "1.0a1", -1},
		{"PyPI", "1.0a1", "1.0b1", -1},
		{"PyPI", "1.0rc1", "1.0", -1},
		{"PyPI", "1.0", "1.0.post1", -1},
		{"PyPI", "1.0+local", "1.0", 1},
		{"PyPI", "1!0.1", "2.0", 1},
		{"PyPI", "4.2.16", "4.2.16.0", 0},
		{"PyPI", "1.0.0-1", "1.0.0.post1", 0},
		// apk
		{"Alpine:v3.19", "1.2.3-r0", "1.2.3-r1", -1},
		{"Alpine:v3.19", "1.2.3_rc1-r0", "1.2.3-r0", -1},
		{"Alpine:v3.19", "1.2.3_p1-r0", "1.2.3-r0", 1},
		{"Alpine:v3.19", "1.2.3", "1.2.3.0", -1},
		// Maven
		{"Maven", "1.0-SNAPSHOT", "1.0", -1},
		{"Maven", "1.0.RELEASE", "1.0", 0},
		{"Maven", "2.13.4.2", "2.13.4", 1},
	} {
		c, err := For(tc.eco)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Compare(tc.a, tc.b)
		if err != nil || got != tc.want {
			t.Errorf("%s: Compare(%q, %q) = %d, %v; want %d", tc.eco, tc.a, tc.b, got, err, tc.want)
		}
	}
}

func TestInvalid(t *testing.T) {
	long := strings.Repeat("1", maxLen+1)
	for _, tc := range []struct{ eco, v string }{
		{"Debian:12", "1.2.3-not-a-debian:version!@#$"},
		{"Debian:12", "a:1.0"},
		{"Debian:12", ""},
		{"Debian:12", "1.0 beta"},
		{"npm", "banana"},
		{"npm", ""},
		{"Go", "latest"},
		{"CRAN", "1.0a"},
		{"Hackage", "x"},
		{"RubyGems", "1.0;rm"},
		{"PyPI", long},
		{"Alpine:v3.19", long},
		{"Maven", ""},
	} {
		c, _ := For(tc.eco)
		if _, err := c.Compare(tc.v, "1.0"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Compare(%q, 1.0) error = %v, want ErrInvalid", tc.eco, tc.v, err)
		}
	}
}
