// Package identity turns credentials into a caller and a role: long-lived API
// tokens (stored hashed), short-lived bearer tokens issued by the registry token
// endpoint (HMAC-signed, verified without a store lookup), and what each role may do.
package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// ErrUnauthenticated means no or bad credentials were presented.
var ErrUnauthenticated = errors.New("unauthenticated")

// TokenPrefix marks Airlock API tokens, so secret scanners can find leaked ones.
const TokenPrefix = "alk_"

// Caller is an authenticated client.
type Caller struct {
	Name string
	Role store.Role
}

// Anonymous is the caller without credentials (only when anonymous pull is on).
var Anonymous = Caller{Name: "anonymous", Role: ""}

// CanPush reports whether the caller may upload blobs and manifests.
func (c Caller) CanPush() bool {
	return c.Role == store.RolePusher || c.Role == store.RoleScanner || c.Role == store.RoleAdmin
}

// SeesUnvetted reports whether the caller bypasses the gate (reads quarantined content).
func (c Caller) SeesUnvetted() bool {
	return c.Role == store.RoleScanner || c.Role == store.RoleAdmin
}

// CanDecide reports whether the caller may approve, reject or revoke.
func (c Caller) CanDecide() bool {
	return c.Role == store.RoleApprover || c.Role == store.RoleAdmin
}

// IsAdmin reports whether the caller administers tokens and deletes content.
func (c Caller) IsAdmin() bool { return c.Role == store.RoleAdmin }

// NewSecret returns a fresh API token secret.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// Hash is how a secret is stored.
func Hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// Authenticator verifies credentials against the store and issues bearer tokens.
type Authenticator struct {
	Store store.Store
	Key   []byte        // HMAC key for issued bearer tokens
	TTL   time.Duration // lifetime of issued bearer tokens
	Now   func() time.Time

	mu      sync.Mutex
	cache   map[string]cached // hash → verified token, for a few seconds
	names   map[string]store.Token
	namesAt time.Time // when names was read from the store
}

type cached struct {
	caller Caller
	until  time.Time
}

// cacheFor bounds how long a revoked API token may still be accepted by one replica.
const cacheFor = 5 * time.Second

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// VerifySecret checks an API token secret, optionally requiring its name.
func (a *Authenticator) VerifySecret(ctx context.Context, name, secret string) (Caller, error) {
	if !strings.HasPrefix(secret, TokenPrefix) {
		return Caller{}, ErrUnauthenticated
	}
	h := Hash(secret)
	now := a.now()
	a.mu.Lock()
	if c, ok := a.cache[h]; ok && now.Before(c.until) {
		a.mu.Unlock()
		if name != "" && name != c.caller.Name {
			return Caller{}, ErrUnauthenticated
		}
		return c.caller, nil
	}
	a.mu.Unlock()
	t, err := a.Store.TokenByHash(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return Caller{}, ErrUnauthenticated
	}
	if err != nil {
		return Caller{}, fmt.Errorf("verify token: %w", err)
	}
	if t.Revoked || (t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)) {
		return Caller{}, ErrUnauthenticated
	}
	if name != "" && name != t.Name {
		return Caller{}, ErrUnauthenticated
	}
	c := Caller{Name: t.Name, Role: t.Role}
	until := now.Add(cacheFor)
	if t.ExpiresAt != nil && t.ExpiresAt.Before(until) {
		until = *t.ExpiresAt
	}
	a.mu.Lock()
	if a.cache == nil || len(a.cache) > 10000 {
		a.cache = map[string]cached{}
	}
	a.cache[h] = cached{caller: c, until: until}
	a.mu.Unlock()
	return c, nil
}

// Forget drops cached verifications so a revocation takes effect at once on this replica.
func (a *Authenticator) Forget() {
	a.mu.Lock()
	a.cache = nil
	a.names = nil
	a.mu.Unlock()
}

