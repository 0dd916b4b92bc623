package registry

import (
	"regexp"
	"strings"
)

// routeKind names the distribution API endpoints the gate distinguishes.
type routeKind int

const (
	routeUnknown routeKind = iota
	routeBase
	routeCatalog
	routeTags
	routeManifest
	routeBlob
	routeUpload
	routeReferrers
)

func (k routeKind) String() string {
	return [...]string{"unknown", "base", "catalog", "tags", "manifest", "blob", "upload", "referrers"}[k]
}

type route struct {
	kind routeKind
	repo string
	ref  string // tag or digest (manifest), digest (blob, referrers), upload id
}

var (
	// A repository name: path components of lowercase alphanumerics joined by
	// separators, as the distribution spec defines it.
	repoRE      = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE       = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	uploadRE    = regexp.MustCompile(`^/v2/(.+)/blobs/uploads(?:/([^/]*))?$`)
	tagsRE      = regexp.MustCompile(`^/v2/(.+)/tags/list$`)
	manifestRE  = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
	blobRE      = regexp.MustCompile(`^/v2/(.+)/blobs/([^/]+)$`)
	referrersRE = regexp.MustCompile(`^/v2/(.+)/referrers/([^/]+)$`)
)

// ValidRepository reports whether name is a valid repository name.
func ValidRepository(name string) bool { return len(name) <= 255 && repoRE.MatchString(name) }

// ValidTag reports whether t is a valid tag.
func ValidTag(t string) bool { return tagRE.MatchString(t) }

func parseRoute(path string) route {
	switch path {
	case "/v2", "/v2/":
		return route{kind: routeBase}
	case "/v2/_catalog":
		return route{kind: routeCatalog}
	}
	if !strings.HasPrefix(path, "/v2/") {
		return route{}
	}
	for _, c := range []struct {
		re   *regexp.Regexp
		kind routeKind
	}{{uploadRE, routeUpload}, {tagsRE, routeTags}, {manifestRE, routeManifest}, {referrersRE, routeReferrers}, {blobRE, routeBlob}} {
		if m := c.re.FindStringSubmatch(path); m != nil {
			r := route{kind: c.kind, repo: m[1]}
			if len(m) > 2 {
				r.ref = m[2]
			}
			return r
		}
	}
	return route{}
}

// globMatcher matches repository names against globs where `*` matches within
// one path component and `**` across components.
type globMatcher []*regexp.Regexp

func newGlobMatcher(globs []string) globMatcher {
	var g globMatcher
	for _, glob := range globs {
		var b strings.Builder
		b.WriteString("^")
		for i := 0; i < len(glob); i++ {
			switch {
			case strings.HasPrefix(glob[i:], "**"):
				b.WriteString(".*")
				i++
			case glob[i] == '*':
				b.WriteString("[^/]*")
			case glob[i] == '?':
				b.WriteString("[^/]")
			default:
				b.WriteString(regexp.QuoteMeta(glob[i : i+1]))
			}
		}
		b.WriteString("$")
		g = append(g, regexp.MustCompile(b.String()))
	}
	return g
}

func (g globMatcher) match(repo string) bool {
	for _, re := range g {
		if re.MatchString(repo) {
			return true
		}
	}
	return false
}
