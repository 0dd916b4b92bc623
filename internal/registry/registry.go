// Package registry serves the OCI distribution API on top of distribution's
// storage and handlers, behind a gate: manifests and blobs of digests that are
// not approved are stored but never served to ordinary clients. It also adds
// what distribution lacks: the referrers API and the OCI-Subject header.
package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // default blob storage
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"     // S3-compatible blob storage
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/airlock-dev/airlock/internal/identity"
	"github.com/airlock-dev/airlock/internal/store"
)

// Storage selects and parameterises a distribution storage driver.
type Storage struct {
	Driver     string         // "filesystem" or "s3"
	Parameters map[string]any // driver parameters as distribution names them
}

// Options configure a Registry.
type Options struct {
	Storage         Storage
	Store           store.Store
	Auth            *identity.Authenticator
	AllowUnvetted   []string
	AnonymousPull   bool
	MaxManifestSize int64
	// ForeignLayerURLs are regular expressions of URLs that layers may point to
	// instead of being pushed (non-distributable layers). Empty: none; such a
	// layer would be fetched by clients from outside the registry, unvetted.
	ForeignLayerURLs []string
	// UploadSecret signs upload state; replicas behind one load balancer must share it.
	UploadSecret string
	// OnMissing is asked about a manifest the registry does not hold (by tag
	// or digest). A non-empty message is returned as 403 DENIED: pull-through
	// queues an import and refuses; the unvetted bytes are never served.
	OnMissing func(ctx context.Context, repo, ref string, c identity.Caller) (message string)
	Logger    *slog.Logger
	Metrics   *Metrics
}

// Registry is the gated OCI registry handler for /v2/.
type Registry struct {
	app         *handlers.App
	ns          distribution.Namespace
	store       store.Store
	auth        *identity.Authenticator
	allow       globMatcher
	anon        bool
	maxSize     int64
	foreign     []*regexp.Regexp
	log         *slog.Logger
	metrics     *Metrics
	missingHook func(ctx context.Context, repo, ref string, c identity.Caller) string
	cache       *gateCache
}

// New builds a registry over the configured storage.
func New(ctx context.Context, o Options) (*Registry, error) {
	params := map[string]any{}
	for k, v := range o.Storage.Parameters {
		params[k] = v
	}
	driver, err := factory.Create(ctx, o.Storage.Driver, params)
	if err != nil {
		return nil, fmt.Errorf("storage driver %s: %w", o.Storage.Driver, err)
	}
	ns, err := storage.NewRegistry(ctx, driver, storage.EnableDelete)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	// distribution logs every 4xx as an error through logrus; the gate's own
	// decisions are logged and audited here, so keep its log for debugging only.
	if o.Logger == nil || !o.Logger.Enabled(ctx, slog.LevelDebug) {
		logrus.SetOutput(io.Discard)
	} else {
		logrus.SetLevel(logrus.DebugLevel)
	}
	dcfg := &configuration.Configuration{}
	dp := configuration.Parameters{}
	for k, v := range o.Storage.Parameters {
		dp[k] = v
	}
	dcfg.Storage = configuration.Storage{
		o.Storage.Driver: dp,
		"delete":         configuration.Parameters{"enabled": true},
	}
	var foreign []*regexp.Regexp
	for _, u := range o.ForeignLayerURLs {
		re, err := regexp.Compile(u)
		if err != nil {
			return nil, fmt.Errorf("foreign layer URL pattern %q: %w", u, err)
		}
		foreign = append(foreign, re)
	}
	dcfg.Validation.Manifests.URLs.Allow = append([]string{}, o.ForeignLayerURLs...)
	dcfg.HTTP.Secret = o.UploadSecret
	// configuration.Parse fills this default; a Configuration built in code
	// has 0, and distribution then answers every catalog request with no repositories.
	dcfg.Catalog.MaxEntries = 1000
	dcfg.Log.AccessLog.Disabled = true
	dcfg.Log.Level = "error"
	app, err := newApp(ctx, dcfg)
	if err != nil {
		return nil, err
	}
	if o.MaxManifestSize <= 0 {
		o.MaxManifestSize = 4 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	return &Registry{
		app: app, ns: ns, store: o.Store, auth: o.Auth,
		allow: newGlobMatcher(o.AllowUnvetted), anon: o.AnonymousPull,
		maxSize: o.MaxManifestSize, foreign: foreign, log: o.Logger, metrics: o.Metrics,
		missingHook: o.OnMissing,
		cache:       newGateCache(o.Store),
	}, nil
}

// newApp turns distribution's panics on bad configuration into errors.
func newApp(ctx context.Context, c *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("registry storage: %v", r)
		}
	}()
	return handlers.NewApp(ctx, c), nil
}