// live reports whether the API token named name still stands (not revoked,
// not expired): a bearer token issued from it lives no longer than it does.
func (a *Authenticator) live(ctx context.Context, name string) (bool, error) {
	now := a.now()
	a.mu.Lock()
	names, at := a.names, a.namesAt
	a.mu.Unlock()
	_, known := names[name]
	// A signed bearer names a token that existed when it was issued; one not
	// in the cache was created since the cache was read, so read it again.
	if names == nil || !known || now.Sub(at) > cacheFor || now.Before(at) {
		toks, err := a.Store.Tokens(ctx)
		if err != nil {
			return false, fmt.Errorf("verify token: %w", err)
		}
		names = make(map[string]store.Token, len(toks))
		for _, t := range toks {
			names[t.Name] = t
		}
		a.mu.Lock()
		a.names, a.namesAt = names, now
		a.mu.Unlock()
	}
	t, ok := names[name]
	return ok && !t.Revoked && (t.ExpiresAt == nil || now.Before(*t.ExpiresAt)), nil
}

type claims struct {
	Sub  string     `json:"sub"`
	Role store.Role `json:"role"`
	Exp  int64      `json:"exp"`
}

// Issue returns a bearer token for c valid for TTL.
func (a *Authenticator) Issue(c Caller) (string, time.Duration, error) {
	ttl := a.TTL
	if ttl <= 0 {
		ttl = 15 * time.Minute
	}
	body, err := json.Marshal(claims{Sub: c.Name, Role: c.Role, Exp: a.now().Add(ttl).Unix()})
	if err != nil {
		return "", 0, err
	}
	p := base64.RawURLEncoding.EncodeToString(body)
	return p + "." + a.sign(p), ttl, nil
}

func (a *Authenticator) sign(p string) string {
	m := hmac.New(sha256.New, a.Key)
	m.Write([]byte(p))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verifyIssued checks a bearer token made by Issue.
func (a *Authenticator) verifyIssued(tok string) (Caller, error) {
	p, sig, ok := strings.Cut(tok, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(a.sign(p))) {
		return Caller{}, ErrUnauthenticated
	}
	body, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return Caller{}, ErrUnauthenticated
	}
	var c claims
	if err := json.Unmarshal(body, &c); err != nil || c.Sub == "" {
		return Caller{}, ErrUnauthenticated
	}
	if a.now().Unix() >= c.Exp {
		return Caller{}, ErrUnauthenticated
	}
	if c.Sub == Anonymous.Name && c.Role == "" {
		return Anonymous, nil
	}
	if !c.Role.Valid() {
		return Caller{}, ErrUnauthenticated
	}
	return Caller{Name: c.Sub, Role: c.Role}, nil
}

// FromRequest authenticates r: Basic (username = token name, password = API
// token) or Bearer (an issued token or an API token). ok is false when the
// request carries no credentials at all.
func (a *Authenticator) FromRequest(r *http.Request) (c Caller, ok bool, err error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Caller{}, false, nil
	}
	if user, pass, isBasic := r.BasicAuth(); isBasic {
		c, err := a.VerifySecret(r.Context(), user, pass)
		return c, true, err
	}
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "bearer") {
		return Caller{}, true, ErrUnauthenticated
	}
	tok = strings.TrimSpace(tok)
	if strings.HasPrefix(tok, TokenPrefix) {
		c, err := a.VerifySecret(r.Context(), "", tok)
		return c, true, err
	}
	c, err = a.verifyIssued(tok)
	if err != nil || c == Anonymous {
		return c, true, err
	}
	// Checked even if the client has gone: the caller may still audit its request.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	alive, err := a.live(ctx, c.Name)
	if err != nil {
		return Caller{}, true, err
	}
	if !alive {
		return Caller{}, true, ErrUnauthenticated
	}
	return c, true, nil
}

// LoadOrCreateKey reads the HMAC key file, creating a random one (mode 0600) if missing.
func LoadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 32 {
			return nil, fmt.Errorf("token key %s is shorter than 32 bytes", path)
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create token key: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	return b, f.Close()
}
