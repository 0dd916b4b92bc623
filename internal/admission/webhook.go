// Package admission is Airlock's Kubernetes admission controller: a
// validating webhook that lets a pod run only images from the private
// registry, pinned by a digest that is approved, not revoked, not expired and
// whose approval attestation verifies; and a mutating webhook that pins
// private tags (and optionally mapped public references) to their approved
// digest. Decisions come from an in-memory Index of approved digests kept
// fresh from the store, never from a registry round trip, and fail closed.
package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/airlock-dev/airlock/internal/source"
	"github.com/airlock-dev/airlock/internal/store"
)

// Mode is what the validating webhook does with a pod it would deny.
type Mode string

// Modes, set per namespace.
const (
	// Enforce denies the request.
	Enforce Mode = "enforce"
	// Warn admits it, with one warning per problem shown to the client (kubectl).
	Warn Mode = "warn"
	// DryRun admits it silently; the would-be denial is logged, counted and
	// put in the API server's audit annotations.
	DryRun Mode = "dry-run"
)

// ParseMode parses enforce, warn or dry-run.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Enforce, Warn, DryRun:
		return m, nil
	}
	return "", fmt.Errorf("admission mode %q is not one of enforce, warn, dry-run", s)
}

// Paths the webhook serves.
const (
	ValidatePath = "/admission/validate"
	MutatePath   = "/admission/mutate"
)

// DefaultMaxRequestBytes bounds an AdmissionReview body. The API server
// refuses objects over 3 MiB (etcd's limit is lower); an UPDATE carries the
// object twice.
const DefaultMaxRequestBytes = 7 << 20

// Config is the webhook's policy, all of it from configuration.
type Config struct {
	// RegistryHosts are the private registry as pods name it (HOST or
	// HOST:PORT, matched exactly); the first is used in suggested references.
	RegistryHosts []string
	// Mode applies to namespaces without an entry in Namespaces; default enforce.
	Mode Mode
	// Namespaces maps namespace globs (path.Match) to a mode; the first match wins.
	Namespaces []NamespaceMode
	// Exempt lists namespace globs whose pods are admitted whatever their
	// images; every admission that would have been denied is audited.
	Exempt []string
	// PodsOnly makes the mutating webhook rewrite Pods only: pod templates of
	// workloads (kept in Git by GitOps tools) are validated but not rewritten.
	PodsOnly bool
	// MapExternal lets the mutating webhook rewrite a public reference to its
	// approved private copy, naming it as import does (Mappings FROM=TO, else
	// <upstream-host>/<path>).
	MapExternal bool
	Mappings    map[string]string
	// MaxRequestBytes bounds a request body; default DefaultMaxRequestBytes.
	MaxRequestBytes int64
}

// NamespaceMode is one "GLOB=MODE" entry.
type NamespaceMode struct {
	Glob string
	Mode Mode
}

// ParseNamespaceModes parses "GLOB=MODE" entries.
func ParseNamespaceModes(entries []string) ([]NamespaceMode, error) {
	var out []NamespaceMode
	for _, e := range entries {
		g, m, ok := strings.Cut(e, "=")
		if !ok || g == "" {
			return nil, fmt.Errorf("admission namespace mode %q: want NAMESPACE=MODE, e.g. 'staging-*=warn'", e)
		}
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("admission namespace mode %q: bad glob: %v", e, err)
		}
		mode, err := ParseMode(m)
		if err != nil {
			return nil, err
		}
		out = append(out, NamespaceMode{Glob: g, Mode: mode})
	}
	return out, nil
}

// Webhook serves the validating and mutating admission webhooks.
type Webhook struct {
	cfg     Config
	hosts   hostSet
	primary string
	idx     *Index
	log     *slog.Logger
	metrics *Metrics
	mux     *http.ServeMux
	// parsed caches ParseImage by reference (a quarter of a decision's CPU
	// is distribution's regular expressions; clusters repeat images).
	parsed  sync.Map // string → parsedImage
	nparsed atomic.Int64
}

type parsedImage struct {
	img Image
	err error
}

// maxParsedImages bounds the parse cache; past it references are parsed each time.
const maxParsedImages = 10000