// Unvetted reports whether repo skips vetting (--allow-unvetted).
func (g *Registry) Unvetted(repo string) bool { return g.allow.match(repo) }

// ServeHTTP authenticates, applies the gate, and hands allowed requests to distribution.
func (g *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rt := parseRoute(r.URL.Path)
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		g.metrics.observe(rt.kind.String(), r.Method, sw.status(), time.Since(start))
	}()
	w = sw
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")

	caller, hasCreds, err := g.auth.FromRequest(r)
	switch {
	case hasCreds && errors.Is(err, identity.ErrUnauthenticated):
		g.challenge(w, r, "authentication failed: the token is unknown, revoked or expired")
		return
	case hasCreds && err != nil:
		g.log.Error("authenticate", "err", err)
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "cannot verify credentials right now; try again", nil)
		return
	case !hasCreds:
		if !g.anon || !(r.Method == http.MethodGet || r.Method == http.MethodHead) || rt.kind == routeCatalog {
			g.challenge(w, r, "authentication required")
			return
		}
		caller = identity.Anonymous
	}

	if rt.kind != routeBase && rt.kind != routeCatalog && rt.kind != routeUnknown {
		if !ValidRepository(rt.repo) {
			writeError(w, http.StatusBadRequest, "NAME_INVALID", fmt.Sprintf("invalid repository name %q", rt.repo), nil)
			return
		}
	}

	switch rt.kind {
	case routeManifest:
		g.manifest(w, r, caller, rt)
	case routeBlob:
		g.blob(w, r, caller, rt)
	case routeUpload:
		g.upload(w, r, caller, rt)
	case routeReferrers:
		g.referrers(w, r, caller, rt)
	default:
		g.app.ServeHTTP(w, r)
	}
}

func (g *Registry) challenge(w http.ResponseWriter, r *http.Request, msg string) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s://%s/token",service="airlock"`, scheme, r.Host))
	writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", msg, nil)
}

// deny answers 403 DENIED and records the denial in the audit log.
func (g *Registry) deny(w http.ResponseWriter, r *http.Request, c identity.Caller, rt route, subject, msg string) {
	g.metrics.denied(rt.kind.String())
	detail, _ := json.Marshal(map[string]string{
		"method": r.Method, "path": r.URL.Path, "role": string(c.Role), "repository": rt.repo, "reason": msg,
	})
	// Clients that probe in parallel hang up on the first refusal; the denial is audited all the same.
	if _, err := g.store.Audit(context.WithoutCancel(r.Context()), store.AuditEntry{Actor: c.Name, Action: "request.denied", Subject: subject, Detail: detail}); err != nil {
		g.log.Error("audit denied request", "err", err)
	}
	writeError(w, http.StatusForbidden, "DENIED", msg, map[string]string{"digest": subject, "repository": rt.repo})
}

// refuse denies a read of unvetted content. A pusher's HEAD gets a plain 404
// instead: push clients probe with HEAD before uploading and must be able to
// carry on (the upload is deduplicated by digest), while no content, size or
// state of quarantined data is disclosed.
func (g *Registry) refuse(w http.ResponseWriter, r *http.Request, c identity.Caller, rt route, subject, msg string) {
	if r.Method == http.MethodHead && c.CanPush() {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNotFound)
		return
	}
	g.deny(w, r, c, rt, subject, msg)
}

func (g *Registry) gated(c identity.Caller, repo string) bool {
	return !c.SeesUnvetted() && !g.allow.match(repo)
}

