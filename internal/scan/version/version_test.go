package version

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/shareddata"
)

// vectorDir holds osv-scalibr's version-ordering vectors (see its NOTICE.md).
var vectorDir = shareddata.Lookup("versions")

// vectorEcosystems maps every vector file to the ecosystems it checks; a
// file in the folder that is not listed fails the test, so new vectors are
// never silently skipped.
var vectorEcosystems = map[string][]string{
	"debian-versions.txt":              {"Debian:12", "Ubuntu:22.04:LTS"},
	"debian-versions-generated.txt":    {"Debian:12", "Ubuntu:22.04:LTS"},
	"alpine-versions.txt":              {"Alpine:v3.19"},
	"alpine-versions-generated.txt":    {"Alpine:v3.19"},
	"redhat-versions.txt":              {"Red Hat"},
	"pypi-versions.txt":                {"PyPI"},
	"pypi-versions-generated.txt":      {"PyPI"},
	"maven-versions.txt":               {"Maven"},
	"maven-versions-generated.txt":     {"Maven"},
	"semver-versions.txt":              {"npm", "crates.io", "Go", "Hex"},
	"rubygems-versions.txt":            {"RubyGems"},
	"rubygems-versions-generated.txt":  {"RubyGems"},
	"packagist-versions.txt":           {"Packagist"},
	"packagist-versions-generated.txt": {"Packagist"},
	"nuget-versions.txt":               {"NuGet"},
	"pub-versions.txt":                 {"Pub"},
	"cran-versions.txt":                {"CRAN"},
	"cran-versions-generated.txt":      {"CRAN"},
	"hackage-versions.txt":             {"Hackage"},
}

type vector struct {
	line int
	a, b string
	want int
}

func readVectors(t testing.TB, path string) []vector {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []vector
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "# ") || strings.HasPrefix(line, "// ") {
			continue
		}
		p := strings.Split(line, " ")
		if len(p) != 3 {
			t.Fatalf("%s:%d: want `a <op> b`, got %q", path, n, line)
		}
		want := map[string]int{"<": -1, "=": 0, ">": 1}
		w, ok := want[p[1]]
		if !ok {
			t.Fatalf("%s:%d: unknown operator %q", path, n, p[1])
		}
		out = append(out, vector{line: n, a: p[0], b: p[2], want: w})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVectors checks every comparison of every vector file, both ways round,
// for every ecosystem the file applies to; all must pass.
func TestVectors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vector files in %s (%v)", vectorDir, err)
	}
	seen := map[string]bool{}
	for _, path := range files {
		name := filepath.Base(path)
		ecos, ok := vectorEcosystems[name]
		if !ok {
			t.Errorf("vector file %s has no ecosystem in vectorEcosystems", name)
			continue
		}
		seen[name] = true
		vs := readVectors(t, path)
		for _, eco := range ecos {
			t.Run(name+"/"+eco, func(t *testing.T) {
				c, err := For(eco)
				if err != nil {
					t.Fatal(err)
				}
				failed := 0
				for _, v := range vs {
					got, err := c.Compare(v.a, v.b)
					rev, err2 := c.Compare(v.b, v.a)
					if err != nil || err2 != nil || got != v.want || rev != -v.want {
						failed++
						if failed <= 20 {
							t.Errorf("%s:%d: %s vs %s: got %d/%d (%v %v), want %d", name, v.line, v.a, v.b, got, rev, err, err2, v.want)
						}
					}
				}
				if failed > 0 {
					t.Errorf("%s: %d of %d comparisons failed", eco, failed, len(vs))
				} else {
					t.Logf("%s: %d of %d comparisons pass", eco, len(vs), len(vs))
				}
			})
		}
	}
	for name := range vectorEcosystems {
		if !seen[name] {
			t.Errorf("vector file %s is missing from %s", name, vectorDir)
		}
	}
}
