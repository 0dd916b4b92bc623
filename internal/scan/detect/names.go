package detect

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/airlock-dev/airlock/internal/scan"
	"github.com/airlock-dev/airlock/internal/scan/rules"
)

// nameDetector reports repository names that imitate a Docker Official
// Image (rules/names/NOTICE.md) or a trusted name: small edit distance,
// homoglyphs, changed delimiters, added affixes, the official name under
// another namespace, or a namespace imitating `library`.
type nameDetector struct {
	official map[string]bool // current and former official image names
	former   map[string]bool
	trusted  map[string]bool // full repository names
	names    []string        // what look-alikes are measured against
}

func newNames(cfg Config) (scan.Detector, error) {
	d := &nameDetector{official: map[string]bool{}, former: map[string]bool{}, trusted: map[string]bool{}}
	for _, f := range []string{"names/official-images.txt", "names/official-images-former.txt"} {
		b, err := rules.Builtin.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, n := range readNames(b) {
			d.official[n] = true
			if strings.Contains(f, "former") {
				d.former[n] = true
			}
			d.names = append(d.names, n)
		}
	}
	for _, t := range cfg.Trusted {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			continue
		}
		d.trusted[t] = true
		_, last := splitRepo(t)
		if !d.official[last] {
			d.names = append(d.names, last)
		}
	}
	return d, nil
}

func readNames(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if n := strings.TrimSpace(sc.Text()); n != "" && !strings.HasPrefix(n, "#") {
			out = append(out, strings.ToLower(n))
		}
	}
	return out
}

func (d *nameDetector) Name() string         { return "names" }
func (d *nameDetector) Want(*scan.File) bool { return false }
func (d *nameDetector) Content(context.Context, *scan.File, io.Reader) ([]scan.Finding, error) {
	return nil, nil
}

func (d *nameDetector) Image(_ context.Context, im *scan.Image) ([]scan.Finding, error) {
	if im.Info.Repository == "" {
		return nil, nil
	}
	var out []scan.Finding
	for _, c := range d.Check(im.Info.Repository) {
		out = append(out, scan.Finding{
			Type: scan.TypeName, Detector: "names", Severity: c.Severity, ID: c.ID, Title: c.Title,
			Location: scan.Location{Path: "reference"}, Evidence: c.Evidence,
		})
	}
	return out, nil
}

// NameCheck is one reason a repository name looks like an impersonation.
type NameCheck struct {
	ID, Severity, Title, Evidence string
}

// splitRepo separates a repository reference into its namespace and last
// component, dropping a registry host, tag and digest.
func splitRepo(repo string) (ns, last string) {
	repo = strings.ToLower(strings.TrimSpace(repo))
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i >= 0 && !strings.Contains(repo[i:], "/") {
		repo = repo[:i]
	}
	parts := strings.Split(repo, "/")
	if len(parts) > 1 && (strings.ContainsAny(parts[0], ".:") || parts[0] == "localhost") {
		parts = parts[1:]
	}
	last = parts[len(parts)-1]
	ns = strings.Join(parts[:len(parts)-1], "/")
	return ns, last
}

func registryOf(repo string) string {
	parts := strings.Split(strings.ToLower(repo), "/")
	if len(parts) > 1 && (strings.ContainsAny(parts[0], ".:") || parts[0] == "localhost") {
		return parts[0]
	}
	return "docker.io"
}

var officialNamespaces = map[string]bool{"library": true, "": true}

// namespaces that pretend to be Docker's own.
var fakeOfficial = []string{"library", "official", "docker", "dockerhub", "docker-library", "docker-official", "_"}

var affixes = []string{"official", "latest", "docker", "image", "images", "secure", "verified", "stable", "original", "real", "library", "hub", "dockerhub", "org", "trusted", "new", "update", "updated", "fixed", "patched"}