func (w *Webhook) parse(s string) (Image, error) {
	if v, ok := w.parsed.Load(s); ok {
		p := v.(parsedImage)
		return p.img, p.err
	}
	img, err := ParseImage(s)
	if w.nparsed.Add(1) <= maxParsedImages {
		w.parsed.Store(s, parsedImage{img, err})
	}
	return img, err
}

// New assembles the webhook. metrics may be nil (not recorded).
func New(cfg Config, idx *Index, log *slog.Logger, metrics *Metrics) (*Webhook, error) {
	if idx == nil {
		return nil, errors.New("admission webhook: no index")
	}
	hosts, err := newHostSet(cfg.RegistryHosts)
	if err != nil {
		return nil, err
	}
	if cfg.Mode == "" {
		cfg.Mode = Enforce
	}
	if _, err := ParseMode(string(cfg.Mode)); err != nil {
		return nil, err
	}
	for _, g := range cfg.Exempt {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("admission exemption %q: bad glob: %v", g, err)
		}
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	metrics.watch(idx)
	w := &Webhook{cfg: cfg, hosts: hosts, primary: strings.TrimSpace(cfg.RegistryHosts[0]), idx: idx, log: log, metrics: metrics}
	if w.primary == "" {
		w.primary = hosts.first()
	}
	w.mux = http.NewServeMux()
	w.mux.HandleFunc("POST "+ValidatePath, func(rw http.ResponseWriter, r *http.Request) { w.serve(rw, r, false) })
	w.mux.HandleFunc("POST "+MutatePath, func(rw http.ResponseWriter, r *http.Request) { w.serve(rw, r, true) })
	w.mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) { fmt.Fprintln(rw, "ok") })
	w.mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		if _, err := idx.current(r.Context()); err != nil {
			http.Error(rw, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ready")
	})
	return w, nil
}

// ServeHTTP serves POST /admission/validate, POST /admission/mutate,
// GET /healthz and GET /readyz.
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) { w.mux.ServeHTTP(rw, r) }

// Metrics are the webhook's metrics.
func (w *Webhook) Metrics() *Metrics { return w.metrics }

// Index is the approval index the webhook decides from.
func (w *Webhook) Index() *Index { return w.idx }

// Result labels of the decisions metric.
const (
	ResultAllowed     = "allowed"
	ResultDenied      = "denied"
	ResultWarned      = "warned"
	ResultDryRun      = "dry-run"
	ResultExempt      = "exempt"
	ResultMutated     = "mutated"
	ResultUnavailable = "unavailable"
	ResultBadRequest  = "bad-request"
)

func (w *Webhook) serve(rw http.ResponseWriter, r *http.Request, mutate bool) {
	start := time.Now()
	name := "validate"
	if mutate {
		name = "mutate"
	}
	result := ResultBadRequest
	defer func() { w.metrics.observe(name, result, time.Since(start)) }()
	review, err := w.decode(rw, r)
	if err != nil {
		status := http.StatusBadRequest
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			status = http.StatusRequestEntityTooLarge
		}
		w.log.Warn("bad admission request", "webhook", name, "remote", r.RemoteAddr, "err", err)
		http.Error(rw, err.Error(), status)
		return
	}
	var resp *admissionv1.AdmissionResponse
	if mutate {
		resp, result = w.Mutate(r.Context(), review.Request)
	} else {
		resp, result = w.Validate(r.Context(), review.Request)
	}
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	b, err := json.Marshal(out)
	if err != nil {
		http.Error(rw, "encode admission response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	_, _ = rw.Write(b)
}

// DecodeReview parses an AdmissionReview admission.k8s.io/v1 request body:
// exact keys, no duplicates, a request with a uid, kind and operation.
func DecodeReview(body []byte) (admissionv1.AdmissionReview, error) {
	var rv admissionv1.AdmissionReview
	if err := decodeStrict(body, &rv); err != nil {
		return rv, fmt.Errorf("the body is not an AdmissionReview: %v", err)
	}
	if rv.APIVersion != "admission.k8s.io/v1" || rv.Kind != "AdmissionReview" {
		return rv, fmt.Errorf("the body is %s %s, not an AdmissionReview of admission.k8s.io/v1; set admissionReviewVersions: [v1] in the webhook configuration", rv.APIVersion, rv.Kind)
	}
	if rv.Request == nil {
		return rv, errors.New("the AdmissionReview has no request")
	}
	if rv.Request.UID == "" || rv.Request.Kind.Kind == "" || rv.Request.Operation == "" {
		return rv, errors.New("the AdmissionReview request lacks a uid, kind or operation")
	}
	return rv, nil
}

func (w *Webhook) decode(rw http.ResponseWriter, r *http.Request) (admissionv1.AdmissionReview, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return admissionv1.AdmissionReview{}, fmt.Errorf("content type %q is not application/json", ct)
		}
	}
	if r.ContentLength > w.cfg.MaxRequestBytes {
		return admissionv1.AdmissionReview{}, &http.MaxBytesError{Limit: w.cfg.MaxRequestBytes}
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, w.cfg.MaxRequestBytes))
	if err != nil {
		return admissionv1.AdmissionReview{}, err
	}
	return DecodeReview(body)
}

