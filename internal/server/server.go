// Package server wires one `airlock serve` process: the gated registry under
// /v2/, the registry token endpoint, the JSON API the CLI talks to, health,
// readiness and Prometheus metrics, all as handlers on one mux.
package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/airlock-dev/airlock/internal/admission"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/identity"
	"github.com/airlock-dev/airlock/internal/importer"
	"github.com/airlock-dev/airlock/internal/pipeline"
	"github.com/airlock-dev/airlock/internal/registry"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlite"
)

// Version is set by the linker (-X) for release builds.
var Version = "dev"

// Server is an assembled airlock server.
type Server struct {
	Config   config.Config
	Store    store.Store
	Auth     *identity.Authenticator
	Registry *registry.Registry
	Importer *importer.Importer
	Runner   *pipeline.Runner
	Log      *slog.Logger
	stop     context.CancelFunc
	done     chan struct{}
	handler  http.Handler
	// AdminTokenCreated is the path of the bootstrap admin token when this start created it.
	AdminTokenCreated string
	// Decider evaluates the policy, records approvals and signs attestations.
	Decider *Decider
	// Admission is the Kubernetes admission webhook (served on its own TLS listener).
	Admission *admission.Webhook
}

// AdminTokenFile is where the bootstrap admin token is written on first start.
func AdminTokenFile(data string) string { return filepath.Join(data, "admin.token") }

// New opens the store and storage and assembles the handlers.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		var lvl slog.Level
		_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	st, err := sqlite.Open(ctx, cfg.Store.DSN)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Server{Config: cfg, Store: st, Log: log}
	ok := false
	defer func() {
		if !ok {
			st.Close()
		}
	}()
	key, err := identity.LoadOrCreateKey(cfg.TokenKeyFile)
	if err != nil {
		return nil, err
	}
	s.Auth = &identity.Authenticator{Store: st, Key: key, TTL: cfg.TokenTTL}
	if err := s.bootstrapAdmin(ctx); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.Registry, err = registry.New(ctx, registry.Options{
		Storage:          storageOptions(cfg),
		Store:            st,
		Auth:             s.Auth,
		AllowUnvetted:    cfg.AllowUnvetted,
		AnonymousPull:    cfg.AnonymousPull,
		MaxManifestSize:  cfg.MaxManifestSize,
		ForeignLayerURLs: cfg.ForeignLayerURLs,
		UploadSecret:     derive(key, "upload-state"),
		Logger:           log,
		Metrics:          registry.NewMetrics(reg),
		OnMissing:        s.pullThrough,
	})
	if err != nil {
		return nil, err
	}
	mappings := map[string]string{}
	for _, m := range cfg.Import.Mappings {
		from, to, _ := strings.Cut(m, "=")
		mappings[from] = to
	}
	tmp := filepath.Join(cfg.Data, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, err
	}
	s.Importer = &importer.Importer{
		Store: st, Registry: s.Registry, Host: cfg.RegistryHost, Mappings: mappings,
		MaxArchive: cfg.Import.MaxArchive, TempDir: tmp, Timeout: cfg.Import.Timeout,
	}
	if s.Decider, err = newDecider(cfg, st, s.Registry, log); err != nil {
		return nil, err
	}
	s.Decider.Metrics = NewDecisionMetrics(reg)
	if s.Admission, err = s.newAdmission(ctx, reg); err != nil {
		return nil, err
	}
	s.Runner = pipeline.NewRunner(st, s.Importer, s.scanStep(), s.profileStep(), s.hardenStep(), s.decideStep())
	s.Runner.Workers = int(cfg.Pipeline.Workers)
	s.Runner.Lease = cfg.Pipeline.Lease
	s.Runner.StageTimeout = cfg.Pipeline.StageTimeout
	s.Runner.MaxAttempts = int(cfg.Pipeline.MaxAttempts)
	s.Runner.Log = log
	for _, g := range cfg.AllowUnvetted {
		detail, _ := json.Marshal(map[string]string{"glob": g})
		if _, err := st.Audit(ctx, store.AuditEntry{Actor: "airlock serve", Action: "serve.allow-unvetted", Subject: g, Detail: detail}); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		log.Warn("repositories skip vetting", "glob", g)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", s.token)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", s.ready)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.api(mux)
	s.importsAPI(mux)
	s.resolveAPI(mux)
	s.decisionsAPI(mux)
	// The registry takes every /v2 path as sent: ServeMux would answer an
	// unclean path (a/../b, a//b) with a redirect instead of an OCI error.
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/") {
			s.Registry.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
	// Vetting jobs run in the background for as long as the server lives.
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop, s.done = stop, make(chan struct{})
	go func() {
		defer close(s.done)
		// Grace periods, waiver expiry and attestations for new repositories.
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			s.Decider.Watch(rctx, 0)
		}()
		indexed := make(chan struct{})
		go func() {
			defer close(indexed)
			s.Admission.Index().Run(rctx)
		}()
		s.Runner.Run(rctx)
		<-watched
		<-indexed
	}()
	ok = true
	return s, nil
}

