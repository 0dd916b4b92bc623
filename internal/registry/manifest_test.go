package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
)

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

var (
	cfgDigest   = sha("config")
	layerDigest = sha("layer")
	childDigest = sha("child")
)

// Seed documents: one of each accepted kind.
var (
	ociManifest = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
		"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cfgDigest + `","size":10},
		"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + layerDigest + `","size":20}]}`
	ociIndex = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
		"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + childDigest + `","size":30,
		"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}`
	dockerManifest = `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
		"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"` + cfgDigest + `","size":10},
		"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"` + layerDigest + `","size":20}]}`
	dockerList = `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
		"manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"` + childDigest + `","size":30,
		"platform":{"os":"linux","architecture":"amd64"}}]}`
	artifact = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
		"artifactType":"application/vnd.example.sbom+json",
		"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` + sha("{}") + `","size":2},
		"layers":[{"mediaType":"application/spdx+json","digest":"` + layerDigest + `","size":20}],
		"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + childDigest + `","size":30},
		"annotations":{"org.opencontainers.image.created":"2026-01-01T00:00:00Z"}}`
)

var supportedMediaTypes = map[string]bool{
	MediaTypeOCIManifest: true, MediaTypeOCIIndex: true, MediaTypeDockerManifest: true, MediaTypeDockerList: true,
}

func TestParseManifestAccepts(t *testing.T) {
	for _, tc := range []struct {
		name, contentType, body string
		mediaType               string
		blobs                   []string
		children                []string
		subject, artifactType   string
	}{
		{name: "oci manifest", contentType: MediaTypeOCIManifest, body: ociManifest, mediaType: MediaTypeOCIManifest,
			blobs: []string{cfgDigest, layerDigest}, artifactType: "application/vnd.oci.image.config.v1+json"},
		{name: "oci manifest without content type", body: ociManifest, mediaType: MediaTypeOCIManifest,
			blobs: []string{cfgDigest, layerDigest}, artifactType: "application/vnd.oci.image.config.v1+json"},
		{name: "oci index", contentType: MediaTypeOCIIndex, body: ociIndex, mediaType: MediaTypeOCIIndex, children: []string{childDigest}},
		{name: "docker manifest", contentType: MediaTypeDockerManifest, body: dockerManifest, mediaType: MediaTypeDockerManifest,
			blobs: []string{cfgDigest, layerDigest}, artifactType: "application/vnd.docker.container.image.v1+json"},
		{name: "docker list", contentType: MediaTypeDockerList, body: dockerList, mediaType: MediaTypeDockerList, children: []string{childDigest}},
		{name: "artifact with subject", contentType: MediaTypeOCIManifest, body: artifact, mediaType: MediaTypeOCIManifest,
			blobs: []string{sha("{}"), layerDigest}, subject: childDigest, artifactType: "application/vnd.example.sbom+json"},
		{name: "oci manifest without mediaType, inferred from config",
			body:      `{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"` + cfgDigest + `","size":1}}`,
			mediaType: MediaTypeOCIManifest, blobs: []string{cfgDigest}, artifactType: "a/b"},
		{name: "oci index without mediaType, inferred from manifests",
			body:      `{"schemaVersion":2,"manifests":[]}`,
			mediaType: MediaTypeOCIIndex},
		{name: "content type names mediaType the body omits", contentType: MediaTypeDockerManifest,
			body:      `{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"` + cfgDigest + `","size":1}}`,
			mediaType: MediaTypeDockerManifest, blobs: []string{cfgDigest}, artifactType: "a/b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseManifest(tc.contentType, []byte(tc.body))
			if err != nil {
				t.Fatalf("ParseManifest: %v", err)
			}
			if p.MediaType != tc.mediaType {
				t.Errorf("MediaType = %q, want %q", p.MediaType, tc.mediaType)
			}
			if strings.Join(p.Blobs, ",") != strings.Join(tc.blobs, ",") {
				t.Errorf("Blobs = %v, want %v", p.Blobs, tc.blobs)
			}
			var children []string
			for _, c := range p.Children {
				children = append(children, c.Digest)
			}
			if strings.Join(children, ",") != strings.Join(tc.children, ",") {
				t.Errorf("Children = %v, want %v", children, tc.children)
			}
			if p.Subject != tc.subject {
				t.Errorf("Subject = %q, want %q", p.Subject, tc.subject)
			}
			if p.ArtifactType != tc.artifactType {
				t.Errorf("ArtifactType = %q, want %q", p.ArtifactType, tc.artifactType)
			}
			if p.IsIndex() != (tc.mediaType == MediaTypeOCIIndex || tc.mediaType == MediaTypeDockerList) {
				t.Errorf("IsIndex = %v for %s", p.IsIndex(), p.MediaType)
			}
		})
	}
	p, err := ParseManifest(MediaTypeOCIIndex, []byte(ociIndex))
	if err != nil {
		t.Fatal(err)
	}
	if pl := p.Children[0].Platform; pl == nil || pl.OS != "linux" || pl.Architecture != "arm64" || pl.Variant != "v8" {
		t.Errorf("child platform = %+v, want linux/arm64/v8", pl)
	}
}

func TestParseManifestRefuses(t *testing.T) {
	bad := func(s string) string { return strings.Replace(ociManifest, layerDigest, s, 1) }
	for _, tc := range []struct {
		name, contentType, body string
		code                    string // OCI error code
		msg                     string // substring of the message
	}{
		{"empty", MediaTypeOCIManifest, "", "MANIFEST_INVALID", "empty"},
		{"whitespace only", MediaTypeOCIManifest, " \n\t", "MANIFEST_INVALID", "empty"},
		{"not json", MediaTypeOCIManifest, "<html>", "MANIFEST_INVALID", "not valid JSON"},
		{"json array", MediaTypeOCIManifest, "[]", "MANIFEST_INVALID", "not valid JSON"},
		{"truncated", MediaTypeOCIManifest, ociManifest[:40], "MANIFEST_INVALID", "not valid JSON"},
		{"trailing data", MediaTypeOCIManifest, ociManifest + `{"x":1}`, "MANIFEST_INVALID", "trailing data"},
		{"trailing garbage", MediaTypeOCIManifest, ociManifest + ` xyz`, "MANIFEST_INVALID", "trailing data"},
		{"schemaVersion 1", "", strings.Replace(ociManifest, `"schemaVersion":2`, `"schemaVersion":1`, 1), "MANIFEST_INVALID", "schemaVersion"},
		{"schemaVersion missing", "", strings.Replace(ociManifest, `"schemaVersion":2,`, ``, 1), "MANIFEST_INVALID", "schemaVersion"},
		{"schemaVersion string", "", strings.Replace(ociManifest, `"schemaVersion":2`, `"schemaVersion":"2"`, 1), "MANIFEST_INVALID", "not valid JSON"},
		{"mediaType differs from Content-Type", MediaTypeDockerManifest, ociManifest, "MANIFEST_INVALID", "does not match"},
		{"index sent as manifest", MediaTypeOCIManifest, ociIndex, "MANIFEST_INVALID", "does not match"},
		{"md5 digest", MediaTypeOCIManifest, bad("md5:d41d8cd98f00b204e9800998ecf8427e"), "DIGEST_INVALID", "md5:"},
		{"uppercase hex", MediaTypeOCIManifest, bad(strings.ToUpper(layerDigest[:10]) + layerDigest[10:]), "DIGEST_INVALID", "layers[0]"},
		{"uppercase hex only", MediaTypeOCIManifest, bad("sha256:" + strings.ToUpper(layerDigest[7:])), "DIGEST_INVALID", "layers[0]"},
		{"short hex", MediaTypeOCIManifest, bad(layerDigest[:70]), "DIGEST_INVALID", "layers[0]"},
		{"digest with newline", MediaTypeOCIManifest, bad(layerDigest + `\n`), "DIGEST_INVALID", "layers[0]"},
		{"empty digest", MediaTypeOCIManifest, bad(""), "DIGEST_INVALID", "layers[0]"},
		{"bad config digest", MediaTypeOCIManifest, strings.Replace(ociManifest, cfgDigest, "sha256:xyz", 1), "DIGEST_INVALID", "config"},
		{"negative size", MediaTypeOCIManifest, strings.Replace(ociManifest, `"size":20`, `"size":-1`, 1), "MANIFEST_INVALID", "negative size"},
		{"size not a number", MediaTypeOCIManifest, strings.Replace(ociManifest, `"size":20`, `"size":"20"`, 1), "MANIFEST_INVALID", "not valid JSON"},
		{"layer without mediaType", MediaTypeOCIManifest, strings.Replace(ociManifest, `"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",`, ``, 1), "MANIFEST_INVALID", "mediaType"},
		{"layer mediaType with control character", MediaTypeOCIManifest, strings.Replace(ociManifest, `tar+gzip`, `tar\r\nX: y`, 1), "MANIFEST_INVALID", "mediaType"},
		{"artifactType not a media type", MediaTypeOCIManifest, strings.Replace(artifact, `application/vnd.example.sbom+json`, `sbom please`, 1), "MANIFEST_INVALID", "artifactType"},
		{"index with layers", MediaTypeOCIIndex, strings.Replace(ociIndex, `"manifests":`, `"layers":[],"manifests":`, 1), "MANIFEST_INVALID", "must not have config or layers"},
		{"index with config", MediaTypeOCIIndex, strings.Replace(ociIndex, `"manifests":`, `"config":{"mediaType":"a/b","digest":"`+cfgDigest+`","size":1},"manifests":`, 1), "MANIFEST_INVALID", "must not have config or layers"},
		{"manifest with manifests", MediaTypeOCIManifest, strings.Replace(ociManifest, `"layers":`, `"manifests":[],"layers":`, 1), "MANIFEST_INVALID", "must not have a manifests list"},
		{"manifest without config", MediaTypeOCIManifest, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`, "MANIFEST_INVALID", "no config"},
		{"bad child digest", MediaTypeOCIIndex, strings.Replace(ociIndex, childDigest, "sha256:00", 1), "DIGEST_INVALID", "manifests[0]"},
		{"bad subject digest", MediaTypeOCIManifest, strings.Replace(artifact, childDigest, "sha1:00", 1), "DIGEST_INVALID", "subject"},
		{"unknown media type", "", strings.Replace(ociManifest, MediaTypeOCIManifest, "application/vnd.example.thing+json", 1), "MANIFEST_INVALID", "unsupported manifest media type"},
		{"unknown Content-Type, no mediaType", "application/json", `{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"` + cfgDigest + `","size":1}}`, "MANIFEST_INVALID", "unsupported manifest media type"},
		{"schema1 signed", "application/vnd.docker.distribution.manifest.v1+prettyjws", `{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}`, "MANIFEST_INVALID", "schemaVersion"},
		{"no shape", "", `{"schemaVersion":2}`, "MANIFEST_INVALID", "unsupported manifest media type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifest(tc.contentType, []byte(tc.body))
			if err == nil {
				t.Fatal("ParseManifest accepted it")
			}
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("error %v is a %T, want *ManifestError", err, err)
			}
			if me.Code != tc.code {
				t.Errorf("code = %s, want %s (%s)", me.Code, tc.code, me.Message)
			}
			if !strings.Contains(me.Message, tc.msg) {
				t.Errorf("message %q does not mention %q", me.Message, tc.msg)
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	for _, s := range []struct{ ct, body string }{
		{MediaTypeOCIManifest, ociManifest},
		{MediaTypeOCIIndex, ociIndex},
		{MediaTypeDockerManifest, dockerManifest},
		{MediaTypeDockerList, dockerList},
		{MediaTypeOCIManifest, artifact},
		{"", ociManifest},
		{"", `{"schemaVersion":2,"manifests":[]}`},
		{"application/json", `{"schemaVersion":2}`},
		{MediaTypeOCIManifest, ""},
		{MediaTypeOCIManifest, "\x00\xff{"},
		{MediaTypeOCIManifest, `{"schemaVersion":2,"config":null,"layers":null,"subject":{}}`},
		{MediaTypeOCIIndex, `{"schemaVersion":2,"manifests":[{"digest":"md5:00","size":-1}]}`},
		{MediaTypeOCIManifest, ociManifest + ociManifest},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		p, err := ParseManifest(contentType, body)
		if err != nil {
			var me *ManifestError
			if !errors.As(err, &me) || me.Code == "" || me.Message == "" {
				t.Fatalf("error %#v is not a ManifestError with code and message", err)
			}
			return
		}
		if !supportedMediaTypes[p.MediaType] {
			t.Fatalf("accepted media type %q", p.MediaType)
		}
		for _, b := range p.Blobs {
			if !ValidDigest(b) {
				t.Fatalf("accepted blob digest %q", b)
			}
		}
		for _, c := range p.Children {
			if !ValidDigest(c.Digest) {
				t.Fatalf("accepted child digest %q", c.Digest)
			}
		}
		if p.Subject != "" && !ValidDigest(p.Subject) {
			t.Fatalf("accepted subject %q", p.Subject)
		}
		if p.IsIndex() {
			if len(p.Blobs) != 0 || len(p.URLs) != 0 {
				t.Fatalf("index with blobs %v or URLs %v", p.Blobs, p.URLs)
			}
		} else {
			if len(p.Children) != 0 {
				t.Fatalf("image manifest with children %v", p.Children)
			}
			if len(p.Blobs) == 0 {
				t.Fatal("image manifest without its config blob")
			}
		}
		// The same input gives the same answer: the gate records what it parsed.
		again, err := ParseManifest(contentType, body)
		if err != nil || again.MediaType != p.MediaType || len(again.Blobs) != len(p.Blobs) || again.Subject != p.Subject {
			t.Fatalf("second parse differs: %+v, %v", again, err)
		}
	})
}

// mediaTypeGrammar is the regular expression validMediaType implements by
// hand: the oracle for FuzzValidMediaType.
var mediaTypeGrammar = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)

func FuzzValidMediaType(f *testing.F) {
	for _, s := range []string{"application/vnd.oci.image.manifest.v1+json", "a/b", "/b", "a/", "a/b/c", "-a/b", "a/-b",
		"a\x00/b", "text/plain; charset=utf-8", strings.Repeat("a", 127) + "/b", strings.Repeat("a", 128) + "/b", "é/b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validMediaType(s), mediaTypeGrammar.MatchString(s); got != want {
			t.Fatalf("validMediaType(%q) = %v, the grammar says %v", s, got, want)
		}
	})
}
