package registry

import (
	"net/http"
	"path"
	"strings"
	"testing"

	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/reference"
	"github.com/gorilla/mux"
)

func TestParseRoute(t *testing.T) {
	d := sha("x")
	for _, tc := range []struct {
		path string
		want route
	}{
		{"/v2", route{kind: routeBase}},
		{"/v2/", route{kind: routeBase}},
		{"/v2/_catalog", route{kind: routeCatalog}},
		{"/v3/foo/manifests/latest", route{}},
		{"/", route{}},
		{"", route{}},
		{"/v2/foo/manifests/latest", route{routeManifest, "foo", "latest"}},
		{"/v2/a/b/c/manifests/" + d, route{routeManifest, "a/b/c", d}},
		{"/v2/foo/blobs/" + d, route{routeBlob, "foo", d}},
		{"/v2/foo/blobs/uploads/", route{routeUpload, "foo", ""}},
		{"/v2/foo/blobs/uploads/abc-123", route{routeUpload, "foo", "abc-123"}},
		{"/v2/foo/tags/list", route{routeTags, "foo", ""}},
		{"/v2/foo/referrers/" + d, route{routeReferrers, "foo", d}},
		// Repository names may contain path components that look like endpoints;
		// the endpoint is the last one, as distribution's router decides.
		{"/v2/a/manifests/b/blobs/" + d, route{routeBlob, "a/manifests/b", d}},
		{"/v2/a/blobs/uploads/b/manifests/t", route{routeManifest, "a/blobs/uploads/b", "t"}},
		{"/v2/tags/list/manifests/t", route{routeManifest, "tags/list", "t"}},
		{"/v2/a/referrers/b/manifests/t", route{routeManifest, "a/referrers/b", "t"}},
		{"/v2/a/blobs/uploads/blobs/uploads/", route{routeUpload, "a/blobs/uploads", ""}},
		// A digest whose algorithm is spelled "uploads…" is a blob, not an upload.
		{"/v2/foo/blobs/uploads:abc", route{routeBlob, "foo", "uploads:abc"}},
		{"/v2/foo/blobs/uploadsxyz", route{routeBlob, "foo", "uploadsxyz"}},
	} {
		if got := parseRoute(tc.path); got != tc.want {
			t.Errorf("parseRoute(%q) = %+v, want %+v", tc.path, got, tc.want)
		}
	}
}

func TestValidRepository(t *testing.T) {
	for _, name := range []string{"foo", "a/b/c", "a-b", "a--b", "a_b", "a__b", "a.b", "0", strings.Repeat("a", 255), "conformance/a/b"} {
		if !ValidRepository(name) {
			t.Errorf("ValidRepository(%q) = false", name)
		}
	}
	for _, name := range []string{
		"", "UPPER/case", "Foo", "a/../b", "..", "a/..", "../a", "a/./b", ".", "a//b", "/a", "a/", "a b", "a\nb",
		"a___b", "-a", "a-", "_a", "a.", "a..b", "%2e%2e/a", "a/%2e%2e", "a:b", "a@b",
		strings.Repeat("a", 256), strings.Repeat("a/", 127) + "ab",
	} {
		if ValidRepository(name) {
			t.Errorf("ValidRepository(%q) = true", name)
		}
	}
}

func TestValidTag(t *testing.T) {
	for _, tag := range []string{"latest", "v1.2.3", "A_b-c", "_x", strings.Repeat("a", 128)} {
		if !ValidTag(tag) {
			t.Errorf("ValidTag(%q) = false", tag)
		}
	}
	for _, tag := range []string{"", ".x", "-x", "a/b", "a:b", sha("x"), strings.Repeat("a", 129), "a b"} {
		if ValidTag(tag) {
			t.Errorf("ValidTag(%q) = true", tag)
		}
	}
}

func TestGlobMatcher(t *testing.T) {
	for _, tc := range []struct {
		globs []string
		yes   []string
		no    []string
	}{
		{[]string{"conformance/**"}, []string{"conformance/a", "conformance/a/b", "conformance/a/b/c"}, []string{"conformancex/a", "conformance", "x/conformance/a", "conformancea"}},
		{[]string{"cache/*"}, []string{"cache/a", "cache/abc"}, []string{"cache/a/b", "cache", "cachex/a", "x/cache/a"}},
		{[]string{"*"}, []string{"a", "abc"}, []string{"a/b"}},
		{[]string{"**"}, []string{"a", "a/b/c"}, nil},
		{[]string{"team-?/app"}, []string{"team-a/app", "team-1/app"}, []string{"team-ab/app", "team-/app", "team-//app"}},
		{[]string{"a.b/*"}, []string{"a.b/c"}, []string{"axb/c"}}, // '.' is literal, not a regexp wildcard
		{[]string{"*/mirror/**"}, []string{"x/mirror/y", "x/mirror/y/z"}, []string{"x/y/mirror/z", "mirror/y"}},
		{[]string{"cache/**", "dev/*"}, []string{"cache/a/b", "dev/x"}, []string{"dev/x/y", "prod/x"}},
		{nil, nil, []string{"a", "cache/a"}},
		{[]string{"(a|b)"}, []string{"(a|b)"}, []string{"a", "b"}},
	} {
		m := newGlobMatcher(tc.globs)
		for _, r := range tc.yes {
			if !m.match(r) {
				t.Errorf("globs %q do not match %q", tc.globs, r)
			}
		}
		for _, r := range tc.no {
			if m.match(r) {
				t.Errorf("globs %q match %q", tc.globs, r)
			}
		}
	}
}

