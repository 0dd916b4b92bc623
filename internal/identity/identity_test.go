package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlite"
)

// clock is a settable time source, so expiry is tested without waiting.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

type fixture struct {
	auth  *Authenticator
	store *sqlite.Store
	clock *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Now()}
	return &fixture{auth: &Authenticator{Store: st, Key: []byte(strings.Repeat("k", 32)), TTL: time.Minute, Now: c.now}, store: st, clock: c}
}

// token creates an API token and returns its secret.
func (f *fixture) token(t *testing.T, name string, role store.Role, expires *time.Time) string {
	t.Helper()
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.CreateToken(context.Background(), store.Token{Name: name, Role: role, Hash: Hash(secret), CreatedBy: "test", ExpiresAt: expires}); err != nil {
		t.Fatal(err)
	}
	return secret
}

func request(header string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://registry.test/v2/", nil)
	if header != "" {
		r.Header.Set("Authorization", header)
	}
	return r
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestIssuedTokens(t *testing.T) {
	f := newFixture(t)
	a := f.auth
	f.token(t, "ci", store.RolePusher, nil)
	tok, ttl, err := a.Issue(Caller{Name: "ci", Role: store.RolePusher})
	if err != nil || ttl != time.Minute {
		t.Fatalf("issue: %v, ttl %v", err, ttl)
	}
	for _, h := range []string{"Bearer " + tok, "bearer " + tok, "BEARER  " + tok + " "} {
		c, has, err := a.FromRequest(request(h))
		if err != nil || !has || c != (Caller{Name: "ci", Role: store.RolePusher}) {
			t.Errorf("%q: %+v %v %v", h, c, has, err)
		}
	}

	// Expiry: valid until TTL has passed, not a second longer.
	f.clock.advance(59 * time.Second)
	if _, err := a.verifyIssued(tok); err != nil {
		t.Errorf("before expiry: %v", err)
	}
	f.clock.advance(time.Second)
	if _, err := a.verifyIssued(tok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("at expiry: %v", err)
	}

	// Anonymous tokens say anonymous and nothing more.
	anon, _, _ := a.Issue(Anonymous)
	if c, err := a.verifyIssued(anon); err != nil || c != Anonymous {
		t.Errorf("anonymous: %+v %v", c, err)
	}

	// Tampering.
	fresh, _, _ := a.Issue(Caller{Name: "ci", Role: store.RolePuller})
	payload, sig, _ := strings.Cut(fresh, ".")
	body, _ := base64.RawURLEncoding.DecodeString(payload)
	promoted := strings.Replace(string(body), `"role":"puller"`, `"role":"admin"`, 1)
	extended := strings.Replace(string(body), `"exp":`, `"exp":9`, 1)
	other := &Authenticator{Key: []byte(strings.Repeat("x", 32)), Now: f.clock.now}
	foreign, _, _ := other.Issue(Caller{Name: "ci", Role: store.RoleAdmin})
	signed := func(c claims) string {
		b, _ := json.Marshal(c)
		p := base64.RawURLEncoding.EncodeToString(b)
		return p + "." + a.sign(p)
	}
	exp := f.clock.t.Add(time.Hour).Unix()
	for name, bad := range map[string]string{
		"role raised":           base64.RawURLEncoding.EncodeToString([]byte(promoted)) + "." + sig,
		"expiry extended":       base64.RawURLEncoding.EncodeToString([]byte(extended)) + "." + sig,
		"signature flipped":     payload + "." + flip(sig),
		"payload flipped":       flip(payload) + "." + sig,
		"no signature":          payload,
		"empty signature":       payload + ".",
		"other key":             foreign,
		"empty":                 "",
		"dot":                   ".",
		"signed, no subject":    signed(claims{Role: store.RolePuller, Exp: exp}),
		"signed, unknown role":  signed(claims{Sub: "ci", Role: "root", Exp: exp}),
		"signed, empty role":    signed(claims{Sub: "ci", Exp: exp}),
		"signed, not JSON":      base64.RawURLEncoding.EncodeToString([]byte("{")) + "." + a.sign(base64.RawURLEncoding.EncodeToString([]byte("{"))),
		"signed, bad base64":    "!!!." + a.sign("!!!"),
		"signed, no expiry":     signed(claims{Sub: "ci", Role: store.RolePuller}),
		"api-token-like prefix": "alk_" + fresh,
	} {
		if c, err := a.verifyIssued(bad); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: accepted as %+v (%v)", name, c, err)
		}
		if c, has, err := a.FromRequest(request("Bearer " + bad)); bad != "" && (!has || !errors.Is(err, ErrUnauthenticated)) {
			t.Errorf("%s via FromRequest: %+v %v %v", name, c, has, err)
		}
	}
	if _, err := a.verifyIssued(fresh); err != nil {
		t.Errorf("the untampered token: %v", err)
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func TestAPITokens(t *testing.T) {
	f := newFixture(t)
	a := f.auth
	ctx := context.Background()
	secret := f.token(t, "ci", store.RolePusher, nil)

	c, has, err := a.FromRequest(request(basic("ci", secret)))
	if err != nil || !has || c != (Caller{Name: "ci", Role: store.RolePusher}) {
		t.Fatalf("basic: %+v %v %v", c, has, err)
	}
	if c, _, err := a.FromRequest(request("Bearer " + secret)); err != nil || c.Name != "ci" {
		t.Fatalf("bearer API token: %+v %v", c, err)
	}
	// A wrong user name is refused, also when the secret is cached as verified.
	for _, user := range []string{"admin", "CI", "ci ", "other"} {
		if c, _, err := a.FromRequest(request(basic(user, secret))); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("basic as %q with ci's secret: %+v %v", user, c, err)
		}
	}
	a.Forget()
	if _, _, err := a.FromRequest(request(basic("admin", secret))); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("wrong name, uncached: %v", err)
	}

	for name, h := range map[string]string{
		"unknown secret":    basic("ci", "alk_unknown"),
		"no prefix":         basic("ci", strings.TrimPrefix(secret, "alk_")),
		"secret with space": basic("ci", secret+" "),
		"other scheme":      "Token " + secret,
		"basic not base64":  "Basic %%%",
		"bearer nothing":    "Bearer",
	} {
		c, has, err := a.FromRequest(request(h))
		if !has || !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %+v has=%v %v", name, c, has, err)
		}
	}
	if _, has, err := a.FromRequest(request("")); has || err != nil {
		t.Errorf("no credentials: has=%v %v", has, err)
	}

	// Revocation: at once after Forget, and within the cache bound without it.
	if _, err := a.VerifySecret(ctx, "ci", secret); err != nil {
		t.Fatal(err)
	}
	if err := f.store.RevokeToken(ctx, "ci", "test"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.FromRequest(request(basic("ci", secret))); err != nil {
		t.Errorf("revoked but cached: %v (the cache keeps a verification for %v)", err, cacheFor)
	}
	f.clock.advance(cacheFor)
	if _, _, err := a.FromRequest(request(basic("ci", secret))); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked, cache run out: %v", err)
	}
	second := f.token(t, "ci2", store.RolePuller, nil)
	if _, err := a.VerifySecret(ctx, "ci2", second); err != nil {
		t.Fatal(err)
	}
	if err := f.store.RevokeToken(ctx, "ci2", "test"); err != nil {
		t.Fatal(err)
	}
	a.Forget()
	if _, err := a.VerifySecret(ctx, "ci2", second); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked and forgotten: %v", err)
	}

	// Expiry: refused from the expiry on, even if cached just before it.
	exp := f.clock.t.Add(2 * time.Second)
	short := f.token(t, "short", store.RolePuller, &exp)
	if _, err := a.VerifySecret(ctx, "short", short); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	f.clock.advance(2 * time.Second)
	if _, err := a.VerifySecret(ctx, "short", short); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("at expiry, cached before: %v", err)
	}
	past := f.clock.t.Add(-time.Hour)
	old := f.token(t, "old", store.RoleAdmin, &past)
	if _, err := a.VerifySecret(ctx, "old", old); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("expired: %v", err)
	}

	// A store that cannot answer is an error, not "unauthenticated": callers answer 503, not 401.
	third := f.token(t, "third", store.RolePuller, nil)
	f.store.Close()
	_, err = a.VerifySecret(ctx, "third", third)
	if err == nil || errors.Is(err, ErrUnauthenticated) {
		t.Errorf("closed store: %v", err)
	}
}

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		role                                  store.Role
		push, seesUnvetted, decide, admin, ok bool
	}{
		{"", false, false, false, false, false},
		{store.RolePuller, false, false, false, false, true},
		{store.RolePusher, true, false, false, false, true},
		{store.RoleApprover, false, false, true, false, true},
		{store.RoleScanner, true, true, false, false, true},
		{store.RoleAdmin, true, true, true, true, true},
		{"root", false, false, false, false, false},
	} {
		c := Caller{Name: "x", Role: tc.role}
		if c.CanPush() != tc.push || c.SeesUnvetted() != tc.seesUnvetted || c.CanDecide() != tc.decide || c.IsAdmin() != tc.admin || tc.role.Valid() != tc.ok {
			t.Errorf("role %q: push %v unvetted %v decide %v admin %v valid %v", tc.role, c.CanPush(), c.SeesUnvetted(), c.CanDecide(), c.IsAdmin(), tc.role.Valid())
		}
	}
}

