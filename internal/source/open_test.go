package source

import (
	"archive/tar"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const refName = "org.opencontainers.image.ref.name"

var (
	arm64  = &v1.Platform{OS: "linux", Architecture: "arm64"}
	s390x  = &v1.Platform{OS: "linux", Architecture: "s390x"}
	anon   = Options{Auth: authn.Anonymous}
	wantIx = "linux/amd64, linux/arm64/v8" // the index's platforms, as errors list them
)

// sources are the built images written to every transport.
type sources struct {
	registry string // host:port/test/app, :single and :multi pushed
	// layouts and archives
	layoutSingle, layoutMulti string
	dockerSingle, dockerMulti string
	ociSingle, ociMulti       string
	singleArm64               v1.Image // Docker media types, in dockerMulti
}

func writeSources(t *testing.T, ti *testImages) sources {
	t.Helper()
	dir := t.TempDir()
	s := sources{registry: loopbackRegistry(t) + "/test/app"}
	ctx := t.Context()
	if err := remote.Write(mustTag(t, s.registry+":single"), ti.single, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(mustTag(t, s.registry+":multi"), ti.index, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}

	s.layoutSingle = filepath.Join(dir, "single")
	p, err := layout.Write(s.layoutSingle, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(ti.single, layout.WithAnnotations(map[string]string{refName: "single"})); err != nil {
		t.Fatal(err)
	}
	s.layoutMulti = filepath.Join(dir, "multi")
	if p, err = layout.Write(s.layoutMulti, empty.Index); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(ti.single, layout.WithAnnotations(map[string]string{refName: "single"})); err != nil {
		t.Fatal(err)
	}
	// A full reference as the name, the way containerd and skopeo write it.
	if err := p.AppendIndex(ti.index, layout.WithAnnotations(map[string]string{refName: "example.com/app:multi"})); err != nil {
		t.Fatal(err)
	}

	s.dockerSingle = filepath.Join(dir, "single-docker.tar")
	if err := tarball.WriteToFile(s.dockerSingle, mustTag(t, "example.com/app:1"), ti.single); err != nil {
		t.Fatal(err)
	}
	if s.singleArm64, err = buildImage("arm64", ti.hello["arm64"], nil, false); err != nil {
		t.Fatal(err)
	}
	s.dockerMulti = filepath.Join(dir, "multi-docker.tar")
	if err := tarball.MultiRefWriteToFile(s.dockerMulti, map[name.Reference]v1.Image{
		mustTag(t, "example.com/app:1"):   ti.single,
		mustTag(t, "nginx:1.27"):          s.singleArm64,
		mustTag(t, "example.com/app:arm"): s.singleArm64,
	}); err != nil {
		t.Fatal(err)
	}

	s.ociSingle = filepath.Join(dir, "single-oci.tar")
	tarDir(t, s.layoutSingle, s.ociSingle)
	s.ociMulti = filepath.Join(dir, "multi-oci.tar")
	tarDir(t, s.layoutMulti, s.ociMulti)
	return s
}

// want is what an opened artifact must be.
type want struct {
	digest    v1.Hash
	index     bool
	narrowed  string
	machine   elf.Machine // of the hello binary, for an image
	platforms []string    // Describe's platform per image
	images    []v1.Image  // Describe's images, in order
}

func TestOpen(t *testing.T) {
	ti := fixtures(t)
	s := writeSources(t, ti)
	singleD, indexD, amd64D, arm64D := mustDigest(t, ti.single), mustDigest(t, ti.index), mustDigest(t, ti.amd64), mustDigest(t, ti.arm64)
	single := want{digest: singleD, machine: elf.EM_X86_64, platforms: []string{"linux/amd64"}, images: []v1.Image{ti.single}}
	index := want{digest: indexD, index: true, platforms: []string{"linux/amd64", "linux/arm64/v8"}, images: []v1.Image{ti.amd64, ti.arm64}}
	narrowed := want{digest: arm64D, narrowed: "linux/arm64", machine: elf.EM_AARCH64, platforms: []string{"linux/arm64"}, images: []v1.Image{ti.arm64}}
	dockerArm := want{digest: mustDigest(t, s.singleArm64), machine: elf.EM_AARCH64, platforms: []string{"linux/arm64"}, images: []v1.Image{s.singleArm64}}
	amd64Narrowed := want{digest: amd64D, narrowed: "linux/amd64", machine: elf.EM_X86_64, platforms: []string{"linux/amd64"}, images: []v1.Image{ti.amd64}}

	for _, tc := range []struct {
		name     string
		source   string
		platform *v1.Platform
		want     want
	}{
		{"registry/tag", s.registry + ":single", nil, single},
		{"registry/digest", s.registry + "@" + singleD.String(), nil, single},
		{"registry/index", s.registry + ":multi", nil, index},
		{"registry/index by digest", s.registry + "@" + indexD.String(), nil, index},
		{"registry/narrowed", s.registry + ":multi", arm64, narrowed},
		{"registry/narrowed amd64", s.registry + ":multi", &v1.Platform{OS: "linux", Architecture: "amd64"}, amd64Narrowed},
		{"oci-layout/only image", "oci-layout:" + s.layoutSingle, nil, single},
		{"oci-layout/tag", "oci-layout:" + s.layoutMulti + ":single", nil, single},
		{"oci-layout/index", "oci-layout:" + s.layoutMulti + ":multi", nil, index},
		{"oci-layout/full name", "oci-layout:" + s.layoutMulti + ":example.com/app:multi", nil, index},
		{"oci-layout/narrowed", "oci-layout:" + s.layoutMulti + ":multi", arm64, narrowed},
		{"docker-archive/only image", "docker-archive:" + s.dockerSingle, nil, single},
		{"docker-archive/named", "docker-archive:" + s.dockerMulti + ":example.com/app:1", nil, single},
		{"docker-archive/short name", "docker-archive:" + s.dockerMulti + ":nginx:1.27", nil, dockerArm},
		{"docker-archive/docker.io name", "docker-archive:" + s.dockerMulti + ":docker.io/library/nginx:1.27", nil, dockerArm},
		{"oci-archive/only image", "oci-archive:" + s.ociSingle, nil, single},
		{"oci-archive/tag", "oci-archive:" + s.ociMulti + ":single", nil, single},
		{"oci-archive/index", "oci-archive:" + s.ociMulti + ":multi", nil, index},
		{"oci-archive/narrowed", "oci-archive:" + s.ociMulti + ":multi", arm64, narrowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := Parse(tc.source, false)
			if err != nil {
				t.Fatal(err)
			}
			o := anon
			o.Platform = tc.platform
			o.TempDir = t.TempDir()
			a, err := src.Open(t.Context(), o)
			if err != nil {
				t.Fatalf("Open(%s): %v", tc.source, err)
			}
			defer a.Close()
			checkArtifact(t, a, tc.want)
			if src.Transport == OCIArchive {
				// Unpacked into one directory under TempDir, removed by Close.
				if got := tree(t, o.TempDir); len(got) == 0 || !strings.HasPrefix(got[0], "oci-archive-") || !slices.Contains(got, got[0]+"index.json") {
					t.Errorf("temp dir while open: %v", got)
				}
				a.Close()
				if got := tree(t, o.TempDir); len(got) != 0 {
					t.Errorf("Close left %v behind in the temp dir", got)
				}
			}
		})
	}
}

func checkArtifact(t *testing.T, a *Artifact, w want) {
	t.Helper()
	if a.Digest != w.digest {
		t.Errorf("digest %s, want %s", a.Digest, w.digest)
	}
	if a.Narrowed != w.narrowed {
		t.Errorf("narrowed %q, want %q", a.Narrowed, w.narrowed)
	}
	if a.ResolvedAt.IsZero() {
		t.Error("ResolvedAt not set")
	}
	if w.index {
		if a.Index == nil || a.Image != nil {
			t.Fatalf("want an index only, got index %v image %v", a.Index != nil, a.Image != nil)
		}
		if !a.MediaType.IsIndex() {
			t.Errorf("media type %s for an index", a.MediaType)
		}
		if d := mustDigest(t, a.Index); d != w.digest {
			t.Errorf("index digest %s, want %s", d, w.digest)
		}
	} else {
		if a.Image == nil || a.Index != nil {
			t.Fatalf("want an image only, got index %v image %v", a.Index != nil, a.Image != nil)
		}
		if !a.MediaType.IsImage() {
			t.Errorf("media type %s for an image", a.MediaType)
		}
		if d := mustDigest(t, a.Image); d != w.digest {
			t.Errorf("image digest %s, want %s", d, w.digest)
		}
		if m := helloMachine(t, a.Image); m != w.machine {
			t.Errorf("hello is built for %s, want %s", m, w.machine)
		}
	}
	f, err := Describe(a)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	checkFacts(t, f, w)
}

func checkFacts(t *testing.T, f Facts, w want) {
	t.Helper()
	if f.Narrowed != w.narrowed {
		t.Errorf("facts narrowed %q, want %q", f.Narrowed, w.narrowed)
	}
	if len(f.Images) != len(w.images) {
		t.Fatalf("facts for %d images, want %d: %+v", len(f.Images), len(w.images), f.Images)
	}
	for i, img := range w.images {
		got := f.Images[i]
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		size := m.Config.Size
		for _, l := range m.Layers {
			size += l.Size
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if got.Digest != mustDigest(t, img).String() || got.Platform != w.platforms[i] ||
			got.Layers != 1 || got.Size != size || got.Author != builtBy {
			t.Errorf("image %d facts %+v; want digest %s platform %s, 1 layer, %d bytes, author %q",
				i, got, mustDigest(t, img), w.platforms[i], size, builtBy)
		}
		if got.Created == nil || !got.Created.Equal(builtAt) {
			t.Errorf("image %d created %v, want %v", i, got.Created, builtAt)
		}
		if !reflect.DeepEqual(got.Labels, cf.Config.Labels) || got.Labels["org.opencontainers.image.title"] != "hello" {
			t.Errorf("image %d labels %v, want %v", i, got.Labels, cf.Config.Labels)
		}
		wantHistory := []HistoryEntry{
			{Created: &builtAt, CreatedBy: envStep, EmptyLayer: true},
			{Created: &builtAt, CreatedBy: buildStep, Comment: "the real binary"},
		}
		if len(got.History) != len(wantHistory) {
			t.Fatalf("image %d history %+v, want %+v", i, got.History, wantHistory)
		}
		for j, h := range got.History {
			wh := wantHistory[j]
			if h.Created == nil || !h.Created.Equal(*wh.Created) || h.CreatedBy != wh.CreatedBy || h.Comment != wh.Comment || h.EmptyLayer != wh.EmptyLayer {
				t.Errorf("image %d history %d = %+v, want %+v", i, j, h, wh)
			}
		}
	}
}

func TestOpenErrors(t *testing.T) {
	ti := fixtures(t)
	s := writeSources(t, ti)
	indexD := mustDigest(t, ti.index)
	empty := t.TempDir()
	noIndex := filepath.Join(t.TempDir(), "no-index.tar")
	if err := os.WriteFile(noIndex, tarBytes(tarMember{Name: "oci-layout", Type: '0', Body: []byte(`{"imageLayoutVersion":"1.0.0"}`)}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		source   string
		platform *v1.Platform
		want     []string
	}{
		{"registry/unknown platform", s.registry + ":multi", s390x,
			[]string{"no image for platform linux/s390x in index " + indexD.String(), "(it has: " + wantIx + ")"}},
		{"registry/unknown tag", s.registry + ":nope", nil, []string{"not found upstream (404)"}},
		{"registry/unknown repository", strings.TrimSuffix(s.registry, "/app") + "/other:1", nil, []string{"not found upstream (404)"}},
		{"oci-layout/several images", "oci-layout:" + s.layoutMulti, nil,
			[]string{"holds 2 images; name one with :TAG (it has: single, example.com/app:multi)"}},
		{"oci-layout/unknown tag", "oci-layout:" + s.layoutMulti + ":nope", nil,
			[]string{`has no image named "nope" (it has: single, example.com/app:multi)`}},
		{"oci-layout/unknown platform", "oci-layout:" + s.layoutMulti + ":multi", s390x,
			[]string{"no image for platform linux/s390x", "(it has: " + wantIx + ")"}},
		{"oci-layout/not a layout", "oci-layout:" + empty, nil, []string{"is not an OCI layout"}},
		{"oci-layout/missing", "oci-layout:" + filepath.Join(empty, "missing"), nil, []string{"is not an OCI layout"}},
		{"docker-archive/several images", "docker-archive:" + s.dockerMulti, nil,
			[]string{"is not a usable docker save archive", "single image"}},
		{"docker-archive/unknown name", "docker-archive:" + s.dockerMulti + ":example.com/app:nope", nil,
			[]string{"is not a usable docker save archive", "example.com/app:nope not found"}},
		{"docker-archive/bad name", "docker-archive:" + s.dockerSingle + ":UPPER", nil,
			[]string{`"UPPER" is not an image name in the archive`}},
		{"docker-archive/an OCI archive", "docker-archive:" + s.ociSingle, nil, []string{"is not a usable docker save archive"}},
		{"docker-archive/missing", "docker-archive:" + filepath.Join(empty, "missing.tar"), nil, []string{"no such file"}},
		{"oci-archive/several images", "oci-archive:" + s.ociMulti, nil, []string{"holds 2 images; name one with :TAG"}},
		{"oci-archive/unknown tag", "oci-archive:" + s.ociMulti + ":nope", nil, []string{`has no image named "nope"`}},
		{"oci-archive/unknown platform", "oci-archive:" + s.ociMulti + ":multi", s390x, []string{"no image for platform linux/s390x"}},
		{"oci-archive/a docker archive", "oci-archive:" + s.dockerSingle, nil, []string{"is not an OCI archive: it has no index.json"}},
		{"oci-archive/no index.json", "oci-archive:" + noIndex, nil, []string{"is not an OCI archive: it has no index.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := Parse(tc.source, false)
			if err != nil {
				t.Fatal(err)
			}
			o := anon
			o.Platform = tc.platform
			o.TempDir = t.TempDir()
			a, err := src.Open(t.Context(), o)
			if err == nil {
				a.Close()
				t.Fatalf("Open(%s) succeeded, want an error", tc.source)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if got := tree(t, o.TempDir); len(got) != 0 {
				t.Errorf("a failed Open left %v in the temp dir", got)
			}
		})
	}
}

// TestOpenLayoutNames covers how :TAG picks among a layout's names: an exact
// name wins over a suffix match, and a tag shared by two different images is
// refused rather than resolved to whichever came last.
func TestOpenLayoutNames(t *testing.T) {
	ti := fixtures(t)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct {
		img  v1.Image
		name string
	}{
		{ti.amd64, "1"},
		{ti.single, "example.com/a:1"},
		{ti.arm64, "example.com/b:1"},
		{ti.arm64, "example.com/c:2"},
		{ti.arm64, "example.com/d:2"},
	} {
		if err := p.AppendImage(e.img, layout.WithAnnotations(map[string]string{refName: e.name})); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		tag     string
		want    v1.Image
		wantErr string
	}{
		{tag: "1", want: ti.amd64},
		{tag: "example.com/a:1", want: ti.single},
		{tag: "example.com/b:1", want: ti.arm64},
		// Two names ending in :2, but the same image: not ambiguous.
		{tag: "2", want: ti.arm64},
		{tag: "b:1", wantErr: `has no image named "b:1"`},
	} {
		t.Run(tc.tag, func(t *testing.T) {
			a, err := openLayout(dir, tc.tag, nil, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("openLayout(%q) error %v, want %q", tc.tag, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Digest != mustDigest(t, tc.want) {
				t.Errorf("openLayout(%q) picked %s, want %s", tc.tag, a.Digest, mustDigest(t, tc.want))
			}
		})
	}

	// Now make ":1" ambiguous without an exact match.
	dir2 := t.TempDir()
	if p, err = layout.Write(dir2, empty.Index); err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct {
		img  v1.Image
		name string
	}{{ti.single, "example.com/a:1"}, {ti.arm64, "example.com/b:1"}} {
		if err := p.AppendImage(e.img, layout.WithAnnotations(map[string]string{refName: e.name})); err != nil {
			t.Fatal(err)
		}
	}
	if a, err := openLayout(dir2, "1", nil, nil); err == nil {
		t.Fatalf("ambiguous tag picked %s, want an error", a.Digest)
	} else if !strings.Contains(err.Error(), `2 images named "1"`) || !strings.Contains(err.Error(), "example.com/a:1, example.com/b:1") {
		t.Errorf("ambiguous tag error %q does not name the candidates", err)
	}

	// An empty layout says so instead of asking for a tag.
	dir3 := t.TempDir()
	if _, err = layout.Write(dir3, empty.Index); err != nil {
		t.Fatal(err)
	}
	if _, err := openLayout(dir3, "", nil, nil); err == nil || !strings.Contains(err.Error(), "holds no images") {
		t.Errorf("empty layout: error %v, want \"holds no images\"", err)
	}
}

func TestFindAttachments(t *testing.T) {
	ti := fixtures(t)
	repo := loopbackRegistry(t) + "/test/app"
	ctx := t.Context()
	tag := mustTag(t, repo+":single")
	if err := remote.Write(tag, ti.single, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	d := mustDigest(t, ti.single)
	hex := d.Hex

	// cosign's tag-based signature and attestation, next to the image.
	sig := payloadImage(t, "application/vnd.dev.cosign.simplesigning.v1+json", `{"critical":{"image":{"docker-manifest-digest":"`+d.String()+`"}}}`)
	att := payloadImage(t, "application/vnd.dsse.envelope.v1+json", `{"payloadType":"application/vnd.in-toto+json"}`)
	for ext, img := range map[string]v1.Image{"sig": sig, "att": att} {
		if err := remote.Write(mustTag(t, repo+":sha256-"+hex+"."+ext), img, remote.WithContext(ctx)); err != nil {
			t.Fatal(err)
		}
	}
	// An OCI 1.1 referrer: a manifest whose subject is the image.
	desc, err := remote.Head(tag, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	const sbomType = "application/vnd.example.sbom.v1+json"
	referrer := mutate.Subject(mutate.ConfigMediaType(payloadImage(t, "application/json", `{"sbom":true}`), sbomType), *desc).(v1.Image)
	refD := mustDigest(t, referrer)
	repoName, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(repoName.Digest(refD.String()), referrer, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
	// The registry answered through the referrers API, so go-containerregistry
	// kept no fallback tag: the referrer below was found by the API.
	if _, err := remote.Head(mustTag(t, repo+":sha256-"+hex), remote.WithContext(ctx)); err == nil {
		t.Fatal("a referrers fallback tag exists; the test would not exercise the referrers API")
	}

	src, err := Parse(repo+":single", false)
	if err != nil {
		t.Fatal(err)
	}
	other := "sha256:" + strings.Repeat("0", 64)
	got := FindAttachments(ctx, src, []string{d.String(), other, "not-a-digest"}, anon)
	want := []Attachment{
		{Kind: "cosign-signature", Subject: d.String(), Reference: repo + ":sha256-" + hex + ".sig", Digest: mustDigest(t, sig).String()},
		{Kind: "cosign-attestation", Subject: d.String(), Reference: repo + ":sha256-" + hex + ".att", Digest: mustDigest(t, att).String()},
		{Kind: "referrer", Subject: d.String(), Digest: refD.String(), ArtifactType: sbomType},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FindAttachments =\n%+v\nwant\n%+v", got, want)
	}

	// Files have no upstream to ask.
	fileSrc, err := Parse("oci-layout:"+t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := FindAttachments(ctx, fileSrc, []string{d.String()}, anon); got != nil {
		t.Errorf("FindAttachments for a layout = %+v, want nil", got)
	}
}

// payloadImage is a one-layer OCI artifact, like cosign writes.
func payloadImage(t *testing.T, layerType types.MediaType, payload string) v1.Image {
	t.Helper()
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1),
		mutate.Addendum{Layer: static.NewLayer([]byte(payload), layerType)})
	if err != nil {
		t.Fatal(err)
	}
	return mutate.ConfigMediaType(img, types.OCIConfigJSON)
}

// upstreamServer answers /v2/<repo>/... with the status its repo names
// (denied 401, forbidden 403, missing 404, busy 429, slow 429 with
// Retry-After: 7, teapot 418); any other repo gets a manifest whatever digest
// was asked, like a registry that lies.
func upstreamServer(t *testing.T) (host string, requests *atomic.Int64) {
	requests = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.URL.Path == "/v2/" {
			return
		}
		codes := map[string]int{"denied": 401, "forbidden": 403, "missing": 404, "busy": 429, "slow": 429, "teapot": 418}
		repo := strings.Split(strings.TrimPrefix(r.URL.Path, "/v2/"), "/")[0]
		code, ok := codes[repo]
		if !ok {
			w.Header().Set("Content-Type", string(types.OCIManifestSchema1))
			fmt.Fprint(w, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}`)
			return
		}
		if repo == "slow" {
			w.Header().Set("Retry-After", "7")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"errors":[{"code":"DENIED","message":"status %d"}]}`, code)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), requests
}

// openUpstream opens host/repo (":1" unless repo names a digest) and
// checks the error starts with the reference and then want.
func openUpstream(t *testing.T, host, repo, want string) error {
	t.Helper()
	given := host + "/" + repo
	if !strings.Contains(repo, "@") {
		given += ":1"
	}
	src, err := Parse(given, false)
	if err != nil {
		t.Fatal(err)
	}
	a, err := src.Open(context.Background(), anon)
	if err == nil {
		t.Fatalf("Open(%s) = %s, want an error", given, a.Digest)
	}
	if !strings.HasPrefix(err.Error(), given+want) {
		t.Errorf("error %q, want %q", err, given+want)
	}
	var rl *RateLimitError
	limited := repo == "busy" || repo == "slow"
	if isRL := errors.As(err, &rl); isRL != limited {
		t.Errorf("errors.As(RateLimitError) = %v for %s", isRL, repo)
	} else if isRL && (rl.Ref != given || rl.Err == nil || rl.Err.StatusCode != http.StatusTooManyRequests) {
		t.Errorf("RateLimitError = %+v", rl)
	}
	return err
}

func TestUpstreamError(t *testing.T) {
	host, requests := upstreamServer(t)
	t.Cleanup(func() {
		if requests.Load() == 0 {
			t.Error("the loopback server was never asked")
		}
	})
	for _, tc := range []struct {
		repo string
		want string
	}{
		{"denied", ": upstream refused access (401): log in with docker login or give credentials"},
		{"forbidden", ": upstream refused access (403): log in with docker login or give credentials"},
		{"missing", ": not found upstream (404): check the repository and tag"},
		{"busy", ": upstream rate limit (429); try again later"},
		{"teapot", ": upstream error 418: "},
		{"liar@sha256:" + hex64, ": "},
	} {
		t.Run(tc.repo, func(t *testing.T) {
			t.Parallel() // 429 is retried with back-off before it is reported
			err := openUpstream(t, host, tc.repo, tc.want)
			if strings.Contains(tc.repo, "@") && !strings.Contains(err.Error(), "does not match") {
				t.Errorf("a registry answering another digest was not refused clearly: %v", err)
			}
		})
	}

	// A Retry-After is reported with its 429, and only with it: a later 429
	// from the same upstream that names no delay must not inherit the old one.
	t.Run("retry-after", func(t *testing.T) {
		t.Parallel()
		host, _ := upstreamServer(t)
		var rl *RateLimitError
		if err := openUpstream(t, host, "slow", ": upstream rate limit (429); it asks to retry after 7s"); !errors.As(err, &rl) || rl.RetryAfter != 7*time.Second {
			t.Errorf("RetryAfter = %+v, want 7s", rl)
		}
		if err := openUpstream(t, host, "busy", ": upstream rate limit (429); try again later"); errors.As(err, &rl) && rl.RetryAfter != 0 {
			t.Errorf("a 429 without Retry-After reports %s from an earlier one", rl.RetryAfter)
		}
	})

	// Errors that are not HTTP answers keep their cause.
	cause := context.DeadlineExceeded
	if err := UpstreamError("x", cause); !errors.Is(err, cause) || err.Error() != "x: "+cause.Error() {
		t.Errorf("UpstreamError(non-HTTP) = %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"86400", time.Hour},
	} {
		if got := parseRetryAfter(tc.v, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.v, got, tc.want)
		}
	}
}

// TestOpenDockerSaveLayouts covers what `docker save` writes besides
// go-containerregistry's own format: Docker 25+ puts blobs in an OCI layout
// and points the legacy <id>/layer.tar at them with relative symlinks, which
// CheckArchive must accept; a symlink loop must fail cleanly.
func TestOpenDockerSaveLayouts(t *testing.T) {
	ti := fixtures(t)
	cfg, err := ti.single.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := ti.single.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	cfgHex, layerHex := sha256Hex(cfg), sha256Hex(blob)
	manifest := `[{"Config":"blobs/sha256/` + cfgHex + `","RepoTags":["example.com/app:1"],"Layers":["` + layerHex + `/layer.tar"]}]`
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		members []tarMember
		wantErr string
	}{
		{name: "docker 25", members: []tarMember{
			{Name: "blobs/", Type: tar.TypeDir},
			{Name: "blobs/sha256/", Type: tar.TypeDir},
			{Name: "blobs/sha256/" + cfgHex, Type: tar.TypeReg, Body: cfg},
			{Name: "blobs/sha256/" + layerHex, Type: tar.TypeReg, Body: blob},
			{Name: layerHex + "/", Type: tar.TypeDir},
			{Name: layerHex + "/layer.tar", Type: tar.TypeSymlink, Link: "../blobs/sha256/" + layerHex},
			{Name: "manifest.json", Type: tar.TypeReg, Body: []byte(manifest)},
		}},
		{name: "symlink loop", members: []tarMember{
			{Name: "manifest.json", Type: tar.TypeSymlink, Link: "other.json"},
			{Name: "other.json", Type: tar.TypeSymlink, Link: "manifest.json"},
		}, wantErr: "is not a usable docker save archive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".tar")
			if err := os.WriteFile(path, tarBytes(tc.members...), 0o600); err != nil {
				t.Fatal(err)
			}
			src, err := Parse("docker-archive:"+path, false)
			if err != nil {
				t.Fatal(err)
			}
			a, err := src.Open(t.Context(), anon)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			checkArtifact(t, a, want{digest: mustDigest(t, ti.single), machine: elf.EM_X86_64,
				platforms: []string{"linux/amd64"}, images: []v1.Image{ti.single}})
		})
	}
}

// Asking for a platform of a single-platform image of another platform is
// refused, never quietly imported.
func TestPlatformOfSingleImage(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host+"/p/single:1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	s, err := Parse(host+"/p/single:1", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(context.Background(), Options{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}); err == nil || !strings.Contains(err.Error(), "single linux/amd64 image, not linux/arm64") {
		t.Fatalf("arm64 asked, amd64 image: %v", err)
	}
	a, err := s.Open(context.Background(), Options{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}})
	if err != nil {
		t.Fatalf("amd64 asked, amd64 image: %v", err)
	}
	a.Close()
}
