package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseRegistry(t *testing.T) {
	for _, tc := range []struct {
		given      string
		insecure   bool
		normalized string
		registry   string
		repository string
		tag        string
		digest     string
		scheme     string
	}{
		{given: "nginx", normalized: "docker.io/library/nginx:latest", registry: "docker.io", repository: "library/nginx", tag: "latest", scheme: "https"},
		{given: "docker.io/library/nginx:1.27", normalized: "docker.io/library/nginx:1.27", registry: "docker.io", repository: "library/nginx", tag: "1.27", scheme: "https"},
		{given: "index.docker.io/library/nginx:1.27", normalized: "docker.io/library/nginx:1.27", registry: "docker.io", repository: "library/nginx", tag: "1.27", scheme: "https"},
		{given: "bitnami/redis:7", normalized: "docker.io/bitnami/redis:7", registry: "docker.io", repository: "bitnami/redis", tag: "7", scheme: "https"},
		{given: "ghcr.io/org/app@sha256:" + hex64, normalized: "ghcr.io/org/app@sha256:" + hex64, registry: "ghcr.io", repository: "org/app", digest: "sha256:" + hex64, scheme: "https"},
		{given: "quay.io/a/b:c", normalized: "quay.io/a/b:c", registry: "quay.io", repository: "a/b", tag: "c", scheme: "https"},
		{given: "localhost:5000/x:y", normalized: "localhost:5000/x:y", registry: "localhost:5000", repository: "x", tag: "y", scheme: "http"},
		{given: "registry.internal:8443/team/x:y", normalized: "registry.internal:8443/team/x:y", registry: "registry.internal:8443", repository: "team/x", tag: "y", scheme: "https"},
		{given: "registry.internal:8443/team/x:y", insecure: true, normalized: "registry.internal:8443/team/x:y", registry: "registry.internal:8443", repository: "team/x", tag: "y", scheme: "http"},
	} {
		t.Run(tc.given, func(t *testing.T) {
			s, err := Parse(tc.given, tc.insecure)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.given, err)
			}
			if s.Transport != Registry || s.Given != tc.given || s.Normalized != tc.normalized ||
				s.Registry != tc.registry || s.Repository != tc.repository || s.Tag != tc.tag || s.Digest != tc.digest {
				t.Errorf("Parse(%q) = %+v; want normalized %q registry %q repository %q tag %q digest %q",
					tc.given, s, tc.normalized, tc.registry, tc.repository, tc.tag, tc.digest)
			}
			if s.Reference() == nil {
				t.Fatal("Reference() is nil for a registry source")
			}
			if got := s.Reference().Context().Scheme(); got != tc.scheme {
				t.Errorf("scheme = %q, want %q", got, tc.scheme)
			}
		})
	}
}

func TestParseFiles(t *testing.T) {
	dir := t.TempDir()
	layoutDir := filepath.Join(dir, "layout")
	colonDir := filepath.Join(dir, "with:colon")
	archive := filepath.Join(dir, "app.tar")
	for _, d := range []string{layoutDir, colonDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(archive, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		given, transport, path, tag, normalized string
	}{
		{"oci-layout:" + layoutDir, OCILayout, layoutDir, "", "oci-layout:" + layoutDir},
		{"oci-layout:" + layoutDir + ":1.0", OCILayout, layoutDir, "1.0", "oci-layout:" + layoutDir + ":1.0"},
		// A directory whose name holds ':' exists, so the colon is part of the path.
		{"oci-layout:" + colonDir, OCILayout, colonDir, "", "oci-layout:" + colonDir},
		{"oci-layout:" + colonDir + ":v2", OCILayout, colonDir, "v2", "oci-layout:" + colonDir + ":v2"},
		{"docker-archive:" + archive, DockerArchive, archive, "", "docker-archive:" + archive},
		// docker save names images repo:tag; the archive exists, so everything after it is the name.
		{"docker-archive:" + archive + ":nginx:1.27", DockerArchive, archive, "nginx:1.27", "docker-archive:" + archive + ":nginx:1.27"},
		{"oci-archive:" + archive + ":1.0", OCIArchive, archive, "1.0", "oci-archive:" + archive + ":1.0"},
		// Paths that do not exist: a final :x without '/' is a tag.
		{"oci-archive:missing.tar:latest", OCIArchive, "missing.tar", "latest", "oci-archive:missing.tar:latest"},
		{"oci-layout:relative/dir", OCILayout, "relative/dir", "", "oci-layout:relative/dir"},
		{"oci-layout:a:b/c", OCILayout, "a:b/c", "", "oci-layout:a:b/c"},
	} {
		t.Run(tc.given, func(t *testing.T) {
			s, err := Parse(tc.given, false)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.given, err)
			}
			if s.Transport != tc.transport || s.Path != tc.path || s.Tag != tc.tag || s.Normalized != tc.normalized {
				t.Errorf("Parse(%q) = transport %q path %q tag %q normalized %q; want %q %q %q %q",
					tc.given, s.Transport, s.Path, s.Tag, s.Normalized, tc.transport, tc.path, tc.tag, tc.normalized)
			}
			if s.Registry != "" || s.Repository != "" || s.Digest != "" || s.Reference() != nil {
				t.Errorf("file source carries registry fields: %+v", s)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ given, want string }{
		{"", "empty source"},
		{"oci-layout:", "no path given"},
		{"docker-archive:", "no path given"},
		{"oci-archive:", "no path given"},
		{"UPPER/Case", "is not an image reference"},
		{"a@sha256:short", "is not an image reference"},
		{"ghcr.io/org/app@sha256:" + strings.ToUpper(hex64), "is not an image reference"},
		{"nginx:bad tag", "is not an image reference"},
		{"https://ghcr.io/org/app", "is not an image reference"},
	} {
		t.Run(tc.given, func(t *testing.T) {
			s, err := Parse(tc.given, false)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", tc.given, s)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) error %q does not say %q", tc.given, err, tc.want)
			}
		})
	}
}