func (g *Registry) repository(ctx context.Context, repo string) (distribution.Repository, error) {
	named, err := reference.WithName(repo)
	if err != nil {
		return nil, err
	}
	return g.ns.Repository(ctx, named)
}

// resolveTag returns the digest a tag points to, or "" if the tag does not exist.
func (g *Registry) resolveTag(ctx context.Context, repo, tag string) (string, error) {
	rep, err := g.repository(ctx, repo)
	if err != nil {
		return "", err
	}
	d, err := rep.Tags(ctx).Get(ctx, tag)
	var unknown distribution.ErrTagUnknown
	if errors.As(err, &unknown) {
		return "", nil
	}
	if err != nil {
		var pnf interface{ Error() string }
		if errors.As(err, &pnf) && strings.Contains(err.Error(), "not found") {
			return "", nil
		}
		return "", err
	}
	return d.Digest.String(), nil
}

func (g *Registry) manifestExists(ctx context.Context, repo, dgst string) (bool, error) {
	rep, err := g.repository(ctx, repo)
	if err != nil {
		return false, err
	}
	ms, err := rep.Manifests(ctx)
	if err != nil {
		return false, err
	}
	return ms.Exists(ctx, digest.Digest(dgst))
}

func (g *Registry) manifest(w http.ResponseWriter, r *http.Request, c identity.Caller, rt route) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if !g.gated(c, rt.repo) {
			g.app.ServeHTTP(w, r)
			return
		}
		dgst := rt.ref
		if !strings.Contains(dgst, ":") {
			d, err := g.tagDigest(r.Context(), rt.repo, rt.ref)
			if err != nil {
				g.internal(w, "resolve tag", err)
				return
			}
			if d == "" {
				if g.missing(w, r, c, rt) {
					return
				}
				g.app.ServeHTTP(w, r) // distribution answers MANIFEST_UNKNOWN
				return
			}
			dgst = d
		} else if !ValidDigest(dgst) {
			writeError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("invalid digest %q", dgst), nil)
			return
		}
		state, found, err := g.servableManifest(r.Context(), rt.repo, dgst)
		if err != nil {
			g.internal(w, "gate", err)
			return
		}
		if !found {
			exists, err := g.manifestExists(r.Context(), rt.repo, dgst)
			if err != nil {
				g.internal(w, "manifest exists", err)
				return
			}
			if !exists {
				if g.missing(w, r, c, rt) {
					return
				}
				g.app.ServeHTTP(w, r)
				return
			}
			// Stored but never recorded (a crash between storing and recording): not vetted.
			state = store.Quarantined
		}
		if state == store.Approved {
			if dgst != rt.ref {
				// Serve exactly the digest that was checked: the tag could
				// move between the check and distribution's own lookup.
				r = r.Clone(r.Context())
				r.URL.Path = strings.TrimSuffix(r.URL.Path, rt.ref) + dgst
				r.URL.RawPath = ""
			}
			g.app.ServeHTTP(w, r)
			return
		}
		g.refuse(w, r, c, rt, dgst, g.stateMessage(r.Context(), dgst, state))
	case http.MethodPut:
		if !c.CanPush() {
			g.deny(w, r, c, rt, rt.ref, fmt.Sprintf("role %q cannot push; a pusher, scanner or admin token can", roleName(c)))
			return
		}
		g.cache.manifestWritten()
		defer g.cache.manifestWritten()
		g.putManifest(w, r, c, rt)
	case http.MethodDelete:
		if !g.canDelete(c, rt.repo) {
			g.deny(w, r, c, rt, rt.ref, fmt.Sprintf("role %q cannot delete in %s; only an admin can delete vetted content", roleName(c), rt.repo))
			return
		}
		g.cache.manifestWritten()
		defer g.cache.manifestWritten()
		dgst := rt.ref
		if !strings.Contains(dgst, ":") {
			// Deleting a tag leaves the manifest and its record in place.
			g.app.ServeHTTP(w, r)
			return
		}
		g.app.ServeHTTP(w, r)
		if w.(*statusWriter).status() == http.StatusAccepted {
			if err := g.store.ForgetManifest(r.Context(), rt.repo, dgst); err != nil && !errors.Is(err, store.ErrNotFound) {
				g.log.Error("forget manifest", "repo", rt.repo, "digest", dgst, "err", err)
			}
		}
	default:
		g.app.ServeHTTP(w, r)
	}
}

