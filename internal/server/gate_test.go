package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/internal/attest"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// The gate matrix: every read endpoint × every role × every vetting state,
// against one server, with the expected answer written down by expect.

const (
	gatedRepo    = "gate/app"
	otherRepo    = "gate/other"
	mountRepo    = "gate/mounted"
	unvettedRepo = "cache/mirror/x"
)

var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json",
}, ", ")

type caller struct {
	role        string // anonymous, puller, pusher, approver, scanner, admin
	user, token string
}

// bypasses reports whether the role reads unvetted content (scanner, admin).
func (c caller) bypasses() bool { return c.role == "scanner" || c.role == "admin" }
func (c caller) canPush() bool  { return c.role == "pusher" || c.role == "scanner" || c.role == "admin" }

type blob struct {
	digest  string
	content []byte
}

type referrer struct {
	digest   string
	approved bool
}

// subject is one manifest in one repository, in one vetting situation.
type subject struct {
	name      string
	repo      string
	tag       string // "" when pushed by digest only
	digest    string
	mediaType string
	manifest  []byte
	config    blob
	layer     blob
	// servable: gated callers (anonymous, puller, pusher, approver) may read it.
	servable bool
	// denial: words the 403 message for the manifest must hold (state and next step).
	denial    []string
	referrers []referrer
}

func (s subject) unvetted() bool { return strings.HasPrefix(s.repo, "cache/") }

type endpoint string

const (
	manifestGetTag     endpoint = "manifest GET by tag"
	manifestHeadTag    endpoint = "manifest HEAD by tag"
	manifestGetDigest  endpoint = "manifest GET by digest"
	manifestHeadDigest endpoint = "manifest HEAD by digest"
	configGet          endpoint = "config blob GET"
	configHead         endpoint = "config blob HEAD"
	layerGet           endpoint = "layer blob GET"
	layerHead          endpoint = "layer blob HEAD"
	referrersGet       endpoint = "referrers GET"
	mountPost          endpoint = "blob mount POST"
)

var endpoints = []endpoint{
	manifestGetTag, manifestHeadTag, manifestGetDigest, manifestHeadDigest,
	configGet, configHead, layerGet, layerHead, referrersGet, mountPost,
}

func (e endpoint) head() bool { return strings.Contains(string(e), "HEAD") }

func (e endpoint) request(s subject, c caller) (servertest.Request, bool) {
	r := servertest.Request{Method: http.MethodGet, User: c.user, Token: c.token}
	if e.head() {
		r.Method = http.MethodHead
	}
	switch e {
	case manifestGetTag, manifestHeadTag:
		if s.tag == "" {
			return r, false
		}
		r.Path = "/v2/" + s.repo + "/manifests/" + s.tag
		r.Header = map[string]string{"Accept": manifestAccept}
	case manifestGetDigest, manifestHeadDigest:
		r.Path = "/v2/" + s.repo + "/manifests/" + s.digest
		r.Header = map[string]string{"Accept": manifestAccept}
	case configGet, configHead:
		r.Path = "/v2/" + s.repo + "/blobs/" + s.config.digest
	case layerGet, layerHead:
		r.Path = "/v2/" + s.repo + "/blobs/" + s.layer.digest
	case referrersGet:
		r.Path = "/v2/" + s.repo + "/referrers/" + s.digest
	case mountPost:
		r.Method = http.MethodPost
		r.Path = "/v2/" + mountRepo + "/blobs/uploads/?" + url.Values{"mount": {s.layer.digest}, "from": {s.repo}}.Encode()
	}
	return r, true
}

type expectation struct {
	status int
	code   string   // OCI error code, for error answers with a body
	words  []string // the error message holds each
}

// expect is the gate's contract, written independently of its code.
func expect(c caller, e endpoint, s subject) expectation {
	readable := c.bypasses() || s.unvetted() || s.servable
	refuse := func(words ...string) expectation {
		if e.head() && c.role == "pusher" {
			return expectation{status: http.StatusNotFound} // push clients probe with HEAD
		}
		return expectation{status: http.StatusForbidden, code: "DENIED", words: words}
	}
	switch e {
	case manifestGetTag, manifestHeadTag, manifestGetDigest, manifestHeadDigest:
		if readable {
			return expectation{status: http.StatusOK}
		}
		return refuse(append([]string{s.digest}, s.denial...)...)
	case configGet, configHead, layerGet, layerHead:
		if readable {
			return expectation{status: http.StatusOK}
		}
		d := s.config.digest
		if e == layerGet || e == layerHead {
			d = s.layer.digest
		}
		return refuse(d, "does not belong to any approved manifest in "+s.repo, "once an image holding it is approved")
	case referrersGet:
		if readable {
			return expectation{status: http.StatusOK}
		}
		return expectation{status: http.StatusForbidden, code: "DENIED", words: append([]string{s.digest}, s.denial...)}
	case mountPost:
		switch {
		case c.role == "anonymous":
			return expectation{status: http.StatusUnauthorized, code: "UNAUTHORIZED", words: []string{"authentication required"}}
		case !c.canPush():
			return expectation{status: http.StatusForbidden, code: "DENIED", words: []string{fmt.Sprintf("role %q cannot push", c.role)}}
		case readable:
			return expectation{status: http.StatusCreated}
		}
		return expectation{status: http.StatusForbidden, code: "DENIED", words: []string{"cannot mount " + s.layer.digest + " from " + s.repo, "approved"}}
	}
	panic("unknown endpoint " + e)
}