// distributionRoute is how distribution's own router (which serves the request
// after the gate) reads path: the route name and its variables.
func distributionRoute(p string) (name string, vars map[string]string) {
	req, err := http.NewRequest(http.MethodGet, "http://registry.test", nil)
	if err != nil {
		return "", nil
	}
	req.URL.Path = p
	var m mux.RouteMatch
	if !v2.Router().Match(req, &m) || m.Route == nil || m.MatchErr != nil {
		return "", nil
	}
	return m.Route.GetName(), m.Vars
}

func FuzzParseRoute(f *testing.F) {
	d := sha("x")
	for _, p := range []string{
		"/v2/", "/v2", "/v2/_catalog", "/v2/foo/manifests/latest", "/v2/a/b/manifests/" + d, "/v2/foo/blobs/" + d,
		"/v2/foo/blobs/uploads/", "/v2/foo/blobs/uploads/0f1e-2d", "/v2/foo/tags/list", "/v2/foo/referrers/" + d,
		"/v2/a/manifests/b/blobs/" + d, "/v2/foo/blobs/uploads:abc", "/v2/UPPER/manifests/x", "/v2/a/../b/manifests/x",
		"/v2/a//b/blobs/" + d, "/v2/%2e%2e/manifests/x", "/v2/foo/manifests/latest/", "/v2/Example.com:5000/a/blobs/" + d,
	} {
		f.Add(p, "repo/name", "ref")
	}
	f.Add("", "a/blobs/uploads", "sha256:0")
	f.Fuzz(func(t *testing.T, p, repo, ref string) {
		// 1. Any path: never panics, and when distribution's router would serve a
		// manifest, blob, upload or tag list, the gate saw the same endpoint,
		// repository and reference. A disagreement would let a request reach
		// distribution under a name or kind the gate did not check.
		rt := parseRoute(p)
		checkAgainstDistribution(t, p, rt)

		// 2. Paths built from parts: the parsed repository is the one in the path.
		if !ValidRepository(repo) || ref == "" || strings.ContainsAny(ref, "/") {
			return
		}
		for _, c := range []struct {
			path string
			kind routeKind
			ref  string
		}{
			{"/v2/" + repo + "/manifests/" + ref, routeManifest, ref},
			{"/v2/" + repo + "/blobs/" + ref, routeBlob, ref},
			{"/v2/" + repo + "/referrers/" + ref, routeReferrers, ref},
			{"/v2/" + repo + "/tags/list", routeTags, ""},
			{"/v2/" + repo + "/blobs/uploads/", routeUpload, ""},
			{"/v2/" + repo + "/blobs/uploads/" + ref, routeUpload, ref},
		} {
			if c.kind == routeBlob && strings.HasPrefix(ref, "uploads") && !strings.HasPrefix(ref, "uploads:") {
				continue // "/blobs/uploadsX" is ambiguous only to a human; see TestParseRoute
			}
			got := parseRoute(c.path)
			if got.repo != repo || got.kind != c.kind || got.ref != c.ref {
				t.Fatalf("parseRoute(%q) = %+v, want %s of %q ref %q", c.path, got, c.kind, repo, c.ref)
			}
			checkAgainstDistribution(t, c.path, got)
		}
	})
}

func checkAgainstDistribution(t *testing.T, p string, rt route) {
	t.Helper()
	if rt.kind != routeUnknown && rt.kind != routeBase && rt.kind != routeCatalog {
		if rt.repo == "" || !strings.HasPrefix(p, "/v2/"+rt.repo+"/") {
			t.Fatalf("parseRoute(%q) = %+v: repository is not the path's", p, rt)
		}
	}
	if ValidRepository(rt.repo) {
		// What the gate accepts as a name, distribution accepts as the same name.
		named, err := reference.WithName(rt.repo)
		if err != nil || named.Name() != rt.repo {
			t.Fatalf("ValidRepository(%q) but distribution reads %v, %v", rt.repo, named, err)
		}
		if strings.Contains(rt.repo, "..") || strings.ToLower(rt.repo) != rt.repo || strings.Contains(rt.repo, "//") {
			t.Fatalf("ValidRepository accepted %q", rt.repo)
		}
	}
	if path.Clean(p) != strings.TrimSuffix(p, "/") && path.Clean(p) != p {
		return // http.ServeMux redirects unclean paths before either router sees them
	}
	name, vars := distributionRoute(p)
	want := map[string]routeKind{
		v2.RouteNameManifest: routeManifest, v2.RouteNameBlob: routeBlob, v2.RouteNameTags: routeTags,
		v2.RouteNameBlobUpload: routeUpload, v2.RouteNameBlobUploadChunk: routeUpload,
		v2.RouteNameBase: routeBase, v2.RouteNameCatalog: routeCatalog,
	}
	kind, ok := want[name]
	if !ok {
		return
	}
	if strings.HasSuffix(p, "/") != (name == v2.RouteNameBlobUpload || name == v2.RouteNameBase) {
		return // distribution answers a redirect (StrictSlash) to the other spelling
	}
	if rt.kind != kind {
		t.Fatalf("path %q: distribution serves %s, the gate sees %s (%+v)", p, name, rt.kind, rt)
	}
	if n, has := vars["name"]; has && n != rt.repo {
		t.Fatalf("path %q: distribution serves %s of %q, the gate checks %q", p, name, n, rt.repo)
	}
	for _, k := range []string{"reference", "digest", "uuid"} {
		if v, has := vars[k]; has && v != rt.ref {
			t.Fatalf("path %q: distribution serves %s %s %q, the gate checks %q", p, name, k, v, rt.ref)
		}
	}
}