// missing asks the OnMissing hook about a manifest the registry lacks.
func (g *Registry) missing(w http.ResponseWriter, r *http.Request, c identity.Caller, rt route) bool {
	if g.missingHook == nil {
		return false
	}
	msg := g.missingHook(r.Context(), rt.repo, rt.ref, c)
	if msg == "" {
		return false
	}
	g.deny(w, r, c, rt, rt.ref, msg)
	return true
}

func roleName(c identity.Caller) string {
	if c.Role == "" {
		return "anonymous"
	}
	return string(c.Role)
}

func (g *Registry) canDelete(c identity.Caller, repo string) bool {
	return c.IsAdmin() || (c.CanPush() && g.allow.match(repo))
}

// stateMessage explains why a digest is not served and what to do next.
func (g *Registry) stateMessage(ctx context.Context, dgst string, state store.State) string {
	img, err := g.store.Image(ctx, dgst)
	reason := ""
	if err == nil && len(img.History) > 0 {
		reason = img.History[len(img.History)-1].Reason
	}
	switch state {
	case store.Rejected:
		return fmt.Sprintf("%s is rejected: %s; it will not be served", dgst, orDash(reason))
	case store.Revoked:
		return fmt.Sprintf("%s is revoked: %s; it will not be served", dgst, orDash(reason))
	case store.Approved:
		return fmt.Sprintf("%s is approved", dgst)
	}
	if err == nil && img.State == store.Approved && img.Expires != nil {
		return fmt.Sprintf("%s: approval expired at %s; vet it again and approve with `airlock approve %s --reason TEXT`", dgst, img.Expires.UTC().Format(time.RFC3339), dgst)
	}
	return fmt.Sprintf("%s is quarantined: pending vetting; approve with `airlock approve %s --reason TEXT`", dgst, dgst)
}

func orDash(s string) string {
	if s == "" {
		return "no reason recorded"
	}
	return s
}