// wantReferrers is the referrers list a caller may see.
func wantReferrers(c caller, s subject) []string {
	out := []string{}
	for _, r := range s.referrers {
		if r.approved || c.bypasses() || s.unvetted() {
			out = append(out, r.digest)
		}
	}
	sort.Strings(out)
	return out
}

type gateFixture struct {
	in       *servertest.Instance
	callers  []caller
	subjects []subject
	// unvetted holds, per repository, the bytes and digests gated callers must never receive.
	unvettedBytes   map[string][][]byte
	unvettedDigests map[string]map[string]bool
}

func imageParts(t *testing.T, img v1.Image) (manifest []byte, mediaType string, digest string, config, layer blob) {
	t.Helper()
	var err error
	if manifest, err = img.RawManifest(); err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cn, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	cb, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil || len(ls) == 0 {
		t.Fatalf("layers: %v", err)
	}
	ld, err := ls[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	lb, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	return manifest, string(mt), d.String(), blob{cn.String(), cb}, blob{ld.String(), lb}
}

func decide(t *testing.T, in *servertest.Instance, digest, action, reason string) {
	t.Helper()
	if _, err := in.Client(in.AdminToken).Decide(context.Background(), digest, action, server.DecisionRequest{Reason: reason}); err != nil {
		t.Fatalf("%s %s: %v", action, digest, err)
	}
}

// pushArtifact pushes an artifact manifest whose subject is s into repo by digest.
func pushArtifact(t *testing.T, in *servertest.Instance, repo string, s subject, name string) subject {
	t.Helper()
	cfg := blob{content: []byte(`{"artifact":"` + name + `"}`)}
	cfg.digest = in.PushBlob(t, repo, "admin", in.AdminToken, cfg.content)
	layer := blob{content: []byte("sbom of " + s.digest + " by " + name)}
	layer.digest = in.PushBlob(t, repo, "admin", in.AdminToken, layer.content)
	m, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"artifactType":  "application/vnd.example.sbom+json",
		"config":        map[string]any{"mediaType": "application/vnd.example.config+json", "digest": cfg.digest, "size": len(cfg.content)},
		"layers":        []any{map[string]any{"mediaType": "application/spdx+json", "digest": layer.digest, "size": len(layer.content)}},
		"subject":       map[string]any{"mediaType": s.mediaType, "digest": s.digest, "size": len(s.manifest)},
		"annotations":   map[string]string{"name": name},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := servertest.Digest(m)
	resp := in.PutManifest(t, repo, d, "admin", in.AdminToken, "application/vnd.oci.image.manifest.v1+json", m)
	if resp.Status != http.StatusCreated {
		t.Fatalf("push artifact %s: %d %s", name, resp.Status, resp.Body)
	}
	if got := resp.Header.Get("OCI-Subject"); got != s.digest {
		t.Fatalf("push artifact %s: OCI-Subject = %q, want %s", name, got, s.digest)
	}
	return subject{name: name, repo: repo, digest: d, mediaType: "application/vnd.oci.image.manifest.v1+json", manifest: m, config: cfg, layer: layer}
}

func setupGate(t *testing.T) *gateFixture {
	in := servertest.Start(t, func(c *config.Config) {
		c.AllowUnvetted = []string{"cache/**"}
		c.AnonymousPull = true
	})
	admin := in.AdminToken
	f := &gateFixture{in: in, callers: []caller{
		{role: "anonymous"},
		{role: "puller", user: "puller", token: in.Token(t, "puller", store.RolePuller)},
		{role: "pusher", user: "pusher", token: in.Token(t, "pusher", store.RolePusher)},
		{role: "approver", user: "approver", token: in.Token(t, "approver", store.RoleApprover)},
		{role: "scanner", user: "scanner", token: in.Token(t, "scanner", store.RoleScanner)},
		{role: "admin", user: "admin", token: admin},
	}}
	push := func(name, repoTag string) subject {
		img := in.PushRandom(t, repoTag, "admin", admin, 256, 1)
		repo, tag, _ := strings.Cut(repoTag, ":")
		s := subject{name: name, repo: repo, tag: tag}
		s.manifest, s.mediaType, s.digest, s.config, s.layer = imageParts(t, img)
		return s
	}
	quarantined := []string{"quarantined", "airlock approve " + "%s", "--reason"}
	words := func(ws []string, d string) []string {
		out := make([]string, len(ws))
		for i, w := range ws {
			out[i] = strings.ReplaceAll(w, "%s", d)
		}
		return out
	}

	a := push("approved", gatedRepo+":a")
	decide(t, in, a.digest, "approve", "vetted")
	a.servable = true

	b := push("quarantined", gatedRepo+":b")
	b.denial = words(quarantined, b.digest)

	c := push("rejected", gatedRepo+":c")
	decide(t, in, c.digest, "reject", "ships a cryptominer")
	c.denial = []string{"is rejected", "ships a cryptominer", "will not be served"}

	d := push("revoked", gatedRepo+":d")
	decide(t, in, d.digest, "approve", "vetted")
	decide(t, in, d.digest, "revoke", "signing key leaked")
	d.denial = []string{"is revoked", "signing key leaked", "will not be served"}

	// The API refuses lifetimes ≤ 0, so an approval that has run out is made in the store.
	e := push("expired", gatedRepo+":e")
	past := time.Now().Add(-time.Hour)
	if _, err := in.Server.Store.Transition(context.Background(), e.digest, store.Approved, "admin", "vetted for a day", &past); err != nil {
		t.Fatal(err)
	}
	e.denial = []string{"approval expired at", "airlock approve " + e.digest, "--reason"}

	// An approved index: its children are servable through it, in its repository only.
	pushIndex := func(tag string) (v1.ImageIndex, subject, []subject) {
		idx, err := random.Index(256, 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteIndex(in.Ref(t, gatedRepo+":"+tag), idx, servertest.Auth("admin", admin)); err != nil {
			t.Fatal(err)
		}
		raw, _ := idx.RawManifest()
		dg, _ := idx.Digest()
		im, _ := idx.IndexManifest()
		var children []subject
		for i, desc := range im.Manifests {
			img, err := idx.Image(desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			ch := subject{name: fmt.Sprintf("child %d of %s", i, tag), repo: gatedRepo}
			ch.manifest, ch.mediaType, ch.digest, ch.config, ch.layer = imageParts(t, img)
			children = append(children, ch)
		}
		// An index has no blobs of its own: its rows read the first child's.
		s := subject{name: tag, repo: gatedRepo, tag: tag, digest: dg.String(), mediaType: string(im.MediaType), manifest: raw,
			config: children[0].config, layer: children[0].layer}
		return idx, s, children
	}
	ixIdx, ix, ixChildren := pushIndex("ix")
	decide(t, in, ix.digest, "approve", "vetted index")
	ix.name, ix.servable = "approved index", true
	for i := range ixChildren {
		ixChildren[i].name = fmt.Sprintf("child %d of approved index", i)
		ixChildren[i].servable = true
		img, _ := in.Server.Store.Image(context.Background(), ixChildren[i].digest)
		if img.State != store.Quarantined {
			t.Fatalf("child %s of the approved index is %s itself; it must be servable only through the index", ixChildren[i].digest, img.State)
		}
	}
	// The same child pushed on its own to another gated repository: not approved there.
	childImg, err := ixIdx.Image(v1.Hash{Algorithm: "sha256", Hex: strings.TrimPrefix(ixChildren[0].digest, "sha256:")})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(in.Ref(t, otherRepo+":c1"), childImg, servertest.Auth("admin", admin)); err != nil {
		t.Fatal(err)
	}
	elsewhere := ixChildren[0]
	elsewhere.name, elsewhere.repo, elsewhere.tag, elsewhere.servable = "child of approved index, in another repository", otherRepo, "c1", false
	elsewhere.denial = words(quarantined, elsewhere.digest)

	_, iq, iqChildren := pushIndex("iq")
	iq.name, iq.denial = "quarantined index", words(quarantined, iq.digest)
	iqChild := iqChildren[0]
	iqChild.name, iqChild.denial = "child of quarantined index", words(quarantined, iqChild.digest)

	// Referrers of a: one approved, one quarantined; and one of b.
	r1 := pushArtifact(t, in, gatedRepo, a, "sbom-approved")
	decide(t, in, r1.digest, "approve", "vetted sbom")
	r1.name, r1.servable = "approved referrer", true
	r2 := pushArtifact(t, in, gatedRepo, a, "sbom-quarantined")
	r2.name, r2.denial = "quarantined referrer", words(quarantined, r2.digest)
	r3 := pushArtifact(t, in, gatedRepo, b, "sbom-of-quarantined")
	r3.name, r3.denial = "referrer of quarantined image", words(quarantined, r3.digest)
	a.referrers = []referrer{{r1.digest, true}, {r2.digest, false}}
	b.referrers = []referrer{{r3.digest, false}}

	u := push("quarantined, in an allow-unvetted repository", unvettedRepo+":u")

	f.subjects = []subject{a, b, c, d, e, ix, ixChildren[0], ixChildren[1], elsewhere, iq, iqChild, r1, r2, r3, u}

	f.unvettedBytes = map[string][][]byte{}
	f.unvettedDigests = map[string]map[string]bool{}
	for _, s := range f.subjects {
		if s.servable || s.unvetted() {
			continue
		}
		if f.unvettedDigests[s.repo] == nil {
			f.unvettedDigests[s.repo] = map[string]bool{}
		}
		f.unvettedBytes[s.repo] = append(f.unvettedBytes[s.repo], s.manifest)
		f.unvettedDigests[s.repo][s.digest] = true
		if s.name != "quarantined index" { // an index row reads its child's blobs; see iqChild
			f.unvettedBytes[s.repo] = append(f.unvettedBytes[s.repo], s.config.content, s.layer.content)
			f.unvettedDigests[s.repo][s.config.digest] = true
			f.unvettedDigests[s.repo][s.layer.digest] = true
		}
	}
	return f
}

type exchange struct {
	caller caller
	req    servertest.Request
	resp   servertest.Response
}

func TestGateMatrix(t *testing.T) {
	f := setupGate(t)
	var log []exchange
	do := func(c caller, r servertest.Request) servertest.Response {
		resp := f.in.Do(t, r)
		log = append(log, exchange{c, r, resp})
		return resp
	}
	cases := 0
	for _, s := range f.subjects {
		for _, e := range endpoints {
			for _, c := range f.callers {
				req, ok := e.request(s, c)
				if !ok {
					continue
				}
				cases++
				want := expect(c, e, s)
				resp := do(c, req)
				where := fmt.Sprintf("%s / %s / %s (%s %s)", s.name, e, c.role, req.Method, req.Path)
				checkAnswer(t, where, req, resp, want)
				if resp.Status != want.status || resp.Status >= 300 {
					continue
				}
				switch e {
				case manifestGetTag, manifestGetDigest:
					if !bytes.Equal(resp.Body, s.manifest) {
						t.Errorf("%s: body is not the manifest", where)
					}
				case manifestHeadTag, manifestHeadDigest:
					if got := resp.Header.Get("Docker-Content-Digest"); got != s.digest {
						t.Errorf("%s: Docker-Content-Digest = %q, want %s", where, got, s.digest)
					}
				case configGet:
					if !bytes.Equal(resp.Body, s.config.content) {
						t.Errorf("%s: body is not the config", where)
					}
				case layerGet:
					if !bytes.Equal(resp.Body, s.layer.content) {
						t.Errorf("%s: body is not the layer", where)
					}
				case configHead, layerHead:
					if resp.Header.Get("Docker-Content-Digest") == "" {
						t.Errorf("%s: no Docker-Content-Digest", where)
					}
				case referrersGet:
					checkReferrers(t, where, resp, wantReferrers(c, s))
				case mountPost:
					if got := resp.Header.Get("Docker-Content-Digest"); got != s.layer.digest {
						t.Errorf("%s: mounted %q, want %s", where, got, s.layer.digest)
					}
				}
			}
		}
	}

	// Repository-level endpoints carry no content: every caller reads them
	// (the catalog needs a token even with anonymous pull).
	for _, c := range f.callers {
		for _, p := range []string{"/v2/", "/v2/_catalog", "/v2/" + gatedRepo + "/tags/list", "/v2/" + otherRepo + "/tags/list", "/v2/" + unvettedRepo + "/tags/list"} {
			cases++
			want := expectation{status: http.StatusOK}
			if p == "/v2/_catalog" && c.role == "anonymous" {
				want = expectation{status: http.StatusUnauthorized, code: "UNAUTHORIZED", words: []string{"authentication required"}}
			}
			req := servertest.Request{Method: http.MethodGet, Path: p, User: c.user, Token: c.token}
			resp := do(c, req)
			checkAnswer(t, fmt.Sprintf("%s / %s", p, c.role), req, resp, want)
			if resp.Status == http.StatusOK && strings.HasSuffix(p, "/tags/list") {
				var tl struct {
					Name string   `json:"name"`
					Tags []string `json:"tags"`
				}
				if err := json.Unmarshal(resp.Body, &tl); err != nil || "/v2/"+tl.Name+"/tags/list" != p || len(tl.Tags) == 0 {
					t.Errorf("%s as %s: tags list %s (%v)", p, c.role, resp.Body, err)
				}
			}
			if resp.Status == http.StatusOK && p == "/v2/_catalog" {
				for _, r := range []string{gatedRepo, otherRepo, unvettedRepo} {
					if !bytes.Contains(resp.Body, []byte(`"`+r+`"`)) {
						t.Errorf("catalog as %s does not list %s: %s", c.role, r, resp.Body)
					}
				}
			}
		}
	}
	t.Logf("gate matrix: %d cases (%d subjects × %d endpoints × %d roles, less tag endpoints of untagged subjects, plus repository-level endpoints)",
		cases, len(f.subjects), len(endpoints), len(f.callers))

	// The invariant, checked on every answer independently of expect: no
	// caller without the right to see unvetted content ever got it.
	for _, x := range log {
		if x.caller.bypasses() || x.resp.Status < 200 || x.resp.Status > 299 {
			continue
		}
		repo := repoOf(x.req.Path)
		for _, b := range f.unvettedBytes[repo] {
			if len(x.resp.Body) > 0 && bytes.Equal(x.resp.Body, b) {
				t.Errorf("INVARIANT: %s got unvetted content with %s %s (%d)", x.caller.role, x.req.Method, x.req.Path, x.resp.Status)
			}
		}
		if d := x.resp.Header.Get("Docker-Content-Digest"); f.unvettedDigests[repo][d] && x.req.Method != http.MethodPost {
			t.Errorf("INVARIANT: %s got %s of unvetted %s with %s %s", x.caller.role, x.resp.Header.Get("Content-Length"), d, x.req.Method, x.req.Path)
		}
		if strings.Contains(x.req.Path, "/referrers/") {
			for d := range f.unvettedDigests[repo] {
				if bytes.Contains(x.resp.Body, []byte(d)) {
					t.Errorf("INVARIANT: %s learned of unvetted referrer %s from %s", x.caller.role, d, x.req.Path)
				}
			}
		}
		if strings.Contains(x.req.Path, "/blobs/uploads/") && x.resp.Status == http.StatusCreated {
			// A mount copies the link, not the bytes: it must come from a repository where the blob is servable.
			q, _ := url.ParseQuery(x.req.Path[strings.Index(x.req.Path, "?")+1:])
			if f.unvettedDigests[q.Get("from")][q.Get("mount")] {
				t.Errorf("INVARIANT: %s mounted unvetted %s from %s", x.caller.role, q.Get("mount"), q.Get("from"))
			}
		}
	}

	t.Run("denials are audited and the chain verifies", func(t *testing.T) {
		ctx := context.Background()
		approver := f.in.Client(f.callers[3].token)
		es, err := approver.Audit(ctx, store.AuditFilter{Action: "request.denied", Subject: f.subjects[1].digest})
		if err != nil {
			t.Fatal(err)
		}
		actors := map[string]bool{}
		for _, e := range es {
			actors[e.Actor] = true
			var detail map[string]string
			if err := json.Unmarshal(e.Detail, &detail); err != nil || detail["repository"] != gatedRepo || !strings.Contains(detail["reason"], "quarantined") {
				t.Errorf("denial detail %s (%v)", e.Detail, err)
			}
		}
		for _, who := range []string{"anonymous", "puller", "pusher", "approver"} {
			if !actors[who] {
				t.Errorf("no request.denied entry by %s for %s; entries by %v", who, f.subjects[1].digest, actors)
			}
		}
		for _, who := range []string{"scanner", "admin"} {
			if actors[who] {
				t.Errorf("request.denied entry by %s, who may read everything", who)
			}
		}
		v, err := approver.VerifyAudit(ctx)
		if err != nil || !v.OK || v.Entries == 0 {
			t.Errorf("audit verify = %+v, %v", v, err)
		}
		// A puller may not read the audit log.
		_, err = f.in.Client(f.callers[1].token).Audit(ctx, store.AuditFilter{})
		var se *server.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusForbidden {
			t.Errorf("puller reads the audit log: %v", err)
		}
	})
}

func repoOf(p string) string {
	p = strings.TrimPrefix(p, "/v2/")
	if i := strings.Index(p, "?"); i >= 0 {
		p = p[:i]
	}
	for _, sep := range []string{"/manifests/", "/blobs/", "/referrers/", "/tags/"} {
		if i := strings.LastIndex(p, sep); i >= 0 {
			return p[:i]
		}
	}
	return ""
}

func checkAnswer(t *testing.T, where string, req servertest.Request, resp servertest.Response, want expectation) {
	t.Helper()
	if resp.Status != want.status {
		t.Errorf("%s: status %d, want %d; body %s", where, resp.Status, want.status, resp.Body)
		return
	}
	if resp.Status == http.StatusNotFound && req.Method == http.MethodHead {
		// The pusher's probe: nothing about the content, not even its digest or size.
		if resp.Header.Get("Docker-Content-Digest") != "" || resp.Header.Get("Content-Length") != "0" {
			t.Errorf("%s: 404 discloses Docker-Content-Digest %q, Content-Length %q", where, resp.Header.Get("Docker-Content-Digest"), resp.Header.Get("Content-Length"))
		}
	}
	if want.code == "" || req.Method == http.MethodHead {
		return
	}
	e := resp.Error()
	if e.Code != want.code {
		t.Errorf("%s: error code %q, want %s; body %s", where, e.Code, want.code, resp.Body)
	}
	for _, w := range want.words {
		if !strings.Contains(e.Message, w) {
			t.Errorf("%s: message %q does not say %q", where, e.Message, w)
		}
	}
	if want.status == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer realm=") {
		t.Errorf("%s: 401 without a Bearer challenge: %q", where, resp.Header.Get("WWW-Authenticate"))
	}
}

func checkReferrers(t *testing.T, where string, resp servertest.Response, want []string) {
	t.Helper()
	var idx struct {
		MediaType string `json:"mediaType"`
		Manifests []struct {
			Digest       string            `json:"digest"`
			ArtifactType string            `json:"artifactType"`
			Annotations  map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(resp.Body, &idx); err != nil {
		t.Errorf("%s: referrers body %s: %v", where, resp.Body, err)
		return
	}
	got := []string{}
	for _, m := range idx.Manifests {
		if m.ArtifactType == attest.MediaTypeDSSE {
			continue // Airlock's own approval attestation of an approved digest
		}
		got = append(got, m.Digest)
		if m.ArtifactType != "application/vnd.example.sbom+json" || m.Annotations["name"] == "" {
			t.Errorf("%s: referrer %s has artifactType %q, annotations %v", where, m.Digest, m.ArtifactType, m.Annotations)
		}
	}
	sort.Strings(got)
	if idx.MediaType != "application/vnd.oci.image.index.v1+json" || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: referrers %s %v, want %v", where, idx.MediaType, got, want)
	}
}

// A mount whose parameters travel in a form-encoded body is read by
// distribution from the body; the gate must check those, not the query.
func TestGateMountParametersInBody(t *testing.T) {
	f := setupGateSmall(t)
	for _, tc := range []struct {
		name, query, body string
	}{
		{"body only", "", url.Values{"mount": {f.b.layer.digest}, "from": {gatedRepo}}.Encode()},
		{"query names an unvetted source, body the gated one", url.Values{"mount": {f.b.layer.digest}, "from": {unvettedRepo}}.Encode(),
			url.Values{"mount": {f.b.layer.digest}, "from": {gatedRepo}}.Encode()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.in.Do(t, servertest.Request{Method: http.MethodPost, Path: "/v2/" + unvettedRepo + "/blobs/uploads/?" + tc.query,
				User: "pusher", Token: f.pusher, Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, Body: []byte(tc.body)})
			if resp.Status != http.StatusForbidden || resp.Error().Code != "DENIED" || !strings.Contains(resp.Error().Message, "cannot mount") {
				t.Errorf("mount of quarantined blob via form body: %d %s", resp.Status, resp.Body)
			}
			get := f.in.Do(t, servertest.Request{Method: http.MethodGet, Path: "/v2/" + unvettedRepo + "/blobs/" + f.b.layer.digest, User: "puller", Token: f.puller})
			if get.Status == http.StatusOK || bytes.Equal(get.Body, f.b.layer.content) {
				t.Fatalf("puller reads the quarantined layer from %s after a mount: %d", unvettedRepo, get.Status)
			}
		})
	}
}

type smallGate struct {
	in             *servertest.Instance
	a, b           subject
	puller, pusher string
}

// setupGateSmall: a server with an approved image a (gate/app:a) and a quarantined b (gate/app:b).
func setupGateSmall(t *testing.T, mutate ...func(*config.Config)) *smallGate {
	in := servertest.Start(t, func(c *config.Config) {
		c.AllowUnvetted = []string{"cache/**"}
		for _, m := range mutate {
			m(c)
		}
	})
	g := &smallGate{in: in, puller: in.Token(t, "puller", store.RolePuller), pusher: in.Token(t, "pusher", store.RolePusher)}
	for _, x := range []struct {
		s   *subject
		tag string
	}{{&g.a, "a"}, {&g.b, "b"}} {
		img := in.PushRandom(t, gatedRepo+":"+x.tag, "admin", in.AdminToken, 128, 1)
		x.s.repo, x.s.tag = gatedRepo, x.tag
		x.s.manifest, x.s.mediaType, x.s.digest, x.s.config, x.s.layer = imageParts(t, img)
	}
	decide(t, in, g.a.digest, "approve", "vetted")
	return g
}

func TestGateAnonymousPullOff(t *testing.T) {
	g := setupGateSmall(t)
	for _, p := range []string{
		"/v2/", "/v2/_catalog", "/v2/" + gatedRepo + "/tags/list",
		"/v2/" + gatedRepo + "/manifests/a", "/v2/" + gatedRepo + "/manifests/" + g.a.digest,
		"/v2/" + gatedRepo + "/blobs/" + g.a.layer.digest, "/v2/" + gatedRepo + "/referrers/" + g.a.digest,
	} {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			resp := g.in.Do(t, servertest.Request{Method: m, Path: p})
			want := expectation{status: http.StatusUnauthorized, code: "UNAUTHORIZED", words: []string{"authentication required"}}
			checkAnswer(t, m+" "+p+" anonymous", servertest.Request{Method: m, Path: p}, resp, want)
		}
	}
	// A wrong token is refused, not treated as anonymous.
	for _, creds := range []servertest.Request{{User: "puller", Token: "alk_wrong"}, {Token: "alk_wrong"}, {Token: "not.a-token"}, {User: "admin", Token: g.puller}} {
		creds.Method, creds.Path = http.MethodGet, "/v2/"
		resp := g.in.Do(t, creds)
		checkAnswer(t, "bad credentials "+creds.User, creds, resp, expectation{status: http.StatusUnauthorized, code: "UNAUTHORIZED", words: []string{"authentication failed"}})
	}
}

func TestGateAnonymousPullOn(t *testing.T) {
	g := setupGateSmall(t, func(c *config.Config) { c.AnonymousPull = true })
	get := func(p string) servertest.Response {
		return g.in.Do(t, servertest.Request{Method: http.MethodGet, Path: p, Header: map[string]string{"Accept": manifestAccept}})
	}
	if r := get("/v2/" + gatedRepo + "/manifests/a"); r.Status != http.StatusOK || !bytes.Equal(r.Body, g.a.manifest) {
		t.Errorf("anonymous pull of approved a: %d", r.Status)
	}
	if r := get("/v2/" + gatedRepo + "/blobs/" + g.a.layer.digest); r.Status != http.StatusOK || !bytes.Equal(r.Body, g.a.layer.content) {
		t.Errorf("anonymous pull of approved layer: %d", r.Status)
	}
	for _, p := range []string{"/v2/" + gatedRepo + "/manifests/b", "/v2/" + gatedRepo + "/blobs/" + g.b.layer.digest} {
		if r := get(p); r.Status != http.StatusForbidden || r.Error().Code != "DENIED" {
			t.Errorf("anonymous GET %s: %d %s", p, r.Status, r.Body)
		}
	}
	// The token endpoint issues an anonymous bearer token that pulls the same.
	tok := g.in.Do(t, servertest.Request{Method: http.MethodGet, Path: "/token?service=airlock&scope=repository:" + gatedRepo + ":pull"})
	var tr struct {
		Token string `json:"token"`
	}
	if tok.Status != http.StatusOK || json.Unmarshal(tok.Body, &tr) != nil || tr.Token == "" {
		t.Fatalf("anonymous token: %d %s", tok.Status, tok.Body)
	}
	for p, want := range map[string]int{
		"/v2/" + gatedRepo + "/manifests/a": http.StatusOK, "/v2/" + gatedRepo + "/manifests/b": http.StatusForbidden,
	} {
		if r := g.in.Do(t, servertest.Request{Method: http.MethodGet, Path: p, Token: tr.Token, Header: map[string]string{"Accept": manifestAccept}}); r.Status != want {
			t.Errorf("anonymous bearer GET %s: %d, want %d", p, r.Status, want)
		}
	}
	// Anonymous callers never write.
	for _, r := range []servertest.Request{
		{Method: http.MethodPost, Path: "/v2/" + gatedRepo + "/blobs/uploads/"},
		{Method: http.MethodPut, Path: "/v2/" + gatedRepo + "/manifests/x", Body: g.a.manifest, Header: map[string]string{"Content-Type": g.a.mediaType}},
		{Method: http.MethodDelete, Path: "/v2/" + gatedRepo + "/manifests/" + g.a.digest},
		{Method: http.MethodPost, Path: "/v2/cache/x/blobs/uploads/"},
	} {
		if resp := g.in.Do(t, r); resp.Status != http.StatusUnauthorized {
			t.Errorf("anonymous %s %s: %d %s", r.Method, r.Path, resp.Status, resp.Body)
		}
	}
	// With a bearer token that says anonymous, writes are denied.
	for _, r := range []servertest.Request{
		{Method: http.MethodPost, Path: "/v2/" + gatedRepo + "/blobs/uploads/", Token: tr.Token},
		{Method: http.MethodPut, Path: "/v2/" + gatedRepo + "/manifests/x", Token: tr.Token, Body: g.a.manifest, Header: map[string]string{"Content-Type": g.a.mediaType}},
	} {
		if resp := g.in.Do(t, r); resp.Status != http.StatusForbidden || !strings.Contains(resp.Error().Message, `"anonymous" cannot push`) {
			t.Errorf("anonymous bearer %s %s: %d %s", r.Method, r.Path, resp.Status, resp.Body)
		}
	}
}

func TestGateTagImmutability(t *testing.T) {
	g := setupGateSmall(t)
	in := g.in
	tagPoints := func(repo, tag string) string {
		r := in.Do(t, servertest.Request{Method: http.MethodHead, Path: "/v2/" + repo + "/manifests/" + tag, User: "admin", Token: in.AdminToken, Header: map[string]string{"Accept": manifestAccept}})
		return r.Header.Get("Docker-Content-Digest")
	}
	// b's manifest to tag a (approved): refused, whoever pushes.
	for _, who := range []struct{ user, token string }{{"pusher", g.pusher}, {"admin", in.AdminToken}} {
		r := in.PutManifest(t, gatedRepo, "a", who.user, who.token, g.b.mediaType, g.b.manifest)
		if r.Status != http.StatusForbidden || r.Error().Code != "DENIED" {
			t.Fatalf("%s moves approved tag: %d %s", who.user, r.Status, r.Body)
		}
		for _, w := range []string{"immutable", gatedRepo + ":a", g.a.digest, "revoke"} {
			if !strings.Contains(r.Error().Message, w) {
				t.Errorf("immutable-tag message %q does not say %q", r.Error().Message, w)
			}
		}
	}
	if got := tagPoints(gatedRepo, "a"); got != g.a.digest {
		t.Fatalf("tag a points to %s after refused pushes, want %s", got, g.a.digest)
	}
	es, err := in.Server.Store.AuditEntries(context.Background(), store.AuditFilter{Action: "request.denied", Subject: g.a.digest})
	if err != nil || len(es) != 2 {
		t.Errorf("refused tag moves audited: %d entries, %v", len(es), err)
	}
	// Pushing the same manifest again to its tag is fine.
	if r := in.PutManifest(t, gatedRepo, "a", "pusher", g.pusher, g.a.mediaType, g.a.manifest); r.Status != http.StatusCreated {
		t.Errorf("re-push of a to its own tag: %d %s", r.Status, r.Body)
	}
	// A tag of a quarantined digest moves freely.
	if r := in.PutManifest(t, gatedRepo, "b", "pusher", g.pusher, g.a.mediaType, g.a.manifest); r.Status != http.StatusCreated {
		t.Errorf("moving tag b (quarantined) to a: %d %s", r.Status, r.Body)
	}
	// In an allow-unvetted repository tags are mutable even on approved digests.
	for _, bl := range []blob{g.a.config, g.a.layer, g.b.config, g.b.layer} {
		in.PushBlob(t, "cache/x", "pusher", g.pusher, bl.content)
	}
	if r := in.PutManifest(t, "cache/x", "v1", "pusher", g.pusher, g.a.mediaType, g.a.manifest); r.Status != http.StatusCreated {
		t.Fatalf("push a to cache/x:v1: %d %s", r.Status, r.Body)
	}
	if r := in.PutManifest(t, "cache/x", "v1", "pusher", g.pusher, g.b.mediaType, g.b.manifest); r.Status != http.StatusCreated {
		t.Errorf("moving cache/x:v1 off approved a: %d %s", r.Status, r.Body)
	}
	// After a is revoked, tag a may move.
	decide(t, in, g.a.digest, "revoke", "superseded")
	if r := in.PutManifest(t, gatedRepo, "a", "pusher", g.pusher, g.b.mediaType, g.b.manifest); r.Status != http.StatusCreated {
		t.Fatalf("moving tag a after revoke: %d %s", r.Status, r.Body)
	}
	if got := tagPoints(gatedRepo, "a"); got != g.b.digest {
		t.Errorf("tag a points to %s, want %s", got, g.b.digest)
	}
}

func TestGateDelete(t *testing.T) {
	g := setupGateSmall(t)
	in := g.in
	ctx := context.Background()
	for _, p := range []string{"/v2/" + gatedRepo + "/manifests/" + g.b.digest, "/v2/" + gatedRepo + "/manifests/b", "/v2/" + gatedRepo + "/blobs/" + g.b.layer.digest} {
		for _, who := range []struct{ user, token string }{{"pusher", g.pusher}, {"puller", g.puller}} {
			r := in.Do(t, servertest.Request{Method: http.MethodDelete, Path: p, User: who.user, Token: who.token})
			if r.Status != http.StatusForbidden || r.Error().Code != "DENIED" || !strings.Contains(r.Error().Message, "only an admin can delete") {
				t.Errorf("%s DELETE %s: %d %s", who.user, p, r.Status, r.Body)
			}
		}
	}
	if r := in.Do(t, servertest.Request{Method: http.MethodHead, Path: "/v2/" + gatedRepo + "/manifests/b", User: "admin", Token: in.AdminToken, Header: map[string]string{"Accept": manifestAccept}}); r.Status != http.StatusOK {
		t.Fatalf("b is gone after refused deletes: %d", r.Status)
	}
	if r := in.Do(t, servertest.Request{Method: http.MethodDelete, Path: "/v2/" + gatedRepo + "/manifests/" + g.b.digest, User: "admin", Token: in.AdminToken}); r.Status != http.StatusAccepted {
		t.Fatalf("admin DELETE: %d %s", r.Status, r.Body)
	}
	if r := in.Do(t, servertest.Request{Method: http.MethodGet, Path: "/v2/" + gatedRepo + "/manifests/" + g.b.digest, User: "admin", Token: in.AdminToken, Header: map[string]string{"Accept": manifestAccept}}); r.Status != http.StatusNotFound || r.Error().Code != "MANIFEST_UNKNOWN" {
		t.Errorf("GET after delete: %d %s", r.Status, r.Body)
	}
	img, err := in.Server.Store.Image(ctx, g.b.digest)
	if err != nil {
		t.Fatalf("the record of a deleted manifest stays: %v", err)
	}
	if len(img.Repositories) != 0 {
		t.Errorf("deleted manifest still linked to %v", img.Repositories)
	}
	// In an allow-unvetted repository a pusher may delete.
	for _, bl := range []blob{g.a.config, g.a.layer} {
		in.PushBlob(t, "cache/x", "pusher", g.pusher, bl.content)
	}
	if r := in.PutManifest(t, "cache/x", "v1", "pusher", g.pusher, g.a.mediaType, g.a.manifest); r.Status != http.StatusCreated {
		t.Fatalf("push to cache/x: %d %s", r.Status, r.Body)
	}
	if r := in.Do(t, servertest.Request{Method: http.MethodDelete, Path: "/v2/cache/x/manifests/" + g.a.digest, User: "pusher", Token: g.pusher}); r.Status != http.StatusAccepted {
		t.Errorf("pusher DELETE in cache/x: %d %s", r.Status, r.Body)
	}
}

func TestGateRevokedTokenStopsWorking(t *testing.T) {
	g := setupGateSmall(t)
	in := g.in
	ctx := context.Background()
	tr, err := in.Client(in.AdminToken).CreateToken(ctx, server.TokenRequest{Name: "ci", Role: store.RolePuller})
	if err != nil {
		t.Fatal(err)
	}
	basic := servertest.Request{Method: http.MethodGet, Path: "/v2/" + gatedRepo + "/manifests/a", User: "ci", Token: tr.Token, Header: map[string]string{"Accept": manifestAccept}}
	bearer := basic
	bearer.User = ""
	// Use it once each way, so the authenticator has it cached.
	for _, r := range []servertest.Request{basic, bearer} {
		if resp := in.Do(t, r); resp.Status != http.StatusOK {
			t.Fatalf("new token: %d %s", resp.Status, resp.Body)
		}
	}
	if name, _, err := in.Client(tr.Token).WhoAmI(ctx); err != nil || name != "ci" {
		t.Fatalf("whoami: %q %v", name, err)
	}
	revoke := in.Do(t, servertest.Request{Method: http.MethodDelete, Path: "/api/v1/tokens/ci", Token: in.AdminToken})
	if revoke.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", revoke.Status, revoke.Body)
	}
	for _, r := range []servertest.Request{basic, bearer} {
		if resp := in.Do(t, r); resp.Status != http.StatusUnauthorized || resp.Error().Code != "UNAUTHORIZED" {
			t.Errorf("revoked token (user %q): %d %s", r.User, resp.Status, resp.Body)
		}
	}
	var se *server.StatusError
	if _, _, err := in.Client(tr.Token).WhoAmI(ctx); !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
		t.Errorf("API with revoked token: %v", err)
	}
	if tok := in.Do(t, servertest.Request{Method: http.MethodGet, Path: "/token", User: "ci", Token: tr.Token}); tok.Status != http.StatusUnauthorized {
		t.Errorf("token endpoint issues a bearer token for a revoked token: %d", tok.Status)
	}
}
