package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/airlock-dev/airlock/internal/identity"
	"github.com/airlock-dev/airlock/internal/registry"
	"github.com/airlock-dev/airlock/internal/store"
)

// Info is what clients learn of the server (GET /api/v1/info).
type Info struct {
	Version       string   `json:"version"`
	RegistryHost  string   `json:"registryHost"`
	AllowUnvetted []string `json:"allowUnvetted,omitempty"`
	AnonymousPull bool     `json:"anonymousPull"`
}

// TokenRequest creates a token (POST /api/v1/tokens).
type TokenRequest struct {
	Name    string     `json:"name"`
	Role    store.Role `json:"role"`
	Expires string     `json:"expires,omitempty"` // Go duration, e.g. 720h
}

// TokenResponse carries the only copy of a new token's secret.
type TokenResponse struct {
	Name      string     `json:"name"`
	Role      store.Role `json:"role"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	Token     string     `json:"token"`
}

// DecisionRequest approves, rejects or revokes a digest.
type DecisionRequest struct {
	Reason  string `json:"reason"`
	Expires string `json:"expires,omitempty"` // approval lifetime: Go duration or Nd
}

// AuditVerify is the result of GET /api/v1/audit/verify.
type AuditVerify struct {
	Entries int64  `json:"entries"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
}

const maxAPIBody = 1 << 20

func (s *Server) api(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/info", s.authed(nil, func(w http.ResponseWriter, r *http.Request, _ identity.Caller) {
		writeJSON(w, http.StatusOK, Info{Version: Version, RegistryHost: s.Config.RegistryHost, AllowUnvetted: s.Config.AllowUnvetted, AnonymousPull: s.Config.AnonymousPull})
	}))
	mux.HandleFunc("GET /api/v1/whoami", s.authed(nil, func(w http.ResponseWriter, r *http.Request, c identity.Caller) {
		writeJSON(w, http.StatusOK, map[string]string{"name": c.Name, "role": string(c.Role)})
	}))
	admin := func(c identity.Caller) bool { return c.IsAdmin() }
	mux.HandleFunc("POST /api/v1/tokens", s.authed(admin, s.createToken))
	mux.HandleFunc("GET /api/v1/tokens", s.authed(admin, func(w http.ResponseWriter, r *http.Request, _ identity.Caller) {
		toks, err := s.Store.Tokens(r.Context())
		if err != nil {
			s.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, toks)
	}))
	mux.HandleFunc("DELETE /api/v1/tokens/{name}", s.authed(admin, func(w http.ResponseWriter, r *http.Request, c identity.Caller) {
		if err := s.Store.RevokeToken(r.Context(), r.PathValue("name"), c.Name); err != nil {
			s.storeError(w, err)
			return
		}
		s.Auth.Forget()
		writeJSON(w, http.StatusOK, map[string]string{"revoked": r.PathValue("name")})
	}))
	mux.HandleFunc("GET /api/v1/images", s.authed(nil, s.listImages))
	mux.HandleFunc("GET /api/v1/images/{digest}", s.authed(nil, func(w http.ResponseWriter, r *http.Request, _ identity.Caller) {
		img, err := s.Store.Image(r.Context(), r.PathValue("digest"))
		if err != nil {
			s.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, img)
	}))
	decider := func(c identity.Caller) bool { return c.CanDecide() }
	mux.HandleFunc("POST /api/v1/images/{digest}/{action}", s.authed(decider, s.decide))
	auditor := func(c identity.Caller) bool { return c.IsAdmin() || c.CanDecide() }
	mux.HandleFunc("GET /api/v1/audit", s.authed(auditor, s.audit))
	mux.HandleFunc("GET /api/v1/audit/verify", s.authed(auditor, func(w http.ResponseWriter, r *http.Request, _ identity.Caller) {
		n, err := s.Store.VerifyAudit(r.Context())
		res := AuditVerify{Entries: n, OK: err == nil}
		if err != nil {
			res.Error = err.Error()
		}
		writeJSON(w, http.StatusOK, res)
	}))
}

// authed authenticates the caller, checks allowed (nil: any authenticated
// caller) and bounds the request body.
func (s *Server) authed(allowed func(identity.Caller) bool, h func(http.ResponseWriter, *http.Request, identity.Caller)) http.HandlerFunc {
	return s.authedRaw(allowed, func(w http.ResponseWriter, r *http.Request, c identity.Caller) {
		r.Body = http.MaxBytesReader(w, r.Body, maxAPIBody)
		h(w, r, c)
	})
}