func (g *Registry) putManifest(w http.ResponseWriter, r *http.Request, c identity.Caller, rt route) {
	ctx := r.Context()
	body, err := io.ReadAll(io.LimitReader(r.Body, g.maxSize+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "MANIFEST_INVALID", "cannot read manifest body: "+err.Error(), nil)
		return
	}
	if int64(len(body)) > g.maxSize {
		writeError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", fmt.Sprintf("manifest is larger than the limit of %d bytes", g.maxSize), nil)
		return
	}
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	parsed, err := ParseManifest(strings.TrimSpace(ct), body)
	if err != nil {
		var me *ManifestError
		if errors.As(err, &me) {
			writeError(w, http.StatusBadRequest, me.Code, me.Message, nil)
			return
		}
		writeError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error(), nil)
		return
	}
	for _, u := range parsed.URLs {
		if !g.foreignAllowed(u) {
			writeError(w, http.StatusBadRequest, "MANIFEST_INVALID", fmt.Sprintf("a layer points to %q outside the registry; clients would fetch it unvetted. Push the layer, or allow the URL with foreignLayerUrls", u), nil)
			return
		}
	}
	var dgst string
	if strings.Contains(rt.ref, ":") {
		if !supportedDigest(rt.ref) {
			writeError(w, http.StatusBadRequest, "DIGEST_INVALID", unsupportedDigest(rt.ref), nil)
			return
		}
		if !ValidDigest(rt.ref) {
			writeError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("invalid digest %q: use sha256:<64 lowercase hex>", rt.ref), nil)
			return
		}
		dgst = computeDigest(strings.SplitN(rt.ref, ":", 2)[0], body)
		if dgst != rt.ref {
			writeError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("manifest digest is %s, not %s", dgst, rt.ref), nil)
			return
		}
	} else {
		if !ValidTag(rt.ref) {
			writeError(w, http.StatusBadRequest, "TAG_INVALID", fmt.Sprintf("invalid tag %q", rt.ref), nil)
			return
		}
		dgst = computeDigest("sha256", body)
		if !g.allow.match(rt.repo) {
			cur, err := g.resolveTag(ctx, rt.repo, rt.ref)
			if err != nil {
				g.internal(w, "resolve tag", err)
				return
			}
			if cur != "" && cur != dgst {
				state, _, err := g.store.ManifestServable(ctx, rt.repo, cur)
				if err != nil {
					g.internal(w, "gate", err)
					return
				}
				if state == store.Approved {
					g.deny(w, r, c, rt, cur, fmt.Sprintf("tag %s:%s points to approved %s and tags of approved digests are immutable; push under a new tag, or revoke %s first", rt.repo, rt.ref, cur, cur))
					return
				}
			}
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	sw := w.(*statusWriter)
	if parsed.Subject != "" {
		sw.onSuccess = func(h http.Header) { h.Set("OCI-Subject", parsed.Subject) }
	}
	g.app.ServeHTTP(w, r)
	if sw.status() != http.StatusCreated {
		return
	}
	_, err = g.store.RecordManifest(ctx, store.Manifest{
		Repository: rt.repo, Digest: dgst, MediaType: parsed.MediaType, ArtifactType: parsed.ArtifactType,
		Size: int64(len(body)), Subject: parsed.Subject, Blobs: parsed.Blobs, Children: parsed.Children,
		Annotations: parsed.Annotations, Actor: c.Name,
	})
	if err != nil {
		// The manifest is stored but unrecorded; the gate treats that as quarantined.
		g.log.Error("record manifest", "repo", rt.repo, "digest", dgst, "err", err)
	}
}

func (g *Registry) foreignAllowed(u string) bool {
	for _, re := range g.foreign {
		if re.MatchString(u) {
			return true
		}
	}
	return false
}

// supportedDigest reports whether content can be addressed by d here:
// distribution's storage addresses content by sha256 only, and a sha512 push
// would be stored and answered under a different digest than the client asked
// for. Refusing it up front is clearer than answering with a surprise.
func supportedDigest(d string) bool { return !strings.HasPrefix(d, "sha512:") }

func unsupportedDigest(d string) string {
	return fmt.Sprintf("%s: sha512 content addressing is not supported by this registry's storage; use sha256", short(d))
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19] + "…"
	}
	return d
}

func computeDigest(alg string, b []byte) string {
	var h hash.Hash = sha256.New()
	if alg == "sha512" {
		h = sha512.New()
	}
	h.Write(b)
	return alg + ":" + hex.EncodeToString(h.Sum(nil))
}

func (g *Registry) blob(w http.ResponseWriter, r *http.Request, c identity.Caller, rt route) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if !supportedDigest(rt.ref) {
			writeError(w, http.StatusNotFound, "BLOB_UNKNOWN", unsupportedDigest(rt.ref), nil)
			return
		}
		if !g.gated(c, rt.repo) {
			g.app.ServeHTTP(w, r)
			return
		}
		if !ValidDigest(rt.ref) {
			writeError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("invalid digest %q", rt.ref), nil)
			return
		}
		ok, err := g.servableBlob(r.Context(), rt.repo, rt.ref)
		if err != nil {
			g.internal(w, "gate", err)
			return
		}
		if !ok {
			g.refuse(w, r, c, rt, rt.ref, fmt.Sprintf("blob %s does not belong to any approved manifest in %s; it is served once an image holding it is approved", rt.ref, rt.repo))
			return
		}
		g.app.ServeHTTP(w, r)
	case http.MethodDelete:
		if !g.canDelete(c, rt.repo) {
			g.deny(w, r, c, rt, rt.ref, fmt.Sprintf("role %q cannot delete in %s; only an admin can delete vetted content", roleName(c), rt.repo))
			return
		}
		g.app.ServeHTTP(w, r)
	default:
		g.app.ServeHTTP(w, r)
	}
}

