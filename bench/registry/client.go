package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/host"
)

// Repositories of the run. openRepo is --allow-unvetted on the airlock server.
const (
	distRepo  = "bench/pull"
	gatedRepo = "bench/gated"
	openRepo  = "bench/open"
	pullTag   = "v1"

	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"
	acceptManifests   = mediaTypeManifest + ", application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"
)

// credential authenticates one client the way registry clients do: a bearer
// token fetched once from /token with Basic auth (refreshed before it
// expires, never inside a timed loop), or Basic on every request.
type credential struct {
	base, user, secret string
	basic              bool
	token              string // bearer token, or the whole Basic header value
	expires            time.Time
}

// basicCredential sends the token as Basic password on every request.
func basicCredential(base, user, secret string) *credential {
	req := &http.Request{Header: http.Header{}}
	req.SetBasicAuth(user, secret)
	return &credential{base: base, user: user, secret: secret, basic: true, token: req.Header.Get("Authorization")}
}

// header is the Authorization value; for a bearer credential call fresh first.
func (c *credential) header() string {
	switch {
	case c == nil:
		return ""
	case c.basic:
		return c.token
	}
	return "Bearer " + c.token
}

// fresh makes sure a bearer token stays valid for the next few minutes.
func (c *credential) fresh(ctx context.Context, hc *http.Client) error {
	if c == nil || c.basic || time.Until(c.expires) > 3*time.Minute {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/token?service=airlock", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.user, c.secret)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("token for %s: %w", c.user, err)
	}
	defer resp.Body.Close()
	var body struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token for %s: %s", c.user, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Token == "" {
		return fmt.Errorf("token for %s: unreadable answer (%v)", c.user, err)
	}
	c.token = body.Token
	c.expires = time.Now().Add(time.Duration(body.ExpiresIn) * time.Second)
	return nil
}

// target is one column of the table: a server, a repository and its clients' credentials.
type target struct {
	key   string // distribution, airlock-off, airlock-on
	label string
	srv   *server
	repo  string
	pull  *credential // nil: no authentication (distribution)
	basic *credential // the puller sending Basic on every request
	push  *credential
	hc    *http.Client
}

func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
		ReadBufferSize:      256 << 10,
		WriteBufferSize:     256 << 10,
	}}
}

func targetLabels(ts []*target) map[string]string {
	m := map[string]string{}
	for _, t := range ts {
		m[t.key] = t.label
	}
	return m
}

// image is the pulled image: a JSON config, one random layer and its manifest.
type image struct {
	layer          []byte
	layerDigest    string
	config         []byte
	configDigest   string
	manifest       []byte
	manifestDigest string
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func newImage(size int64) (*image, error) {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, err
	}
	layer := make([]byte, size)
	_, _ = mrand.NewChaCha8(seed).Read(layer)
	img := &image{layer: layer, layerDigest: digestOf(layer)}
	img.config, _ = json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{img.layerDigest}},
	})
	img.configDigest = digestOf(img.config)
	img.manifest = img.manifestFor(img.layerDigest, size, nil)
	img.manifestDigest = digestOf(img.manifest)
	return img, nil
}

func (img *image) manifestFor(layerDigest string, layerSize int64, annotations map[string]string) []byte {
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
	}
	b, _ := json.Marshal(struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Config        desc              `json:"config"`
		Layers        []desc            `json:"layers"`
		Annotations   map[string]string `json:"annotations,omitempty"`
	}{2, mediaTypeManifest, desc{mediaTypeConfig, img.configDigest, int64(len(img.config))},
		[]desc{{mediaTypeLayer, layerDigest, layerSize}}, annotations})
	return b
}

