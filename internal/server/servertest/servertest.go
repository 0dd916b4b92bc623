// Package servertest starts real airlock servers on 127.0.0.1 for tests, with
// a fresh data directory, and pushes real images to them.
package servertest

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/identity"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/store"
)

// Instance is a running server.
type Instance struct {
	URL        string // http://127.0.0.1:PORT
	Host       string // 127.0.0.1:PORT, what image references use
	Data       string
	Server     *server.Server
	AdminToken string
}

// Start runs a server on a free loopback port until the test ends. mutate may
// change the configuration before the server starts.
func Start(t testing.TB, mutate func(*config.Config)) *Instance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Addr = ln.Addr().String()
	cfg.Data = t.TempDir()
	cfg.Log.Level = "error"
	if mutate != nil {
		mutate(&cfg)
	}
	cfg, err = config.Finish(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		_ = srv.Close()
	})
	b, err := os.ReadFile(filepath.Join(cfg.Data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return &Instance{URL: "http://" + cfg.Addr, Host: cfg.Addr, Data: cfg.Data, Server: srv, AdminToken: strings.TrimSpace(string(b))}
}

// Token creates a token with role and returns its secret.
func (i *Instance) Token(t testing.TB, name string, role store.Role) string {
	t.Helper()
	secret, err := identity.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := i.Server.Store.CreateToken(context.Background(), store.Token{Name: name, Role: role, Hash: identity.Hash(secret), CreatedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	return secret
}

// Client returns an API client using token.
func (i *Instance) Client(token string) *server.Client { return server.NewClient(i.URL, token) }

// Auth returns go-containerregistry credentials for a token.
func Auth(user, token string) remote.Option {
	return remote.WithAuth(&authn.Basic{Username: user, Password: token})
}

// Ref parses repo:tag or repo@digest on this server.
func (i *Instance) Ref(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(i.Host+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// PushRandom pushes a random image with layers layers of size bytes to repo:tag.
func (i *Instance) PushRandom(t testing.TB, repoTag, user, token string, size int64, layers int) v1.Image {
	t.Helper()
	img, err := random.Image(size, int64(layers))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(i.Ref(t, repoTag), img, Auth(user, token)); err != nil {
		t.Fatal(err)
	}
	return img
}

// Approve moves a digest to approved as admin.
func (i *Instance) Approve(t testing.TB, digest string) {
	t.Helper()
	if _, err := i.Client(i.AdminToken).Decide(context.Background(), digest, "approve", server.DecisionRequest{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
}