func storageOptions(cfg config.Config) registry.Storage {
	switch cfg.Storage.Driver {
	case "s3":
		s3 := cfg.Storage.S3
		p := map[string]any{
			"bucket": s3.Bucket, "region": s3.Region, "secure": s3.Secure,
			"forcepathstyle": s3.ForcePathStyle, "v4auth": true,
		}
		if s3.Region == "" {
			p["region"] = "us-east-1"
		}
		for k, v := range map[string]string{"regionendpoint": s3.RegionEndpoint, "accesskey": s3.AccessKey, "secretkey": s3.SecretKey, "rootdirectory": s3.RootDirectory} {
			if v != "" {
				p[k] = v
			}
		}
		return registry.Storage{Driver: "s3aws", Parameters: p}
	default:
		return registry.Storage{Driver: "filesystem", Parameters: map[string]any{"rootdirectory": cfg.Storage.Filesystem.RootDirectory}}
	}
}

// derive makes a purpose-bound secret from the token key.
func derive(key []byte, purpose string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	return hex.EncodeToString(m.Sum(nil))
}

// bootstrapAdmin creates the admin token on the first start.
func (s *Server) bootstrapAdmin(ctx context.Context) error {
	toks, err := s.Store.Tokens(ctx)
	if err != nil {
		return fmt.Errorf("list tokens: %w", err)
	}
	for _, t := range toks {
		if t.Name == "admin" {
			return nil
		}
	}
	secret, err := identity.NewSecret()
	if err != nil {
		return err
	}
	path := AdminTokenFile(s.Config.Data)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := s.Store.CreateToken(ctx, store.Token{Name: "admin", Role: store.RoleAdmin, Hash: identity.Hash(secret), CreatedBy: "airlock serve"}); err != nil {
		return fmt.Errorf("create admin token: %w", err)
	}
	s.AdminTokenCreated = path
	return nil
}

// Handler is the server's root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops the job runner and releases the store.
func (s *Server) Close() error {
	if s.stop != nil {
		s.stop()
		<-s.done
	}
	return s.Store.Close()
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		http.Error(w, "store unreachable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// token implements the registry token endpoint (GET with Basic auth, and the
// OAuth2 password grant POST that containerd and docker use).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	var caller identity.Caller
	var err error
	switch r.Method {
	case http.MethodGet:
		var has bool
		caller, has, err = s.Auth.FromRequest(r)
		if !has {
			if !s.Config.AnonymousPull {
				w.Header().Set("WWW-Authenticate", `Basic realm="airlock"`)
				writeJSONError(w, http.StatusUnauthorized, "UNAUTHORIZED", "credentials required: use the token name as user name and the token as password")
				return
			}
			caller, err = identity.Anonymous, nil
		}
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			writeJSONError(w, http.StatusBadRequest, "UNSUPPORTED", "bad form: "+err.Error())
			return
		}
		if gt := r.PostForm.Get("grant_type"); gt != "password" {
			writeJSONError(w, http.StatusBadRequest, "UNSUPPORTED", fmt.Sprintf("grant_type %q is not supported; use password", gt))
			return
		}
		caller, err = s.Auth.VerifySecret(r.Context(), r.PostForm.Get("username"), r.PostForm.Get("password"))
	default:
		writeJSONError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "use GET or POST")
		return
	}
	if err != nil {
		status := http.StatusUnauthorized
		if !errors.Is(err, identity.ErrUnauthenticated) {
			status = http.StatusServiceUnavailable
		}
		writeJSONError(w, status, "UNAUTHORIZED", "authentication failed: the token is unknown, revoked or expired")
		return
	}
	tok, ttl, err := s.Auth.Issue(caller)
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token": tok, "access_token": tok, "expires_in": int(ttl.Seconds()),
		"issued_at": time.Now().UTC().Format(time.RFC3339),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encode"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// APIError is the body of every API error.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": APIError{Code: code, Message: msg}, "errors": []APIError{{Code: code, Message: msg}}})
}