// target is the part of a request the webhook judges.
type target struct {
	images  []ContainerImage
	inspect bool   // a kind and subresource with a pod spec, on CREATE or UPDATE
	why     string // why it is not inspected
}

func (w *Webhook) target(req *admissionv1.AdmissionRequest) (target, error) {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return target{why: "operation " + string(req.Operation) + " starts no container"}, nil
	}
	group, kind := req.Kind.Group, req.Kind.Kind
	if req.SubResource != "" && !(group == "" && kind == "Pod" && req.SubResource == "ephemeralcontainers") {
		return target{why: "subresource " + req.SubResource + " changes no image"}, nil
	}
	if !Inspected(group, kind) {
		return target{why: "kind " + kind + " has no pod spec"}, nil
	}
	imgs, _, err := ContainerImages(group, kind, req.Object.Raw)
	if err != nil {
		return target{}, err
	}
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		old, _, err := ContainerImages(group, kind, req.OldObject.Raw)
		if err != nil {
			return target{}, fmt.Errorf("old object: %w", err)
		}
		// Only images this update sets are judged: a running pod whose digest
		// was revoked since can still get its finalizers removed, and the
		// pods a scaled workload creates are judged when they are created.
		was := map[string]string{}
		for _, o := range old {
			was[string(o.Field)+"\x00"+o.Container] = o.Image
		}
		changed := imgs[:0:0]
		for _, c := range imgs {
			if prev, ok := was[string(c.Field)+"\x00"+c.Container]; !ok || prev != c.Image {
				changed = append(changed, c)
			}
		}
		imgs = changed
	}
	return target{images: imgs, inspect: true}, nil
}

func allow() *admissionv1.AdmissionResponse { return &admissionv1.AdmissionResponse{Allowed: true} }

func deny(code int32, msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{
		Status: metav1.StatusFailure, Code: code, Reason: metav1.StatusReasonForbidden, Message: msg,
	}}
}

// Problem is why one container's image may not run, and what to deploy instead.
type Problem struct {
	Container ContainerImage
	Reason    string
	Use       string // pinned approved reference to deploy instead, when known
}

func (p Problem) String() string {
	s := fmt.Sprintf("%s: image %q %s", p.Container.Where(), p.Container.Image, p.Reason)
	if p.Use != "" {
		s += "; use " + p.Use
	}
	return s
}

