package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestCrashDuringChunkedUpload kills `airlock serve` with SIGKILL while it is
// writing the second chunk of a chunked blob upload, starts it again on the
// same data directory, and checks that nothing vetted was lost and nothing
// unvetted leaked: the approved image still pulls with every digest verified,
// the half-written blob is not served to anyone, the interrupted upload
// session resumes correctly or fails cleanly, a completed blob without a
// manifest is still withheld from pullers, and the audit chain verifies.
func TestCrashDuringChunkedUpload(t *testing.T) {
	bin := servertest.Binary(t)
	data := t.TempDir()
	p := servertest.StartProcess(t, bin, data, "")
	ctx := context.Background()
	const repo = "app/crash"

	tok, err := server.NewClient(p.URL, p.AdminToken).CreateToken(ctx, server.TokenRequest{Name: "puller", Role: store.RolePuller})
	if err != nil {
		t.Fatal(err)
	}
	puller := tok.Token

	// An approved image: it must come through the crash whole.
	img, err := random.Image(256<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(p.Host+"/"+repo+":v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, servertest.Auth("admin", p.AdminToken)); err != nil {
		t.Fatal(err)
	}
	imgDigest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.NewClient(p.URL, p.AdminToken).Decide(ctx, imgDigest.String(), "approve", server.DecisionRequest{Reason: "crash test"}); err != nil {
		t.Fatal(err)
	}
	pullVerified(t, ref, "puller", puller, imgDigest.String())

	// A blob uploaded completely whose manifest was never pushed.
	orphan := randomBytes(t, 64<<10)
	orphanDigest := sha256Digest(orphan)
	reg := registryClient{t: t, base: p.URL, user: "admin", token: p.AdminToken}
	loc, _ := reg.startUpload(repo)
	if r := reg.do(http.MethodPut, withDigest(loc, orphanDigest), orphan, nil); r.status != http.StatusCreated {
		t.Fatalf("monolithic upload: %s", r)
	}
	withheld(t, reg, repo, orphanDigest, puller, orphan)

	// The chunked upload: the first chunk completes, the second is cut short
	// by SIGKILL once the server has written part of it to disk.
	blob := randomBytes(t, 3<<20)
	const first = 1 << 20
	loc, uuid := reg.startUpload(repo)
	r := reg.do(http.MethodPatch, loc, blob[:first], map[string]string{"Content-Range": fmt.Sprintf("0-%d", first-1), "Content-Type": "application/octet-stream"})
	if r.status != http.StatusAccepted {
		t.Fatalf("first chunk: %s", r)
	}
	if got := r.header.Get("Range"); got != fmt.Sprintf("0-%d", first-1) {
		t.Fatalf("after the first chunk Range = %q", got)
	}
	loc = reg.resolve(r.header.Get("Location"))

	partial := filepath.Join(data, "registry", "docker", "registry", "v2", "repositories", repo, "_uploads", uuid, "data")
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPatch, loc, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(blob) - first)
	req.SetBasicAuth("admin", p.AdminToken)
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", first, len(blob)-1))
	req.Header.Set("Content-Type", "application/octet-stream")
	sent := make(chan error, 1)
	go func() {
		resp, err := noKeepAlive.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("the interrupted chunk was answered %s", resp.Status)
		}
		sent <- err
	}()
	if _, err := pw.Write(blob[first : first+512<<10]); err != nil {
		t.Fatal(err)
	}
	onDisk := waitGrows(t, partial, first, sent)
	p.Kill(t)
	pw.CloseWithError(io.ErrUnexpectedEOF)
	if err := <-sent; err == nil {
		t.Fatal("the interrupted chunk did not fail")
	}
	t.Logf("killed the server with %d of %d bytes of the upload on disk", onDisk, len(blob))

	p = p.Restart(t)
	reg.base = p.URL

	// What was approved is still served whole.
	pullVerified(t, ref, "puller", puller, imgDigest.String())

	// Nothing of the interrupted upload is a blob, not even to an admin.
	for _, d := range []string{sha256Digest(blob), sha256Digest(blob[:first]), sha256Digest(blob[:onDisk])} {
		for _, m := range []string{http.MethodHead, http.MethodGet} {
			if r := reg.do(m, reg.blobURL(repo, d), nil, nil); r.status != http.StatusNotFound {
				t.Errorf("%s of %s after the crash: %s; want 404", m, d, r)
			}
		}
	}
	withheld(t, reg, repo, orphanDigest, puller, orphan)

	// The interrupted session: resume where the server says it stands, or
	// fail with a registry error; never a server error.
	completed := resumeOrRestart(t, &reg, repo, loc, blob, first)
	if completed {
		t.Log("the interrupted upload resumed")
	} else {
		t.Log("the interrupted upload failed cleanly; a new upload replaced it")
	}
	if r := reg.do(http.MethodGet, reg.blobURL(repo, sha256Digest(blob)), nil, nil); r.status != http.StatusOK || !bytes.Equal(r.body, blob) {
		t.Errorf("the re-uploaded blob: %d, %d bytes, equal %v", r.status, len(r.body), bytes.Equal(r.body, blob))
	}
	withheld(t, reg, repo, sha256Digest(blob), puller, blob)

	v, err := server.NewClient(p.URL, p.AdminToken).VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK || v.Entries == 0 {
		t.Errorf("audit after the crash: %+v", v)
	}
}