// do sends one request with cred's Authorization and returns the response.
func (t *target) do(ctx context.Context, cred *credential, method, u string, body io.Reader, size int64, hdr map[string]string) (*http.Response, error) {
	if !strings.HasPrefix(u, "http") {
		u = t.srv.url + u
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	if h := cred.header(); h != "" {
		req.Header.Set("Authorization", h)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return t.hc.Do(req)
}

// expect checks the status and drains the body so the connection is reused.
func expect(resp *http.Response, err error, what string, want ...int) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	for _, w := range want {
		if resp.StatusCode == w {
			_, _ = io.Copy(io.Discard, resp.Body)
			return nil
		}
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
	return fmt.Errorf("%s: %s: %s", what, resp.Status, strings.TrimSpace(string(b)))
}

// pushBlob uploads data monolithically: POST to start, PUT with the body and digest.
func (t *target) pushBlob(ctx context.Context, dgst string, data []byte) error {
	resp, err := t.do(ctx, t.push, http.MethodPost, "/v2/"+t.repo+"/blobs/uploads/", nil, 0, nil)
	if err != nil {
		return fmt.Errorf("%s: start upload: %w", t.label, err)
	}
	loc := resp.Header.Get("Location")
	if err := expect(resp, nil, t.label+": start upload", http.StatusAccepted); err != nil {
		return err
	}
	base, _ := url.Parse(t.srv.url)
	lu, err := base.Parse(loc)
	if err != nil || loc == "" {
		return fmt.Errorf("%s: start upload: bad Location %q", t.label, loc)
	}
	q := lu.Query()
	q.Set("digest", dgst)
	lu.RawQuery = q.Encode()
	resp, err = t.do(ctx, t.push, http.MethodPut, lu.String(), bytes.NewReader(data), int64(len(data)),
		map[string]string{"Content-Type": "application/octet-stream"})
	return expect(resp, err, t.label+": finish upload", http.StatusCreated)
}

func (t *target) putManifest(ctx context.Context, ref string, body []byte) error {
	resp, err := t.do(ctx, t.push, http.MethodPut, "/v2/"+t.repo+"/manifests/"+ref, bytes.NewReader(body), int64(len(body)),
		map[string]string{"Content-Type": mediaTypeManifest})
	return expect(resp, err, t.label+": put manifest "+ref, http.StatusCreated)
}

// pullBlob reads a blob to the end and returns the bytes read; with verify it
// also checks the digest (hashing would otherwise dominate the client's CPU).
func (t *target) pullBlob(ctx context.Context, cred *credential, dgst string, buf []byte, verify bool) (int64, error) {
	resp, err := t.do(ctx, cred, http.MethodGet, "/v2/"+t.repo+"/blobs/"+dgst, nil, 0, nil)
	if err != nil {
		return 0, fmt.Errorf("%s: pull blob: %w", t.label, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, expect(resp, nil, t.label+": pull blob", http.StatusOK)
	}
	var h hash.Hash
	var r io.Reader = resp.Body
	if verify {
		h = sha256.New()
		r = io.TeeReader(resp.Body, h)
	}
	var n int64
	for {
		m, err := r.Read(buf)
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, fmt.Errorf("%s: pull blob: %w", t.label, err)
		}
	}
	if verify {
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != dgst {
			return n, fmt.Errorf("%s: pulled blob has digest %s, want %s", t.label, got, dgst)
		}
	}
	return n, nil
}

// getManifest fetches one manifest and returns its body length.
func (t *target) getManifest(ctx context.Context, cred *credential, ref string) (int, error) {
	resp, err := t.do(ctx, cred, http.MethodGet, "/v2/"+t.repo+"/manifests/"+ref, nil, 0, map[string]string{"Accept": acceptManifests})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, expect(resp, nil, t.label+": get manifest "+ref, http.StatusOK)
	}
	b, err := io.ReadAll(resp.Body)
	return len(b), err
}

func (t *target) pushImage(ctx context.Context, img *image) error {
	if err := t.pushBlob(ctx, img.configDigest, img.config); err != nil {
		return err
	}
	if err := t.pushBlob(ctx, img.layerDigest, img.layer); err != nil {
		return err
	}
	return t.putManifest(ctx, pullTag, img.manifest)
}

// api calls airlock's JSON API as admin.
func api(ctx context.Context, al *server, admin, method, path string, in, out any) error {
	b, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, method, al.url+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// setup pushes the image to every target, makes the puller token, checks that
// the gate really refuses the unapproved image, then approves it.
func setup(ctx context.Context, dist, al *server, img *image) ([]*target, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	b, err := os.ReadFile(filepath.Join(al.data, "admin.token"))
	if err != nil {
		return nil, fmt.Errorf("airlock admin token: %w", err)
	}
	admin := strings.TrimSpace(string(b))
	var tok struct {
		Token string `json:"token"`
	}
	if err := api(ctx, al, admin, http.MethodPost, "/api/v1/tokens", map[string]string{"name": "bench", "role": "puller"}, &tok); err != nil {
		return nil, err
	}
	newTarget := func(key, label, repo string) *target {
		t := &target{key: key, label: label, srv: al, repo: repo, hc: newHTTPClient(),
			pull:  &credential{base: al.url, user: "bench", secret: tok.Token},
			basic: basicCredential(al.url, "bench", tok.Token),
			push:  &credential{base: al.url, user: "admin", secret: admin},
		}
		return t
	}
	targets := []*target{
		{key: "distribution", label: "distribution", srv: dist, repo: distRepo, hc: newHTTPClient()},
		newTarget("airlock-off", "airlock (gate off)", openRepo),
		newTarget("airlock-on", "airlock (gate on)", gatedRepo),
	}
	for _, t := range targets {
		if err := t.fresh(ctx); err != nil {
			return nil, err
		}
		host.Logf("pushing the image to %s %s/%s", t.label, t.srv.url, t.repo)
		if err := t.pushImage(ctx, img); err != nil {
			return nil, err
		}
	}
	on, off := targets[2], targets[1]
	if _, err := on.getManifest(ctx, on.pull, pullTag); err == nil || !strings.Contains(err.Error(), "403") {
		return nil, fmt.Errorf("%w: an unapproved manifest in %s was not refused (%v)", errGate, gatedRepo, err)
	}
	if _, err := off.getManifest(ctx, off.pull, pullTag); err != nil {
		return nil, fmt.Errorf("%w: %s is --allow-unvetted but: %v", errGate, openRepo, err)
	}
	if err := api(ctx, al, admin, http.MethodPost, "/api/v1/images/"+img.manifestDigest+"/approve", map[string]string{"reason": "bench"}, nil); err != nil {
		return nil, err
	}
	if _, err := on.getManifest(ctx, on.pull, pullTag); err != nil {
		return nil, fmt.Errorf("%w: approved manifest: %v", errGate, err)
	}
	return targets, nil
}

// fresh renews the target's bearer tokens if they would expire soon.
func (t *target) fresh(ctx context.Context) error {
	for _, c := range []*credential{t.pull, t.push} {
		if err := c.fresh(ctx, t.hc); err != nil {
			return err
		}
	}
	return nil
}

// warmUp verifies what every target serves and warms caches and connections.
func warmUp(ctx context.Context, targets []*target, img *image) error {
	buf := make([]byte, 1<<20)
	for _, t := range targets {
		if err := t.fresh(ctx); err != nil {
			return err
		}
		n, err := t.pullBlob(ctx, t.pull, img.layerDigest, buf, true)
		if err != nil {
			return err
		}
		if n != int64(len(img.layer)) {
			return fmt.Errorf("%s: pulled %d bytes, want %d", t.label, n, len(img.layer))
		}
		creds := []*credential{t.pull}
		if t.basic != nil {
			creds = append(creds, t.basic)
		}
		for _, cred := range creds {
			for i := 0; i < 200; i++ {
				m, err := t.getManifest(ctx, cred, pullTag)
				if err != nil {
					return err
				}
				if m != len(img.manifest) {
					return fmt.Errorf("%s: manifest of %d bytes, want %d", t.label, m, len(img.manifest))
				}
			}
		}
		host.Logf("%s: blob digest and manifest verified", t.label)
	}
	return nil
}

// stamp makes data a new blob by writing n into its first bytes.
func stamp(data []byte, n uint64) string {
	binary.BigEndian.PutUint64(data, n)
	return digestOf(data)
}