// Validate judges a request. It returns the response and the result label.
func (w *Webhook) Validate(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, string) {
	t, err := w.target(req)
	if err != nil {
		return deny(http.StatusBadRequest, "airlock: "+err.Error()), ResultBadRequest
	}
	if !t.inspect {
		return allow(), ResultAllowed
	}
	var problems []Problem
	for _, c := range t.images {
		p, err := w.judge(ctx, c)
		if err != nil {
			w.log.Error("admission denied: approval index unavailable", "namespace", req.Namespace, "name", req.Name, "err", err)
			return deny(http.StatusServiceUnavailable, "airlock: cannot check images against approvals, so nothing is admitted: "+err.Error()+"; check that the Airlock store is reachable"), ResultUnavailable
		}
		if p != nil {
			problems = append(problems, *p)
		}
	}
	if len(problems) == 0 {
		return allow(), ResultAllowed
	}
	lines := make([]string, len(problems))
	for i, p := range problems {
		lines[i] = p.String()
	}
	what := fmt.Sprintf("%s %s/%s", req.Kind.Kind, req.Namespace, objectName(req))
	if w.exempt(req.Namespace) {
		if !dryRun(req) {
			if err := w.auditExemption(ctx, req, problems); err != nil {
				w.log.Error("admission exemption could not be audited; denying", "namespace", req.Namespace, "err", err)
				return deny(http.StatusServiceUnavailable, "airlock: namespace "+req.Namespace+" is exempt, but the exemption could not be audited, so it does not apply: "+err.Error()), ResultUnavailable
			}
		}
		w.log.Warn("admission exemption used", "object", what, "problems", strings.Join(lines, "; "))
		resp := allow()
		resp.Warnings = warnings("airlock: namespace "+req.Namespace+" is exempt (audited): ", lines)
		resp.AuditAnnotations = map[string]string{"exempt": strings.Join(lines, "; ")}
		return resp, ResultExempt
	}
	switch w.mode(req.Namespace) {
	case Warn:
		w.log.Info("admission would deny (warn mode)", "object", what, "problems", strings.Join(lines, "; "))
		resp := allow()
		resp.Warnings = warnings("airlock (warn mode, would deny): ", lines)
		resp.AuditAnnotations = map[string]string{"would-deny": strings.Join(lines, "; ")}
		return resp, ResultWarned
	case DryRun:
		w.log.Info("admission would deny (dry-run mode)", "object", what, "problems", strings.Join(lines, "; "))
		resp := allow()
		resp.AuditAnnotations = map[string]string{"would-deny": strings.Join(lines, "; ")}
		return resp, ResultDryRun
	}
	msg := "airlock: only approved images from the private registry, pinned by digest, may run in " + what + ":\n" + strings.Join(lines, "\n")
	return deny(http.StatusForbidden, msg), ResultDenied
}

func objectName(req *admissionv1.AdmissionRequest) string {
	if req.Name != "" {
		return req.Name
	}
	var o struct {
		Metadata struct {
			GenerateName string `json:"generateName"`
		} `json:"metadata"`
	}
	if json.Unmarshal(req.Object.Raw, &o) == nil && o.Metadata.GenerateName != "" {
		return o.Metadata.GenerateName + "*"
	}
	return "(unnamed)"
}

func dryRun(req *admissionv1.AdmissionRequest) bool { return req.DryRun != nil && *req.DryRun }

// warnings makes one warning per problem, kept under the 256 characters the
// API server passes on whole.
func warnings(prefix string, lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		s := prefix + l
		if len(s) > 250 {
			s = s[:247] + "..."
		}
		out = append(out, s)
	}
	return out
}

func (w *Webhook) exempt(ns string) bool {
	for _, g := range w.cfg.Exempt {
		if ok, _ := path.Match(g, ns); ok {
			return true
		}
	}
	return false
}

func (w *Webhook) mode(ns string) Mode {
	for _, nm := range w.cfg.Namespaces {
		if ok, _ := path.Match(nm.Glob, ns); ok {
			return nm.Mode
		}
	}
	return w.cfg.Mode
}

// AuditActionExempted is the audit action of an admission an exemption allowed.
const AuditActionExempted = "admission.exempted"