func (g *Registry) upload(w http.ResponseWriter, r *http.Request, c identity.Caller, rt route) {
	if !c.CanPush() {
		g.deny(w, r, c, rt, "", fmt.Sprintf("role %q cannot push; a pusher, scanner or admin token can", roleName(c)))
		return
	}
	// distribution reads these parameters with FormValue, which prefers a
	// form-encoded body over the query string (and parses the form of every
	// upload it resumes anyway); read them the same way, or a mount named in
	// the body would skip the check made on the query.
	for _, k := range []string{"digest", "mount"} {
		if d := r.FormValue(k); d != "" && !supportedDigest(d) {
			writeError(w, http.StatusBadRequest, "DIGEST_INVALID", unsupportedDigest(d), nil)
			return
		}
	}
	if mount, from := r.FormValue("mount"), r.FormValue("from"); r.Method == http.MethodPost && mount != "" && from != "" {
		if !ValidRepository(from) {
			writeError(w, http.StatusBadRequest, "NAME_INVALID", fmt.Sprintf("invalid repository name %q in from", from), nil)
			return
		}
		if g.gated(c, from) {
			ok, err := g.store.BlobServable(r.Context(), from, mount)
			if err != nil {
				g.internal(w, "gate", err)
				return
			}
			if !ok {
				g.deny(w, r, c, route{kind: routeUpload, repo: from, ref: mount}, mount,
					fmt.Sprintf("cannot mount %s from %s: it does not belong to any approved manifest there", mount, from))
				return
			}
		}
	}
	g.app.ServeHTTP(w, r)
}

// referrers answers GET /v2/<name>/referrers/<digest> from the store.
func (g *Registry) referrers(w http.ResponseWriter, r *http.Request, c identity.Caller, rt route) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "referrers supports GET and HEAD", nil)
		return
	}
	if !ValidDigest(rt.ref) {
		writeError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("invalid digest %q", rt.ref), nil)
		return
	}
	ctx := r.Context()
	gated := g.gated(c, rt.repo)
	if gated {
		state, found, err := g.servableManifest(ctx, rt.repo, rt.ref)
		if err != nil {
			g.internal(w, "gate", err)
			return
		}
		if found && state != store.Approved {
			g.deny(w, r, c, rt, rt.ref, g.stateMessage(ctx, rt.ref, state))
			return
		}
	}
	refs, err := g.store.Referrers(ctx, rt.repo, rt.ref)
	if err != nil {
		g.internal(w, "referrers", err)
		return
	}
	filter := r.URL.Query()["artifactType"]
	type desc struct {
		MediaType    string            `json:"mediaType"`
		Digest       string            `json:"digest"`
		Size         int64             `json:"size"`
		ArtifactType string            `json:"artifactType,omitempty"`
		Annotations  map[string]string `json:"annotations,omitempty"`
	}
	list := []desc{}
	for _, ref := range refs {
		if gated && ref.State != store.Approved {
			continue
		}
		if len(filter) > 0 && !contains(filter, ref.ArtifactType) {
			continue
		}
		list = append(list, desc{MediaType: ref.MediaType, Digest: ref.Digest, Size: ref.Size, ArtifactType: ref.ArtifactType, Annotations: ref.Annotations})
	}
	body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": MediaTypeOCIIndex, "manifests": list})
	if len(filter) > 0 {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", MediaTypeOCIIndex)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// internal answers 503 and logs: the gate fails closed when the store cannot answer.
func (g *Registry) internal(w http.ResponseWriter, what string, err error) {
	g.log.Error(what, "err", err)
	writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "the vetting store cannot answer right now; nothing is served until it can", nil)
}

func writeError(w http.ResponseWriter, status int, code, msg string, detail any) {
	e := map[string]any{"code": code, "message": msg}
	if detail != nil {
		e["detail"] = detail
	}
	body, _ := json.Marshal(map[string]any{"errors": []any{e}})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// statusWriter remembers the status code and keeps the fast paths of the
// underlying writer (sendfile via ReadFrom, Flush).
type statusWriter struct {
	http.ResponseWriter
	code      int
	onSuccess func(http.Header)
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
		if s.onSuccess != nil && code >= 200 && code < 300 {
			s.onSuccess(s.ResponseWriter.Header())
		}
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	if s.code == 0 {
		s.WriteHeader(http.StatusOK)
	}
	if rf, ok := s.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(s.ResponseWriter, src)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}