// resumeOrRestart finishes the interrupted upload at loc. It reports whether
// the old session itself completed; if the server refused it cleanly, the
// blob is uploaded anew. Any 5xx fails the test.
func resumeOrRestart(t *testing.T, reg *registryClient, repo, loc string, blob []byte, acked int) bool {
	t.Helper()
	d := sha256Digest(blob)
	// A client that only knows its last acknowledged offset retries from there.
	r := reg.do(http.MethodPatch, loc, blob[acked:], map[string]string{"Content-Range": fmt.Sprintf("%d-%d", acked, len(blob)-1), "Content-Type": "application/octet-stream", "Expect": "100-continue"})
	clean(t, "PATCH from the acknowledged offset", r)
	if r.status == http.StatusAccepted {
		r = reg.do(http.MethodPut, withDigest(reg.resolve(r.header.Get("Location")), d), nil, nil)
		if r.status != http.StatusCreated {
			t.Fatalf("PUT after resuming: %s", r)
		}
		return true
	}
	// A careful client asks where the upload stands and goes on from there.
	r = reg.do(http.MethodGet, loc, nil, nil)
	clean(t, "GET upload status", r)
	if r.status == http.StatusNoContent {
		var start, end int
		if _, err := fmt.Sscanf(r.header.Get("Range"), "%d-%d", &start, &end); err != nil || start != 0 || end >= len(blob) {
			t.Fatalf("upload status Range %q", r.header.Get("Range"))
		}
		next := reg.resolve(r.header.Get("Location"))
		r = reg.do(http.MethodPatch, next, blob[end+1:], map[string]string{"Content-Range": fmt.Sprintf("%d-%d", end+1, len(blob)-1), "Content-Type": "application/octet-stream", "Expect": "100-continue"})
		if r.status != http.StatusAccepted {
			t.Fatalf("PATCH from the offset the server reported (%d): %s", end+1, r)
		}
		r = reg.do(http.MethodPut, withDigest(reg.resolve(r.header.Get("Location")), d), nil, nil)
		if r.status != http.StatusCreated {
			t.Fatalf("PUT after resuming from the reported offset: %s", r)
		}
		return true
	}
	fresh, _ := reg.startUpload(repo)
	if r := reg.do(http.MethodPut, withDigest(fresh, d), blob, nil); r.status != http.StatusCreated {
		t.Fatalf("new upload after the crash: %s", r)
	}
	return false
}

