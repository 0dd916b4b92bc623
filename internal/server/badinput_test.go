package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// Hostile or broken input to the registry: each gets one clear OCI error and
// changes nothing.

const (
	ociManifestType  = "application/vnd.oci.image.manifest.v1+json"
	ociIndexType     = "application/vnd.oci.image.index.v1+json"
	dockerManifestMT = "application/vnd.docker.distribution.manifest.v2+json"
	ociLayerType     = "application/vnd.oci.image.layer.v1.tar+gzip"
	nonDistributable = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
)

type descr map[string]any

func desc(mediaType, digest string, size int) descr {
	return descr{"mediaType": mediaType, "digest": digest, "size": size}
}

// manifestJSON is an OCI image manifest over config and layers, with extra top-level fields.
func manifestJSON(t *testing.T, config descr, layers []descr, extra map[string]any) []byte {
	t.Helper()
	m := map[string]any{"schemaVersion": 2, "mediaType": ociManifestType, "config": config, "layers": layers}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadInput(t *testing.T) {
	in := servertest.Start(t, func(c *config.Config) { c.MaxManifestSize = 1024 })
	pusher := in.Token(t, "pusher", store.RolePusher)
	ctx := context.Background()
	const repo = "bad/input"

	// Real blobs, so that a manifest fails for the one defect each case names.
	cfgContent := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cfg := desc("application/vnd.oci.image.config.v1+json", in.PushBlob(t, repo, "pusher", pusher, cfgContent), len(cfgContent))
	layerContent := []byte("not really gzip, but content all the same")
	layer := desc(ociLayerType, in.PushBlob(t, repo, "pusher", pusher, layerContent), len(layerContent))
	good := manifestJSON(t, cfg, []descr{layer}, nil)
	missing := servertest.Digest([]byte("never pushed"))
	with := func(d descr, k string, v any) descr {
		out := descr{}
		for kk, vv := range d {
			out[kk] = vv
		}
		out[k] = v
		return out
	}
	md5 := "md5:d41d8cd98f00b204e9800998ecf8427e"
	sha512 := "sha512:" + strings.Repeat("ab", 64)
	big := manifestJSON(t, cfg, []descr{layer}, map[string]any{"annotations": map[string]string{"padding": strings.Repeat("x", 1100)}})
	index := func(extra map[string]any) []byte {
		m := map[string]any{"schemaVersion": 2, "mediaType": ociIndexType,
			"manifests": []descr{desc(ociManifestType, servertest.Digest(good), len(good))}}
		for k, v := range extra {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return b
	}

	for _, tc := range []struct {
		name        string
		repo, ref   string // ref "" means the body's own sha256 digest
		contentType string
		body        []byte
		status      int
		code        string
		words       []string
	}{
		{name: "not JSON", contentType: ociManifestType, body: []byte("{\"schemaVersion\": 2, "),
			status: 400, code: "MANIFEST_INVALID", words: []string{"not valid JSON"}},
		{name: "empty body", ref: "t", contentType: ociManifestType, body: []byte{},
			status: 400, code: "MANIFEST_INVALID", words: []string{"empty"}},
		{name: "trailing data", contentType: ociManifestType, body: append(append([]byte{}, good...), "{}"...),
			status: 400, code: "MANIFEST_INVALID", words: []string{"trailing data"}},
		{name: "schemaVersion 1", contentType: ociManifestType, body: []byte(strings.Replace(string(good), `"schemaVersion":2`, `"schemaVersion":1`, 1)),
			status: 400, code: "MANIFEST_INVALID", words: []string{"schemaVersion must be 2"}},
		{name: "Content-Type disagrees with mediaType", contentType: dockerManifestMT, body: good,
			status: 400, code: "MANIFEST_INVALID", words: []string{dockerManifestMT, ociManifestType, "does not match"}},
		{name: "unknown media type", contentType: "application/vnd.example+json",
			body:   []byte(strings.Replace(string(good), ociManifestType, "application/vnd.example+json", 1)),
			status: 400, code: "MANIFEST_INVALID", words: []string{"unsupported manifest media type"}},
		{name: "index with layers", contentType: ociIndexType, body: index(map[string]any{"layers": []descr{layer}}),
			status: 400, code: "MANIFEST_INVALID", words: []string{"must not have config or layers"}},
		{name: "digest does not match body", ref: servertest.Digest([]byte("something else")), contentType: ociManifestType, body: good,
			status: 400, code: "DIGEST_INVALID", words: []string{"manifest digest is " + servertest.Digest(good), "not " + servertest.Digest([]byte("something else"))}},
		{name: "larger than maxManifestSize", contentType: ociManifestType, body: big,
			status: http.StatusRequestEntityTooLarge, code: "SIZE_INVALID", words: []string{"limit of 1024 bytes"}},
		{name: "md5 reference", ref: md5, contentType: ociManifestType, body: good,
			status: 400, code: "DIGEST_INVALID", words: []string{md5, "use sha256"}},
		{name: "sha512 reference", ref: sha512, contentType: ociManifestType, body: good,
			status: 400, code: "DIGEST_INVALID", words: []string{"sha512", "use sha256"}},
		{name: "md5 layer digest", contentType: ociManifestType, body: manifestJSON(t, cfg, []descr{with(layer, "digest", md5)}, nil),
			status: 400, code: "DIGEST_INVALID", words: []string{"layers[0]", md5}},
		{name: "uppercase hex", contentType: ociManifestType,
			body:   manifestJSON(t, cfg, []descr{with(layer, "digest", "sha256:"+strings.ToUpper(layer["digest"].(string)[7:]))}, nil),
			status: 400, code: "DIGEST_INVALID", words: []string{"layers[0]"}},
		{name: "negative size", contentType: ociManifestType, body: manifestJSON(t, cfg, []descr{with(layer, "size", -5)}, nil),
			status: 400, code: "MANIFEST_INVALID", words: []string{"negative size"}},
		{name: "bad subject", contentType: ociManifestType,
			body:   manifestJSON(t, cfg, []descr{layer}, map[string]any{"subject": desc(ociManifestType, "sha256:abc", 1)}),
			status: 400, code: "DIGEST_INVALID", words: []string{"subject"}},
		{name: "layer not pushed", contentType: ociManifestType, body: manifestJSON(t, cfg, []descr{desc(ociLayerType, missing, 12)}, nil),
			status: 400, code: "MANIFEST_BLOB_UNKNOWN"},
		{name: "config not pushed", contentType: ociManifestType, body: manifestJSON(t, with(cfg, "digest", missing), []descr{layer}, nil),
			status: 400, code: "MANIFEST_BLOB_UNKNOWN"},
		{name: "index child not pushed", contentType: ociIndexType, body: index(nil),
			status: 400, code: "MANIFEST_BLOB_UNKNOWN"},
		{name: "foreign layer URL", contentType: ociManifestType,
			body:   manifestJSON(t, cfg, []descr{with(desc(nonDistributable, missing, 12), "urls", []string{"https://evil.example.com/layer.tgz"})}, nil),
			status: 400, code: "MANIFEST_INVALID", words: []string{"https://evil.example.com/layer.tgz", "outside the registry", "foreignLayerUrls"}},
		{name: "foreign URL on a pushed layer", contentType: ociManifestType,
			body:   manifestJSON(t, cfg, []descr{with(layer, "urls", []string{"http://10.0.0.1/x"})}, nil),
			status: 400, code: "MANIFEST_INVALID", words: []string{"http://10.0.0.1/x", "outside the registry"}},
		{name: "invalid tag", ref: "-x", contentType: ociManifestType, body: good,
			status: 400, code: "TAG_INVALID", words: []string{`"-x"`}},
		{name: "uppercase repository", repo: "UPPER/case", contentType: ociManifestType, body: good,
			status: 400, code: "NAME_INVALID", words: []string{`"UPPER/case"`}},
		{name: "encoded traversal in repository", repo: "bad/%2e%2e/input", contentType: ociManifestType, body: good,
			status: 400, code: "NAME_INVALID", words: []string{`"bad/../input"`}},
		{name: "encoded traversal as repository", repo: "%2e%2e", contentType: ociManifestType, body: good,
			status: 400, code: "NAME_INVALID", words: []string{`".."`}},
		{name: "encoded slash in repository", repo: "bad%2F%2Finput", contentType: ociManifestType, body: good,
			status: 400, code: "NAME_INVALID", words: []string{`"bad//input"`}},
		{name: "repository ending in a separator", repo: "bad_", contentType: ociManifestType, body: good,
			status: 400, code: "NAME_INVALID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, ref := tc.repo, tc.ref
			if r == "" {
				r = repo
			}
			if ref == "" {
				ref = servertest.Digest(tc.body)
			}
			resp := in.PutManifest(t, r, ref, "pusher", pusher, tc.contentType, tc.body)
			checkOCIError(t, resp, tc.status, tc.code, tc.words...)
			assertNothingStored(t, in, 0, repo, ref, servertest.Digest(tc.body))
		})
	}

	// Path traversal spelled out reaches the gate as sent and is refused as
	// an invalid name: never a redirect, never a write.
	for _, p := range []string{"/v2/bad/../input/manifests/t", "/v2/bad//input/manifests/t", "/v2/bad/./input/manifests/t"} {
		t.Run("unclean path "+p, func(t *testing.T) {
			resp := in.Do(t, servertest.Request{Method: http.MethodPut, Path: p, User: "pusher", Token: pusher,
				Header: map[string]string{"Content-Type": ociManifestType}, Body: good})
			checkOCIError(t, resp, http.StatusBadRequest, "NAME_INVALID")
			assertNothingStored(t, in, 0, repo, "t", servertest.Digest(good))
		})
	}

	// Blob uploads with digests the registry cannot address.
	for _, tc := range []struct {
		name, digest string
		words        []string
	}{
		{"md5", md5, nil},
		{"sha512", sha512, []string{"sha512", "use sha256"}},
		{"garbage", "sha256:xyz", nil},
	} {
		t.Run("blob upload with "+tc.name+" digest", func(t *testing.T) {
			start := in.Do(t, servertest.Request{Method: http.MethodPost, Path: "/v2/" + repo + "/blobs/uploads/", User: "pusher", Token: pusher})
			if start.Status != http.StatusAccepted {
				t.Fatalf("start upload: %d %s", start.Status, start.Body)
			}
			loc, err := url.Parse(start.Header.Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			q := loc.Query()
			q.Set("digest", tc.digest)
			resp := in.Do(t, servertest.Request{Method: http.MethodPut, Path: loc.Path + "?" + q.Encode(), User: "pusher", Token: pusher,
				Header: map[string]string{"Content-Type": "application/octet-stream"}, Body: []byte("payload " + tc.name)})
			checkOCIError(t, resp, http.StatusBadRequest, "DIGEST_INVALID", tc.words...)
			head := in.Do(t, servertest.Request{Method: http.MethodHead, Path: "/v2/" + repo + "/blobs/" + servertest.Digest([]byte("payload "+tc.name)), User: "admin", Token: in.AdminToken})
			if head.Status != http.StatusNotFound {
				t.Errorf("the refused upload is stored: HEAD %d", head.Status)
			}
		})
	}
	t.Run("blob GET by sha512", func(t *testing.T) {
		resp := in.Do(t, servertest.Request{Method: http.MethodGet, Path: "/v2/" + repo + "/blobs/" + sha512, User: "admin", Token: in.AdminToken})
		checkOCIError(t, resp, http.StatusNotFound, "BLOB_UNKNOWN", "sha512")
	})
	t.Run("manifest GET by malformed digest", func(t *testing.T) {
		resp := in.Do(t, servertest.Request{Method: http.MethodGet, Path: "/v2/" + repo + "/manifests/sha256:ABC", User: "pusher", Token: pusher})
		checkOCIError(t, resp, http.StatusBadRequest, "DIGEST_INVALID", "sha256:ABC")
	})

	// The control: the same blobs and a well-formed manifest are accepted, so
	// every refusal above was for its own defect.
	if imgs, err := in.Server.Store.Images(ctx, store.ImageFilter{}); err != nil || len(imgs) != 0 {
		t.Fatalf("records after refused input: %d, %v", len(imgs), err)
	}
	if resp := in.PutManifest(t, repo, "ok", "pusher", pusher, ociManifestType, good); resp.Status != http.StatusCreated {
		t.Fatalf("well-formed manifest: %d %s", resp.Status, resp.Body)
	}
	if img, err := in.Server.Store.Image(ctx, servertest.Digest(good)); err != nil || img.State != store.Quarantined {
		t.Fatalf("well-formed manifest recorded as %+v, %v", img, err)
	}
}

func TestForeignLayerURLsAllowed(t *testing.T) {
	in := servertest.Start(t, func(c *config.Config) { c.ForeignLayerURLs = []string{`^https://mirror\.example\.com/`} })
	pusher := in.Token(t, "pusher", store.RolePusher)
	const repo = "win/base"
	cfgContent := []byte(`{"os":"windows"}`)
	cfg := desc("application/vnd.oci.image.config.v1+json", in.PushBlob(t, repo, "pusher", pusher, cfgContent), len(cfgContent))
	foreign := desc(nonDistributable, servertest.Digest([]byte("a windows base layer")), 20)
	foreign["urls"] = []string{"https://mirror.example.com/base.tgz"}
	ok := manifestJSON(t, cfg, []descr{foreign}, nil)
	if resp := in.PutManifest(t, repo, "allowed", "pusher", pusher, ociManifestType, ok); resp.Status != http.StatusCreated {
		t.Fatalf("layer at an allowed URL: %d %s", resp.Status, resp.Body)
	}
	img, err := in.Server.Store.Image(context.Background(), servertest.Digest(ok))
	if err != nil || img.State != store.Quarantined {
		t.Fatalf("recorded %+v, %v", img, err)
	}
	foreign["urls"] = []string{"https://mirror.example.com.evil.net/base.tgz"}
	bad := manifestJSON(t, cfg, []descr{foreign}, nil)
	resp := in.PutManifest(t, repo, "other", "pusher", pusher, ociManifestType, bad)
	checkOCIError(t, resp, http.StatusBadRequest, "MANIFEST_INVALID", "mirror.example.com.evil.net", "outside the registry")
	assertNothingStored(t, in, 1, repo, "other", servertest.Digest(bad))
}

func checkOCIError(t *testing.T, resp servertest.Response, status int, code string, words ...string) {
	t.Helper()
	if resp.Status != status {
		t.Fatalf("status %d, want %d; body %s", resp.Status, status, resp.Body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
	e := resp.Error()
	if e.Code != code || e.Message == "" {
		t.Fatalf("error %+v, want code %s with a message; body %s", e, code, resp.Body)
	}
	for _, w := range words {
		if !strings.Contains(e.Message, w) {
			t.Errorf("message %q does not say %q", e.Message, w)
		}
	}
}

// assertNothingStored checks that no manifest is recorded or served for digest
// (or tag) in repo, and that the store holds only the records it held before.
func assertNothingStored(t *testing.T, in *servertest.Instance, records int, repo, ref, digest string) {
	t.Helper()
	ctx := context.Background()
	imgs, err := in.Server.Store.Images(ctx, store.ImageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != records {
		t.Errorf("%d image records after refused input, want %d", len(imgs), records)
	}
	if _, err := in.Server.Store.Image(ctx, digest); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Image(%s) = %v, want ErrNotFound", digest, err)
	}
	refs := []string{digest}
	if ref != "" && !strings.Contains(ref, ":") {
		refs = append(refs, ref)
	}
	for _, r := range refs {
		resp := in.Do(t, servertest.Request{Method: http.MethodGet, Path: "/v2/" + repo + "/manifests/" + r, User: "admin", Token: in.AdminToken,
			Header: map[string]string{"Accept": manifestAccept}})
		if resp.Status != http.StatusNotFound {
			t.Errorf("admin GET %s@%s after refused input: %d %s", repo, r, resp.Status, resp.Body)
		}
	}
}