// authedRaw is authed without the body bound (uploads bound themselves).
func (s *Server) authedRaw(allowed func(identity.Caller) bool, h func(http.ResponseWriter, *http.Request, identity.Caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, has, err := s.Auth.FromRequest(r)
		if !has {
			writeJSONError(w, http.StatusUnauthorized, "UNAUTHORIZED", "a token is required: set AIRLOCK_TOKEN or run `airlock login`")
			return
		}
		if err != nil {
			if errors.Is(err, identity.ErrUnauthenticated) {
				writeJSONError(w, http.StatusUnauthorized, "UNAUTHORIZED", "the token is unknown, revoked or expired")
			} else {
				s.storeError(w, err)
			}
			return
		}
		if allowed != nil && !allowed(c) {
			writeJSONError(w, http.StatusForbidden, "DENIED", fmt.Sprintf("role %q may not do this", c.Role))
			return
		}
		h(w, r, c)
	}
}

func (s *Server) storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeJSONError(w, http.StatusNotFound, "NOT_FOUND", err.Error())
	case errors.Is(err, store.ErrExists):
		writeJSONError(w, http.StatusConflict, "EXISTS", err.Error())
	case errors.Is(err, store.ErrInvalidTransition):
		writeJSONError(w, http.StatusConflict, "INVALID_TRANSITION", err.Error())
	default:
		s.Log.Error("store", "err", err)
		writeJSONError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "the store cannot answer right now")
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", "request body: "+err.Error())
		return false
	}
	return true
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, c identity.Caller) {
	var req TokenRequest
	if !decode(w, r, &req) {
		return
	}
	if !registry.ValidTag(req.Name) || req.Name == identity.Anonymous.Name {
		writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("token name %q is not valid: use letters, digits, '.', '_' or '-'", req.Name))
		return
	}
	if !req.Role.Valid() {
		writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("role %q is not one of puller, pusher, approver, scanner, admin", req.Role))
		return
	}
	var exp *time.Time
	if req.Expires != "" {
		d, err := ParseLifetime(req.Expires)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", err.Error())
			return
		}
		t := time.Now().UTC().Add(d)
		exp = &t
	}
	secret, err := identity.NewSecret()
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	t := store.Token{Name: req.Name, Role: req.Role, Hash: identity.Hash(secret), CreatedBy: c.Name, CreatedAt: time.Now().UTC(), ExpiresAt: exp}
	if err := s.Store.CreateToken(r.Context(), t); err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, TokenResponse{Name: t.Name, Role: t.Role, ExpiresAt: t.ExpiresAt, Token: secret})
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request, _ identity.Caller) {
	q := r.URL.Query()
	f := store.ImageFilter{State: store.State(q.Get("state")), Repository: q.Get("repository")}
	if f.State != "" && !f.State.Valid() {
		writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("state %q is not one of quarantined, approved, rejected, revoked", f.State))
		return
	}
	var ok bool
	if f.Limit, ok = queryLimit(w, q, 0, 0); !ok {
		return
	}
	imgs, err := s.Store.Images(r.Context(), f)
	if err != nil {
		s.storeError(w, err)
		return
	}
	if imgs == nil {
		imgs = []store.Image{}
	}
	writeJSON(w, http.StatusOK, imgs)
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request, _ identity.Caller) {
	q := r.URL.Query()
	f := store.AuditFilter{Subject: q.Get("subject"), Action: q.Get("action")}
	if a := q.Get("after"); a != "" {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", "after must be an integer")
			return
		}
		f.AfterSeq = n
	}
	var ok bool
	if f.Limit, ok = queryLimit(w, q, 1000, 1); !ok {
		return
	}
	es, err := s.Store.AuditEntries(r.Context(), f)
	if err != nil {
		s.storeError(w, err)
		return
	}
	if es == nil {
		es = []store.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, es)
}

// ParseLifetime accepts Go durations and whole days ("90d").
func ParseLifetime(s string) (time.Duration, error) {
	if n := len(s); n > 1 && s[n-1] == 'd' {
		days, err := strconv.Atoi(s[:n-1])
		if err == nil && days > 0 && days < 100000 {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("lifetime %q: use a positive duration like 720h or 90d", s)
	}
	return d, nil
}

// queryLimit reads ?limit= (def when absent, at least min), answering 400 when it is bad.
func queryLimit(w http.ResponseWriter, q url.Values, def, min int) (int, bool) {
	l := q.Get("limit")
	if l == "" {
		return def, true
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < min {
		writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("limit must be an integer of at least %d", min))
		return 0, false
	}
	return n, true
}