// clean fails the test on a server error, and on a refusal that is not a
// registry error body.
func clean(t *testing.T, what string, r answer) {
	t.Helper()
	if r.status >= 500 {
		t.Fatalf("%s after the crash: %s", what, r)
	}
	if r.status >= 400 {
		var e struct {
			Errors []struct{ Code string } `json:"errors"`
		}
		if err := json.Unmarshal(r.body, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code == "" {
			t.Fatalf("%s after the crash: a refusal without a registry error: %s", what, r)
		}
		t.Logf("%s after the crash: %d %s", what, r.status, e.Errors[0].Code)
	}
}

// withheld checks that blob d is stored (admin reads it back) but not
// served to a puller, because no approved manifest holds it.
func withheld(t *testing.T, admin registryClient, repo, d, puller string, content []byte) {
	t.Helper()
	if r := admin.do(http.MethodGet, admin.blobURL(repo, d), nil, nil); r.status != http.StatusOK || !bytes.Equal(r.body, content) {
		t.Fatalf("admin GET of stored blob %s: %d, %d bytes", d, r.status, len(r.body))
	}
	pc := registryClient{t: t, base: admin.base, user: "puller", token: puller}
	for _, m := range []string{http.MethodHead, http.MethodGet} {
		r := pc.do(m, pc.blobURL(repo, d), nil, nil)
		if r.status != http.StatusForbidden {
			t.Errorf("puller %s of blob %s outside any approved manifest: %s; want 403", m, d, r)
		}
		if bytes.Contains(r.body, content) {
			t.Errorf("puller %s of blob %s returned its content", m, d)
		}
		if m == http.MethodGet && !strings.Contains(string(r.body), "DENIED") {
			t.Errorf("puller GET of blob %s: %s; want DENIED", d, r)
		}
	}
}

// pullVerified pulls ref as user and checks the digest and size of the
// manifest, the config and every layer against the bytes received.
func pullVerified(t *testing.T, ref name.Reference, user, token, want string) {
	t.Helper()
	img, err := remote.Image(ref, servertest.Auth(user, token))
	if err != nil {
		t.Fatalf("pull %s as %s: %v", ref, user, err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if got := sha256Digest(raw); got != want {
		t.Fatalf("pulled manifest %s, want %s", got, want)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatalf("pull config of %s: %v", ref, err)
	}
	if got := sha256Digest(cfg); got != m.Config.Digest.String() || int64(len(cfg)) != m.Config.Size {
		t.Errorf("config is %s (%d bytes), manifest says %s (%d bytes)", got, len(cfg), m.Config.Digest, m.Config.Size)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != len(m.Layers) || len(layers) == 0 {
		t.Fatalf("%d layers, manifest lists %d", len(layers), len(m.Layers))
	}
	for i, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("pull layer %d of %s: %v", i, ref, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read layer %d of %s: %v", i, ref, err)
		}
		if got := sha256Digest(b); got != m.Layers[i].Digest.String() || int64(len(b)) != m.Layers[i].Size {
			t.Errorf("layer %d is %s (%d bytes), manifest says %s (%d bytes)", i, got, len(b), m.Layers[i].Digest, m.Layers[i].Size)
		}
	}
}

// noKeepAlive never reuses a connection, so no request lands on a
// connection to a server that was killed. It honours Expect: 100-continue:
// a server that refuses a chunk without reading it closes the connection,
// and a client still sending the chunk would see a reset, not the answer.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, ExpectContinueTimeout: 30 * time.Second}}

// registryClient makes raw distribution API requests with Basic auth.
type registryClient struct {
	t           *testing.T
	base        string
	user, token string
}

type answer struct {
	method, url string
	status      int
	header      http.Header
	body        []byte
}

func (a answer) String() string {
	body := string(a.body)
	if len(body) > 512 {
		body = body[:512] + "…"
	}
	return fmt.Sprintf("%s %s: %d %s", a.method, a.url, a.status, body)
}

func (c *registryClient) do(method, u string, body []byte, header map[string]string) answer {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.SetBasicAuth(c.user, c.token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read answer: %v", method, u, err)
	}
	return answer{method: method, url: u, status: resp.StatusCode, header: resp.Header, body: b}
}

// startUpload opens an upload session and returns its URL and id.
func (c *registryClient) startUpload(repo string) (loc, uuid string) {
	c.t.Helper()
	r := c.do(http.MethodPost, c.base+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	if r.status != http.StatusAccepted {
		c.t.Fatalf("start upload: %s", r)
	}
	uuid = r.header.Get("Docker-Upload-UUID")
	if uuid == "" {
		c.t.Fatalf("start upload: no Docker-Upload-UUID: %s", r)
	}
	return c.resolve(r.header.Get("Location")), uuid
}

// resolve turns a Location header into an absolute URL on this server.
func (c *registryClient) resolve(loc string) string {
	c.t.Helper()
	if loc == "" {
		c.t.Fatal("answer without Location")
	}
	base, err := url.Parse(c.base + "/")
	if err != nil {
		c.t.Fatal(err)
	}
	u, err := base.Parse(loc)
	if err != nil {
		c.t.Fatal(err)
	}
	return u.String()
}

func (c *registryClient) blobURL(repo, d string) string {
	return c.base + "/v2/" + repo + "/blobs/" + d
}

func withDigest(loc, d string) string {
	if strings.Contains(loc, "?") {
		return loc + "&digest=" + url.QueryEscape(d)
	}
	return loc + "?digest=" + url.QueryEscape(d)
}

// waitGrows waits until the file at path is larger than size (the server has
// written part of the chunk in flight) and returns its size. It gives up if the
// request ends first; the bound only keeps a stuck server from hanging the run.
func waitGrows(t *testing.T, path string, size int, sent <-chan error) int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-sent:
			t.Fatalf("the second chunk ended before the crash: %v", err)
		default:
		}
		if fi, err := os.Stat(path); err == nil && fi.Size() > int64(size) {
			return int(fi.Size())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s never grew past %d bytes", path, size)
	return 0
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Digest(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}