func TestPrivateRepository(t *testing.T) {
	mappings := map[string]string{
		"docker.io/":         "hub/",
		"docker.io/library/": "library/",
		"ghcr.io/org/":       "org/",
	}
	for _, tc := range []struct {
		given    string
		mappings map[string]string
		want     string
	}{
		{"docker.io/library/nginx", nil, "docker.io/library/nginx"},
		{"nginx:1.27", nil, "docker.io/library/nginx"},
		{"localhost:5000/x:y", nil, "localhost_5000/x"},
		{"registry.internal:8443/team/app@sha256:" + hex64, nil, "registry.internal_8443/team/app"},
		{"docker.io/library/nginx", mappings, "library/nginx"},
		{"docker.io/bitnami/redis", mappings, "hub/bitnami/redis"},
		{"ghcr.io/org/app", mappings, "org/app"},
		{"quay.io/a/b", mappings, "quay.io/a/b"},
	} {
		t.Run(tc.given, func(t *testing.T) {
			s, err := Parse(tc.given, false)
			if err != nil {
				t.Fatal(err)
			}
			// Map iteration order is random: ask several times so a
			// first-match-wins bug would show.
			for range 20 {
				if got := PrivateRepository(s, tc.mappings); got != tc.want {
					t.Fatalf("PrivateRepository(%q) = %q, want %q", tc.given, got, tc.want)
				}
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"nginx", "docker.io/library/nginx:1.27", "ghcr.io/org/app@sha256:" + hex64, "quay.io/a/b:c",
		"localhost:5000/x:y", "oci-layout:dir:tag", "oci-layout:", "docker-archive:f.tar:nginx:1.27",
		"oci-archive:f.tar:1", "oci-layout::", "UPPER/Case", "a@sha256:short", "", ":", "docker-archive:testdata",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, given string, insecure bool) {
		s, err := Parse(given, insecure)
		if err != nil {
			return
		}
		switch s.Transport {
		case Registry:
			if s.Reference() == nil || s.Registry == "" || s.Repository == "" {
				t.Fatalf("Parse(%q): registry source without reference: %+v", given, s)
			}
			if (s.Tag == "") == (s.Digest == "") {
				t.Fatalf("Parse(%q): want exactly one of tag and digest: %+v", given, s)
			}
		case OCILayout, DockerArchive, OCIArchive:
			if s.Path == "" {
				t.Fatalf("Parse(%q): file source without path: %+v", given, s)
			}
			if !strings.HasPrefix(s.Normalized, s.Transport+":"+s.Path) {
				t.Fatalf("Parse(%q): normalized %q does not start with transport and path", given, s.Normalized)
			}
		default:
			t.Fatalf("Parse(%q): transport %q", given, s.Transport)
		}
		if s.Normalized == "" || s.Given != given {
			t.Fatalf("Parse(%q) = %+v", given, s)
		}
	})
}