// Check returns the impersonation signals of repo.
func (d *nameDetector) Check(repo string) []NameCheck {
	full := strings.ToLower(repo)
	ns, last := splitRepo(full)
	reg := registryOf(full)
	if d.trusted[full] || d.trusted[strings.TrimPrefix(full, reg+"/")] || d.trusted[last] && ns == "" {
		return nil
	}
	var out []NameCheck
	add := func(id, sev, title, ev string) { out = append(out, NameCheck{id, sev, title, ev}) }
	isDockerHub := reg == "docker.io" || reg == "index.docker.io" || reg == "registry-1.docker.io"
	if d.official[last] {
		switch {
		case officialNamespaces[ns] && isDockerHub:
			if d.former[last] && !d.current(last) {
				add("AIRLOCK-NAME-FORMER-OFFICIAL", "low", "Deprecated official image", fmt.Sprintf("%s is no longer a Docker Official Image; it gets no updates", last))
			}
			return out
		case ns == "library":
			add("AIRLOCK-NAME-LIBRARY-ELSEWHERE", "high", "Official image name under library/ on another registry",
				fmt.Sprintf("%s/library/%s imitates Docker Hub's official %s", reg, last, last))
			return out
		case impersonatesLibrary(ns):
			add("AIRLOCK-NAME-FAKE-NAMESPACE", "high", "Namespace imitating Docker's official images",
				fmt.Sprintf("namespace %q imitates library/ for the official image %s", ns, last))
			return out
		case isDockerHub:
			add("AIRLOCK-NAME-OFFICIAL-ELSEWHERE", "low", "Official image name under another namespace",
				fmt.Sprintf("%s/%s is not the Docker Official Image %s (docker.io/library/%s)", ns, last, last, last))
			return out
		}
		return out
	}
	if impersonatesLibrary(ns) && ns != "" && !(ns == "library" && isDockerHub) {
		add("AIRLOCK-NAME-FAKE-NAMESPACE", "high", "Namespace imitating Docker's official images", fmt.Sprintf("namespace %q is not Docker's library/", ns))
	}
	if m, how := d.lookalike(last); m != "" {
		sev := "high"
		if strings.HasPrefix(how, "affix") {
			sev = "medium"
		}
		add("AIRLOCK-NAME-TYPOSQUAT", sev, "Repository name looks like an official image",
			fmt.Sprintf("%q looks like the official image %q (%s)", last, m, how))
	}
	return out
}

func (d *nameDetector) current(n string) bool { return d.official[n] && !d.former[n] }

func impersonatesLibrary(ns string) bool {
	ns = strings.ToLower(ns)
	for _, f := range fakeOfficial {
		if ns == f {
			return true
		}
		if f != "_" && len(ns) >= 5 && damerau(ns, f) == 1 {
			return true
		}
	}
	return strings.HasPrefix(ns, "library-") || strings.HasSuffix(ns, "-library") || strings.HasPrefix(ns, "official-")
}

// lookalike finds the official (or trusted) name that n imitates and how.
func (d *nameDetector) lookalike(n string) (string, string) {
	if n == "" {
		return "", ""
	}
	h := homoglyphs(n)
	s := stripDelims(n)
	for _, o := range d.names {
		if o == n {
			return "", ""
		}
	}
	best, how, bestDist := "", "", 99
	for _, o := range d.names {
		switch {
		case h == homoglyphs(o) && h != n:
			return o, "homoglyphs " + n + " → " + h
		case s == stripDelims(o) && n != o:
			return o, "delimiters changed"
		}
		if dist := damerau(n, o); dist < bestDist && dist <= allowed(o) {
			best, how, bestDist = o, fmt.Sprintf("edit distance %d", dist), dist
		}
	}
	if best != "" {
		return best, how
	}
	for _, o := range d.names {
		if len(o) < 3 {
			continue
		}
		for _, a := range affixes {
			for _, sep := range []string{"-", "_", ".", ""} {
				if n == o+sep+a || n == a+sep+o {
					return o, "affix " + a
				}
			}
		}
	}
	return "", ""
}

// allowed is the edit distance at which a name counts as a look-alike of
// o: none for short names (too many honest neighbours), 1 from 5 letters,
// 2 from 9.
func allowed(o string) int {
	switch {
	case len(o) >= 9:
		return 2
	case len(o) >= 5:
		return 1
	}
	return 0
}

func stripDelims(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' {
			return -1
		}
		return r
	}, s)
}

// homoglyphs maps characters people confuse to one canonical form.
func homoglyphs(s string) string {
	s = strings.NewReplacer("rn", "m", "vv", "w", "cl", "d").Replace(s)
	return strings.Map(func(r rune) rune {
		switch r {
		case '0':
			return 'o'
		case '1', 'i', '|':
			return 'l'
		case '5':
			return 's'
		case '3':
			return 'e'
		case '4':
			return 'a'
		case '7':
			return 't'
		}
		return r
	}, s)
}

// damerau is the optimal-string-alignment edit distance (insertions,
// deletions, substitutions and adjacent transpositions).
func damerau(a, b string) int {
	if len(a) > 128 || len(b) > 128 {
		return 99
	}
	n, m := len(a), len(b)
	d := make([][]int, n+1)
	for i := range d {
		d[i] = make([]int, m+1)
		d[i][0] = i
	}
	for j := 0; j <= m; j++ {
		d[0][j] = j
	}
	for i := 1; i <= n; i++ {
		for j := 1; j <= m; j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[n][m]
}