func TestSecrets(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		s, err := NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s, TokenPrefix) || len(s) != len(TokenPrefix)+43 || seen[s] {
			t.Fatalf("secret %q", s)
		}
		seen[s] = true
	}
	if Hash("a") == Hash("b") || len(Hash("a")) != 64 {
		t.Error("Hash")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token.key")
	k, err := LoadOrCreateKey(p)
	if err != nil || len(k) != 32 {
		t.Fatalf("create: %d bytes, %v", len(k), err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v", st.Mode(), err)
	}
	again, err := LoadOrCreateKey(p)
	if err != nil || string(again) != string(k) {
		t.Errorf("reload: %v", err)
	}
	short := filepath.Join(t.TempDir(), "short.key")
	if err := os.WriteFile(short, []byte("too short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(short); err == nil || !strings.Contains(err.Error(), "shorter than 32 bytes") {
		t.Errorf("short key: %v", err)
	}
	if _, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "missing-dir", "token.key")); err == nil {
		t.Error("key in a missing directory: no error")
	}
}

// A bearer token issued from an API token dies with it: revoking the API
// token refuses the bearer at once on this replica.
func TestIssuedTokenDiesWithItsSource(t *testing.T) {
	f := newFixture(t)
	a := f.auth
	f.token(t, "ci", store.RolePusher, nil)
	tok, _, err := a.Issue(Caller{Name: "ci", Role: store.RolePusher})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.FromRequest(request("Bearer " + tok)); err != nil {
		t.Fatalf("live source: %v", err)
	}
	if err := f.store.RevokeToken(context.Background(), "ci", "test"); err != nil {
		t.Fatal(err)
	}
	a.Forget()
	if _, _, err := a.FromRequest(request("Bearer " + tok)); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("bearer of a revoked token accepted: %v", err)
	}
	other, _, _ := a.Issue(Caller{Name: "never-created", Role: store.RoleAdmin})
	if _, _, err := a.FromRequest(request("Bearer " + other)); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("bearer naming no token accepted: %v", err)
	}
}
