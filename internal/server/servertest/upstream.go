package servertest

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
)

// Upstream is a loopback registry playing a public one: it answers with a
// Bearer challenge and issues tokens at /token the way Docker Hub does
// (anonymously, or for Basic credentials when User is set), and can be told
// to fail, rate-limit, or lie about a blob's bytes.
type Upstream struct {
	URL  string // http://127.0.0.1:PORT
	Host string // 127.0.0.1:PORT

	mu         sync.Mutex
	user, pass string
	failStatus int
	retryAfter string
	lie        map[string]bool // blob digests served with wrong bytes
	tokens     map[string]bool
	TokenCalls int
}

// StartUpstream runs an upstream registry until the test ends.
func StartUpstream(t testing.TB) *Upstream {
	t.Helper()
	u := &Upstream{lie: map[string]bool{}, tokens: map[string]bool{}}
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { u.serve(inner, w, r) }))
	t.Cleanup(srv.Close)
	u.URL = srv.URL
	u.Host = strings.TrimPrefix(srv.URL, "http://")
	return u
}

// RequireLogin makes the token endpoint demand these Basic credentials.
func (u *Upstream) RequireLogin(user, pass string) {
	u.mu.Lock()
	u.user, u.pass = user, pass
	u.mu.Unlock()
}

// Fail answers every registry request with status (and Retry-After if set); 0 stops.
func (u *Upstream) Fail(status int, retryAfter string) {
	u.mu.Lock()
	u.failStatus, u.retryAfter = status, retryAfter
	u.mu.Unlock()
}

// Lie serves other bytes of the same length for blob digest.
func (u *Upstream) Lie(digest string) {
	u.mu.Lock()
	u.lie[digest] = true
	u.mu.Unlock()
}

var blobPath = regexp.MustCompile(`^/v2/.+/blobs/(sha256:[a-f0-9]{64})$`)

func (u *Upstream) serve(inner http.Handler, w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	user, pass, fail, ra := u.user, u.pass, u.failStatus, u.retryAfter
	u.mu.Unlock()
	if r.URL.Path == "/token" {
		u.mu.Lock()
		u.TokenCalls++
		u.mu.Unlock()
		if user != "" {
			if gu, gp, ok := r.BasicAuth(); !ok || gu != user || gp != pass {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"incorrect username or password"}]}`)
				return
			}
		}
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		tok := "tok-" + hex.EncodeToString(b)
		u.mu.Lock()
		u.tokens[tok] = true
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"token":"`+tok+`","access_token":"`+tok+`","expires_in":300}`)
		return
	}
	if fail != 0 {
		if ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(fail)
		_, _ = io.WriteString(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"injected failure"}]}`)
		return
	}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	u.mu.Lock()
	ok := u.tokens[tok]
	u.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+u.URL+`/token",service="upstream"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		return
	}
	if m := blobPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
		u.mu.Lock()
		lie := u.lie[m[1]]
		u.mu.Unlock()
		if lie {
			rec := httptest.NewRecorder()
			inner.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			for i := range body {
				body[i] ^= 0xff
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body)
			return
		}
	}
	inner.ServeHTTP(w, r)
}

// Push writes img (or an index) to repo:tag upstream and returns its digest.
func (u *Upstream) Push(t testing.TB, repoTag string, img v1.Image, idx v1.ImageIndex) string {
	t.Helper()
	ref, err := name.ParseReference(u.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(authn.Anonymous)
	if u.user != "" {
		auth = remote.WithAuth(&authn.Basic{Username: u.user, Password: u.pass})
	}
	var d v1.Hash
	if idx != nil {
		err = remote.WriteIndex(ref, idx, auth)
		if err == nil {
			d, err = idx.Digest()
		}
	} else {
		err = remote.Write(ref, img, auth)
		if err == nil {
			d, err = img.Digest()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// Layer builds a gzip layer holding files (path → content, mode 0755).
func Layer(t testing.TB, files map[string][]byte) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for p, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: p, Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image builds an OCI image for platform with one layer of files, an
// entrypoint, labels and a creation time.
func Image(t testing.TB, platform v1.Platform, files map[string][]byte, entrypoint []string, labels map[string]string) v1.Image {
	t.Helper()
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{
		Layer: Layer(t, files), MediaType: types.OCILayer,
		History: v1.History{CreatedBy: "airlock test: add " + strings.Join(entrypoint, " "), Created: v1.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = platform.OS, platform.Architecture, platform.Variant
	cf.Author = "airlock tests"
	cf.Created = v1.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	cf.Config.Entrypoint = entrypoint
	cf.Config.Labels = labels
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Index builds a multi-arch OCI index of images with their platforms.
func Index(t testing.TB, imgs map[string]v1.Image) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for p, img := range imgs {
		pl, err := v1.ParsePlatform(p)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: pl}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
}

var buildMu sync.Mutex

// GoBinary compiles a small static Go program for linux/goarch and returns it.
func GoBinary(t testing.TB, goarch, message string) []byte {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	dir := t.TempDir()
	src := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(" + `"` + message + `"` + ") }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Busybox returns Debian's static busybox (package busybox-static). Missing:
// skipped locally, fatal in CI, where .ci/run installs it.
func Busybox(t testing.TB) []byte {
	t.Helper()
	return sandboxtest.Busybox(t)
}
