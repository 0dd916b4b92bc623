package servertest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// Response is a finished HTTP exchange with its body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// OCIError is the first error of an OCI (or API) error body.
type OCIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error returns the first error of the body, or a zero OCIError if the body is
// not an OCI error document.
func (r Response) Error() OCIError {
	var doc struct {
		Errors []OCIError `json:"errors"`
	}
	if json.Unmarshal(r.Body, &doc) != nil || len(doc.Errors) == 0 {
		return OCIError{}
	}
	return doc.Errors[0]
}

// Request describes one raw HTTP request to an instance.
type Request struct {
	Method string
	Path   string // path and query, e.g. /v2/repo/manifests/tag
	// User and Token authenticate with Basic (User non-empty) or Bearer (User
	// empty); both empty sends no credentials.
	User, Token string
	Header      map[string]string
	Body        []byte
}

// noRedirect is a client that reports redirects instead of following them, so
// a test sees what the server answered to the request it made.
var noRedirect = &http.Client{
	Timeout:       60 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Do sends req and reads the whole answer, without following redirects.
func (i *Instance) Do(t testing.TB, req Request) Response {
	t.Helper()
	var body io.Reader = http.NoBody
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	// url.Parse keeps percent-encoding it did not need (RawPath), and the
	// client does not clean the path: the server sees exactly req.Path.
	hr, err := http.NewRequest(req.Method, i.URL+req.Path, body)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case req.User != "":
		hr.SetBasicAuth(req.User, req.Token)
	case req.Token != "":
		hr.Header.Set("Authorization", "Bearer "+req.Token)
	}
	for k, v := range req.Header {
		hr.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.Path, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Digest is the sha256 digest of b as the registry names it.
func Digest(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// PushBlob uploads content to repo (POST, then PUT with the digest) and returns its digest.
func (i *Instance) PushBlob(t testing.TB, repo, user, token string, content []byte) string {
	t.Helper()
	d := Digest(content)
	start := i.Do(t, Request{Method: http.MethodPost, Path: "/v2/" + repo + "/blobs/uploads/", User: user, Token: token})
	if start.Status != http.StatusAccepted {
		t.Fatalf("start upload to %s: %d %s", repo, start.Status, start.Body)
	}
	loc, err := url.Parse(start.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	q.Set("digest", d)
	put := i.Do(t, Request{Method: http.MethodPut, Path: loc.Path + "?" + q.Encode(), User: user, Token: token,
		Header: map[string]string{"Content-Type": "application/octet-stream"}, Body: content})
	if put.Status != http.StatusCreated {
		t.Fatalf("finish upload of %s to %s: %d %s", d, repo, put.Status, put.Body)
	}
	return d
}

// PutManifest sends a manifest body to /v2/REPO/manifests/REF with mediaType as Content-Type.
func (i *Instance) PutManifest(t testing.TB, repo, ref, user, token, mediaType string, body []byte) Response {
	t.Helper()
	h := map[string]string{}
	if mediaType != "" {
		h["Content-Type"] = mediaType
	}
	return i.Do(t, Request{Method: http.MethodPut, Path: "/v2/" + repo + "/manifests/" + ref, User: user, Token: token, Header: h, Body: body})
}