func (w *Webhook) auditExemption(ctx context.Context, req *admissionv1.AdmissionRequest, problems []Problem) error {
	type item struct {
		Container string `json:"container"`
		Image     string `json:"image"`
		Reason    string `json:"reason"`
	}
	detail := struct {
		Kind      string `json:"kind"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		User      string `json:"user"`
		Operation string `json:"operation"`
		UID       string `json:"uid"`
		Images    []item `json:"images"`
	}{req.Kind.Kind, req.Namespace, objectName(req), req.UserInfo.Username, string(req.Operation), string(req.UID), nil}
	for _, p := range problems {
		detail.Images = append(detail.Images, item{p.Container.Where(), p.Container.Image, p.Reason})
	}
	b, err := json.Marshal(detail)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err = w.idx.Store().Audit(actx, store.AuditEntry{Actor: "airlock admission", Action: AuditActionExempted,
		Subject: req.Namespace + "/" + objectName(req), Detail: b})
	return err
}

// judge decides one container image: nil when it may run. An error means
// the index could not answer.
func (w *Webhook) judge(ctx context.Context, c ContainerImage) (*Problem, error) {
	img, err := w.parse(c.Image)
	if err != nil {
		return &Problem{Container: c, Reason: "cannot be parsed: " + err.Error()}, nil
	}
	if !w.hosts.has(img.Host) {
		use, err := w.suggest(ctx, img)
		if err != nil {
			return nil, err
		}
		return &Problem{Container: c, Reason: fmt.Sprintf("is not from the private registry %s (its registry is %s)", w.primary, img.Host), Use: use}, nil
	}
	if img.Digest == "" {
		use, err := w.suggest(ctx, img)
		if err != nil {
			return nil, err
		}
		return &Problem{Container: c, Reason: "is not pinned by digest", Use: use}, nil
	}
	err = w.idx.Check(ctx, img.Repository, img.Digest)
	var r *Refusal
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &r):
		use := ""
		if img.Tag != "" {
			if d, err := w.idx.Resolve(ctx, img.Repository, img.Tag); err == nil && d != img.Digest {
				use = img.Pinned(d)
			}
		}
		return &Problem{Container: c, Reason: "is refused: " + r.Reason, Use: use}, nil
	default:
		return nil, err
	}
}

// pin returns the approved, digest-pinned reference the mutating webhook
// rewrites img to, or "" when there is none or img is pinned already. An
// error means the index could not answer.
func (w *Webhook) pin(ctx context.Context, img Image) (string, error) {
	if !w.hosts.has(img.Host) {
		if !w.cfg.MapExternal {
			return "", nil
		}
		return w.privateCopy(ctx, img)
	}
	if img.Digest != "" {
		return "", nil
	}
	return w.approvedPin(ctx, img)
}

// suggest names the approved reference a denied image should be replaced with.
func (w *Webhook) suggest(ctx context.Context, img Image) (string, error) {
	if w.hosts.has(img.Host) {
		return w.approvedPin(ctx, img)
	}
	return w.privateCopy(ctx, img)
}

// privateCopy is the approved private copy of a public reference, named as
// import names it.
func (w *Webhook) privateCopy(ctx context.Context, img Image) (string, error) {
	repo := source.PrivateRepository(source.Source{Registry: img.Host, Repository: img.Repository}, w.cfg.Mappings)
	return w.approvedPin(ctx, Image{Host: w.primary, Repository: repo, Tag: img.Tag, Digest: img.Digest})
}

// approvedPin pins a private reference: its digest if approved, else the
// approved digest its tag (default latest) points to; "" when neither.
func (w *Webhook) approvedPin(ctx context.Context, p Image) (string, error) {
	var err error
	dgst := p.Digest
	if dgst != "" {
		err = w.idx.Check(ctx, p.Repository, dgst)
	} else {
		if p.Tag == "" {
			p.Tag = "latest"
		}
		dgst, err = w.idx.Resolve(ctx, p.Repository, p.Tag)
	}
	var r *Refusal
	if errors.As(err, &r) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return p.Pinned(dgst), nil
}

// Patch is one JSONPatch (RFC 6902) operation.
type Patch struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value string `json:"value"`
}

// Mutate pins images of a request to approved digests. It never denies:
// whatever it cannot pin is left for the validating webhook to judge.
func (w *Webhook) Mutate(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, string) {
	t, err := w.target(req)
	if err != nil || !t.inspect || w.exempt(req.Namespace) {
		return allow(), ResultAllowed
	}
	if w.cfg.PodsOnly && !(req.Kind.Group == "" && req.Kind.Kind == "Pod") {
		return allow(), ResultAllowed
	}
	var patches []Patch
	var notes []string
	for _, c := range t.images {
		img, err := w.parse(c.Image)
		if err != nil {
			continue
		}
		to, err := w.pin(ctx, img)
		if err != nil {
			w.log.Warn("image not pinned: approval index unavailable", "image", c.Image, "err", err)
			continue
		}
		if to == "" || to == c.Image {
			continue
		}
		patches = append(patches, Patch{Op: "replace", Path: c.Path, Value: to})
		notes = append(notes, fmt.Sprintf("%s: %s → %s", c.Where(), c.Image, to))
	}
	if len(patches) == 0 {
		return allow(), ResultAllowed
	}
	b, err := json.Marshal(patches)
	if err != nil {
		return allow(), ResultAllowed
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp := allow()
	resp.Patch, resp.PatchType = b, &pt
	resp.Warnings = warnings("airlock pinned ", notes)
	resp.AuditAnnotations = map[string]string{"pinned": strings.Join(notes, "; ")}
	return resp, ResultMutated
}
