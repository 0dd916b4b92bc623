package server

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/airlock-dev/airlock/internal/attest"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/identity"
	"github.com/airlock-dev/airlock/internal/pipeline"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/registry"
	"github.com/airlock-dev/airlock/internal/scan"
	"github.com/airlock-dev/airlock/internal/store"
)

// Decider turns evidence and human approvals into decisions: it evaluates
// the policy, records approvals (N distinct approvers per repository), and
// signs and stores the approval attestation.
type Decider struct {
	Store    store.Store
	Registry *registry.Registry
	Signer   crypto.Signer
	Policy   *policy.Policy
	Log      *slog.Logger
	Host     string // registry host, named in attestations
	// KeyCreated is the key file's path when this start created the key.
	KeyCreated string
	// Webhook receives alerts as JSON POSTs (config alerts.webhook); HTTP
	// is the client that posts them (nil: http.DefaultClient).
	Webhook string
	HTTP    *http.Client
	// Metrics count alerts and revocations (nil: not counted).
	Metrics  *DecisionMetrics
	clock    atomic.Pointer[func() time.Time] // SetClock; nil: time.Now
	reevalMu sync.Mutex                       // one re-evaluation at a time in this process
	required []requirement
}

type requirement struct {
	glob string
	n    int
}

func newDecider(cfg config.Config, st store.Store, reg *registry.Registry, log *slog.Logger) (*Decider, error) {
	d := &Decider{Store: st, Registry: reg, Log: log, Host: cfg.RegistryHost, Webhook: cfg.Alerts.Webhook}
	var err error
	if cfg.Signing.KeyFile != "" {
		if d.Signer, err = attest.LoadPrivateKey(cfg.Signing.KeyFile); err != nil {
			return nil, err
		}
	} else {
		path := filepath.Join(cfg.Data, attest.PrivateKeyFile)
		var created bool
		if d.Signer, created, err = attest.LoadOrCreateKey(path); err != nil {
			return nil, err
		}
		if created {
			d.KeyCreated = path
		}
	}
	if cfg.Policy.File != "" {
		if d.Policy, err = policy.Load(cfg.Policy.File); err != nil {
			return nil, err
		}
	} else {
		d.Policy = policy.Default()
	}
	for _, r := range cfg.Approval.Required {
		g, n, _ := strings.Cut(r, "=")
		k, _ := strconv.Atoi(n)
		d.required = append(d.required, requirement{glob: g, n: k})
	}
	log.Info("decisions", "policy", d.Policy.Name, "policyDigest", d.Policy.Digest, "signingKey", attest.KeyID(d.Signer.Public()))
	return d, nil
}

// SetClock replaces the clock of waiver expiry and grace periods (tests,
// simulations). Safe while the server runs.
func (d *Decider) SetClock(now func() time.Time) { d.clock.Store(&now) }

// Required is how many distinct approvers a digest held in repos needs: the
// most any of its repositories asks for (first matching glob each; default 1).
func (d *Decider) Required(repos []string) int {
	n := 1
	for _, repo := range repos {
		for _, r := range d.required {
			if registry.MatchGlob(r.glob, repo) {
				n = max(n, r.n)
				break
			}
		}
	}
	return n
}

// Verdict evaluates the active policy over the digest's evidence now.
func (d *Decider) Verdict(ctx context.Context, digest string) (policy.Verdict, policy.Evidence, error) {
	ev, err := policy.GatherAt(ctx, d.Store, digest, nil, d.now())
	if err != nil {
		return policy.Verdict{}, ev, err
	}
	v, err := d.Policy.Evaluate(ev)
	return v, ev, err
}

// ErrPolicyDenied means the policy denies a digest a human tried to approve.
var ErrPolicyDenied = errors.New("the policy denies this digest")

// Approval is the answer to an approval: the image, where the approval
// stands, and the attestations signed when it completed.
type Approval struct {
	store.Image
	Approval     *ApprovalStatus     `json:"approval,omitempty"`
	Attestations []store.Attestation `json:"attestations,omitempty"`
}

// ApprovalStatus counts approvals towards the required number.
type ApprovalStatus struct {
	Approvers []string `json:"approvers"`
	Required  int      `json:"required"`
	Approved  bool     `json:"approved"`
}

// Approve records actor's approval; with the last approver needed the
// digest is approved and its attestation signed and stored. Fails closed:
// if the attestation cannot be stored the approval is revoked at once.
func (d *Decider) Approve(ctx context.Context, digest, actor, reason string, expires *time.Time) (Approval, error) {
	v, ev, err := d.Verdict(ctx, digest)
	if err != nil {
		return Approval{}, err
	}
	if v.Effect == policy.Deny {
		return Approval{}, fmt.Errorf("%w: %s", ErrPolicyDenied, policy.RejectReason(v))
	}
	sum, _ := json.Marshal(v.Summarize())
	res, err := d.Store.RecordApproval(ctx, store.ApprovalRequest{
		Digest: digest, Actor: actor, Reason: reason, Expires: expires,
		Required: d.Required(ev.Image.Repositories), Policy: sum,
	})
	if err != nil {
		return Approval{}, err
	}
	out := Approval{Image: res.Image, Approval: &ApprovalStatus{Required: res.Required, Approved: res.Approved}}
	for _, a := range res.Approvals {
		out.Approval.Approvers = append(out.Approval.Approvers, a.Actor)
	}
	if !res.Approved {
		return out, nil
	}
	atts, err := d.Attest(ctx, res.Image, res.Approvals, res.Required, v, ev)
	if err != nil {
		d.Log.Error("attestation failed; revoking the approval", "digest", digest, "err", err)
		if _, rerr := d.Store.Transition(context.WithoutCancel(ctx), digest, store.Revoked, registry.OwnActor,
			"the approval attestation could not be signed or stored: "+err.Error(), nil); rerr != nil {
			d.Log.Error("revoke after failed attestation", "digest", digest, "err", rerr)
		}
		return out, fmt.Errorf("approval of %s revoked: its attestation could not be stored: %w", digest, err)
	}
	out.Attestations = atts
	if out.Image, err = d.Store.Image(ctx, digest); err != nil {
		return out, err
	}
	return out, nil
}

// AutoApprove is the decide stage's approval: policy allow on a complete pipeline.
func (d *Decider) AutoApprove(ctx context.Context, digest string, v policy.Verdict) error {
	_, err := d.Approve(ctx, digest, policy.Actor, fmt.Sprintf("policy %s allows it and every vetting stage ran", v.Policy), nil)
	return err
}

// Attest signs the approval attestation of img and stores it in every
// repository holding img, for img and (an index) each child: under
// sha256-<hex>.att and as a referrer.
func (d *Decider) Attest(ctx context.Context, img store.Image, approvals []store.Approval, required int, v policy.Verdict, ev policy.Evidence) ([]store.Attestation, error) {
	if d.Registry == nil {
		return nil, errors.New("no registry to store attestations in")
	}
	if len(img.Repositories) == 0 {
		return nil, fmt.Errorf("%s is in no repository", img.Digest)
	}
	at := time.Now().UTC()
	if n := len(img.History); n > 0 {
		at = img.History[n-1].At.UTC()
	}
	pred := attest.Approval{
		Decision: "approved", Digest: img.Digest, MediaType: img.MediaType, ApprovedAt: at, Expires: img.Expires,
		Required: required,
		Policy:   attest.PolicyRef{Name: v.Policy, Digest: v.PolicyDigest, Verdict: string(v.Effect), Rules: v.Summarize().Fired},
		Signer:   attest.SignerRef{KeyID: attest.KeyID(d.Signer.Public())},
		Airlock:  attest.AirlockInfo{Version: Version, RegistryHost: d.Host},
	}
	if n := len(img.History); n > 0 {
		pred.Reason = img.History[n-1].Reason
	}
	for _, a := range approvals {
		pred.Approvers = append(pred.Approvers, attest.Approver{Name: a.Actor, At: a.At.UTC(), Reason: a.Reason, Expires: a.Expires})
	}
	for _, name := range ev.StageNames() {
		s := ev.Stages[name]
		pred.Evidence = append(pred.Evidence, attest.Evidence{Stage: name, Status: s.Status, Digest: s.EvidenceDigest})
	}
	pred.Evidence = append(pred.Evidence, attest.Evidence{Stage: "decide", Status: "done", Digest: v.EvidenceDigest})
	if ev.Source.Imported {
		pred.Source = &attest.SourceRef{Reference: ev.Source.Reference, Registry: ev.Source.Registry, TagMoved: ev.Source.TagMoved}
		pred.Source.ResolvedAt, _ = time.Parse(time.RFC3339, ev.Source.ResolvedAt)
	}
	body, err := json.Marshal(pred)
	if err != nil {
		return nil, err
	}
	type target struct {
		digest, mediaType string
		size              int64
	}
	targets := []target{{img.Digest, img.MediaType, img.Size}}
	for _, c := range img.Children {
		child, err := d.Store.Image(ctx, c.Digest)
		if err != nil {
			return nil, fmt.Errorf("child %s: %w", c.Digest, err)
		}
		targets = append(targets, target{c.Digest, child.MediaType, child.Size})
	}
	st := attest.Statement{Type: attest.StatementType, PredicateType: attest.ApprovalPredicateType, Predicate: body}
	name := img.Repositories[0]
	if d.Host != "" {
		name = d.Host + "/" + name
	}
	for _, t := range targets {
		st.Subject = append(st.Subject, attest.SubjectOf(name, t.digest))
	}
	env, err := attest.SignStatement(d.Signer, st)
	if err != nil {
		return nil, err
	}
	envDigest, _, _ := v1.SHA256(strings.NewReader(string(env)))
	scanned, err := d.scanAttestations(ctx, img, ev)
	if err != nil {
		return nil, err
	}
	var out []store.Attestation
	for _, t := range targets {
		h, err := v1.NewHash(t.digest)
		if err != nil {
			return nil, err
		}
		layers := append([]attest.Layer{{Envelope: env, PredicateType: attest.ApprovalPredicateType}}, scanned[t.digest]...)
		m, err := attest.ManifestOf(layers, v1.Descriptor{MediaType: types.MediaType(t.mediaType), Size: t.size, Digest: h})
		if err != nil {
			return nil, err
		}
		for _, repo := range img.Repositories {
			tag := attest.AttTag(t.digest)
			md, err := d.Registry.PutOwnArtifact(ctx, repo, tag, m, "approval attestation of "+t.digest+" signed by airlock")
			if err != nil {
				return nil, fmt.Errorf("store attestation in %s: %w", repo, err)
			}
			a := store.Attestation{Digest: t.digest, Repository: repo, Manifest: md, Tag: tag, PredicateType: attest.ApprovalPredicateType,
				Envelope: envDigest.String(), KeyID: pred.Signer.KeyID, CreatedAt: time.Now().UTC(), Expires: img.Expires}
			if err := d.Store.RecordAttestation(ctx, a); err != nil {
				return nil, err
			}
			out = append(out, a)
		}
	}
	return out, nil
}

// maxSBOM bounds a stored SBOM read back to be signed.
const maxSBOM = 128 << 20

// scanAttestations signs, for each image the scan stage scanned, its
// CycloneDX SBOM (predicate https://cyclonedx.org/bom) and its
// vulnerability result (cosign's vuln predicate) as of now: the newest
// re-evaluation's findings if advisories changed since the scan, with the
// waivers in force. Images with no scan, or scanned without advisory data
// (a vulnerability result would claim a clean image on no evidence), get
// no vuln attestation.
func (d *Decider) scanAttestations(ctx context.Context, img store.Image, ev policy.Evidence) (map[string][]attest.Layer, error) {
	out := map[string][]attest.Layer{}
	se, ok, err := d.scanEvidence(ctx, img.Digest)
	if err != nil || !ok {
		return out, err
	}
	name := img.Repositories[0]
	if d.Host != "" {
		name = d.Host + "/" + name
	}
	for _, ie := range se.Images {
		subject := []attest.Subject{attest.SubjectOf(name, ie.Digest)}
		for _, a := range ie.Artifacts {
			if a.ArtifactType != scan.MediaTypeCycloneDX {
				continue
			}
			bom, err := d.artifactBlob(ctx, a.Repository, a.Manifest, a.Blob, maxSBOM)
			if err != nil {
				return nil, fmt.Errorf("read the SBOM of %s: %w", ie.Digest, err)
			}
			if !json.Valid(bom) {
				return nil, fmt.Errorf("the stored SBOM of %s is not JSON", ie.Digest)
			}
			env, err := attest.SignStatement(d.Signer, attest.Statement{Type: attest.StatementType, Subject: subject,
				PredicateType: attest.CycloneDXPredicateType, Predicate: bom})
			if err != nil {
				return nil, err
			}
			out[ie.Digest] = append(out[ie.Digest], attest.Layer{Envelope: env, PredicateType: attest.CycloneDXPredicateType})
			break
		}
		snapshot, at := se.AdvisoryDB, time.Time{}
		if ev.Reevaluation != nil {
			snapshot = ev.Reevaluation.Snapshot
			at, _ = time.Parse(time.RFC3339, ev.Reevaluation.At)
		}
		if snapshot == "" {
			continue
		}
		if at.IsZero() {
			r, err := d.storedReport(ctx, ie)
			if err != nil {
				return nil, fmt.Errorf("read the scan report of %s: %w", ie.Digest, err)
			}
			at = r.ScannedAt.UTC()
		}
		res := attest.VulnResult{Image: ie.Digest, Snapshot: snapshot, Reevaluated: ev.Reevaluation != nil, Vulnerabilities: []map[string]any{}}
		for _, f := range ev.Findings {
			if f["type"] == scan.TypeVulnerability && f["image"] == ie.Digest {
				res.Vulnerabilities = append(res.Vulnerabilities, f)
			}
		}
		result, err := json.Marshal(res)
		if err != nil {
			return nil, err
		}
		pred, err := json.Marshal(attest.Vuln{
			Invocation: attest.VulnInvocation{Parameters: json.RawMessage("null"), URI: "https://airlock.dev/scan", BuilderID: "airlock " + Version},
			Scanner: attest.VulnScanner{URI: "https://airlock.dev/scan", Version: Version,
				DB: attest.VulnDB{URI: "https://osv.dev (imported offline)", Version: snapshot}, Result: result},
			Metadata: attest.VulnMetadata{ScanStartedOn: at, ScanFinishedOn: at},
		})
		if err != nil {
			return nil, err
		}
		env, err := attest.SignStatement(d.Signer, attest.Statement{Type: attest.StatementType, Subject: subject,
			PredicateType: attest.VulnPredicateType, Predicate: pred})
		if err != nil {
			return nil, err
		}
		out[ie.Digest] = append(out[ie.Digest], attest.Layer{Envelope: env, PredicateType: attest.VulnPredicateType})
	}
	return out, nil
}

func (s *Server) decideStep() pipeline.Step {
	return &policy.Step{Store: s.Store, Policy: s.Decider.Policy, Approve: s.Decider.AutoApprove}
}

// Record is the whole story of one digest (GET /api/v1/images/{digest}/record).
type Record struct {
	Image        store.Image         `json:"image"`
	Imports      []store.Import      `json:"imports"`
	Jobs         []store.Job         `json:"jobs"`
	Verdict      *policy.Verdict     `json:"verdict,omitempty"`
	Approvals    []store.Approval    `json:"approvals"`
	Required     int                 `json:"requiredApprovers"`
	Attestations []store.Attestation `json:"attestations"`
	// Reevaluation is the newest re-match against newer advisories (nil: none).
	Reevaluation *store.Reevaluation `json:"reevaluation,omitempty"`
	// Revocations are the governed revocations scheduled for the digest.
	Revocations []store.ScheduledRevocation `json:"revocations"`
	// Waivers are the waivers that name the digest or one of its repositories.
	Waivers []store.Waiver     `json:"waivers"`
	Audit   []store.AuditEntry `json:"audit"`
}

// QueueEntry is one digest waiting for review.
type QueueEntry struct {
	Image     store.Image    `json:"image"`
	Verdict   policy.Verdict `json:"verdict"`
	Approvers []string       `json:"approvers"`
	Required  int            `json:"requiredApprovers"`
	// Revocation is set for an approved digest whose revocation is
	// scheduled: it waits for a waiver, a fix or the end of its grace period.
	Revocation *store.ScheduledRevocation `json:"revocation,omitempty"`
}

// PolicyInfo describes the active policy (GET /api/v1/policy).
type PolicyInfo struct {
	Name   string        `json:"name"`
	Digest string        `json:"digest"`
	Rules  []policy.Rule `json:"rules"`
	Source string        `json:"source"`
}

// EvidenceResponse is the evidence of a digest and the active policy's verdict on it.
type EvidenceResponse struct {
	Evidence policy.Evidence `json:"evidence"`
	Verdict  policy.Verdict  `json:"verdict"`
}

func (s *Server) decisionsAPI(mux *http.ServeMux) {
	// The public key is public: verifiers and admission controllers need it without a token.
	mux.HandleFunc("GET /api/v1/keys/public", func(w http.ResponseWriter, r *http.Request) {
		b, err := attest.MarshalPublicKey(s.Decider.Signer.Public())
		if err != nil {
			writeJSONError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set("Airlock-Key-Id", attest.KeyID(s.Decider.Signer.Public()))
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /api/v1/policy", s.authed(nil, func(w http.ResponseWriter, r *http.Request, _ identity.Caller) {
		p := s.Decider.Policy
		writeJSON(w, http.StatusOK, PolicyInfo{Name: p.Name, Digest: p.Digest, Rules: p.Rules(), Source: string(p.Source)})
	}))
	mux.HandleFunc("GET /api/v1/images/{digest}/evidence", s.authed(nil, func(w http.ResponseWriter, r *http.Request, _ identity.Caller) {
		v, ev, err := s.Decider.Verdict(r.Context(), r.PathValue("digest"))
		if err != nil {
			s.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, EvidenceResponse{Evidence: ev, Verdict: v})
	}))
	mux.HandleFunc("GET /api/v1/images/{digest}/record", s.authed(nil, s.record))
	mux.HandleFunc("GET /api/v1/queue", s.authed(nil, s.queue))
	s.reevaluationAPI(mux)
	s.waiversAPI(mux)
}

func (s *Server) record(w http.ResponseWriter, r *http.Request, c identity.Caller) {
	ctx, dgst := r.Context(), r.PathValue("digest")
	var rec Record
	var err error
	if rec.Image, err = s.Store.Image(ctx, dgst); err != nil {
		s.storeError(w, err)
		return
	}
	if rec.Imports, err = s.Store.ImportsOf(ctx, dgst); err == nil {
		if rec.Jobs, err = s.Store.Jobs(ctx, store.JobFilter{Digest: dgst, Limit: 20}); err == nil {
			if rec.Approvals, err = s.Store.Approvals(ctx, dgst); err == nil {
				rec.Attestations, err = s.Store.Attestations(ctx, dgst)
			}
		}
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	if v, _, err := s.Decider.Verdict(ctx, dgst); err == nil {
		rec.Verdict = &v
	}
	if re, err := s.Store.LatestReevaluation(ctx, dgst); err == nil {
		rec.Reevaluation = &re
	}
	if rec.Revocations, err = s.Store.Revocations(ctx, store.RevocationFilter{Digest: dgst}); err == nil {
		rec.Waivers, err = s.Store.Waivers(ctx, store.WaiverFilter{Digest: dgst, Repositories: rec.Image.Repositories})
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	rec.Required = s.Decider.Required(rec.Image.Repositories)
	if c.IsAdmin() || c.CanDecide() {
		if rec.Audit, err = s.Store.AuditEntries(ctx, store.AuditFilter{Subject: dgst, Limit: 1000}); err != nil {
			s.storeError(w, err)
			return
		}
	}
	for _, p := range []*[]store.Import{&rec.Imports} {
		if *p == nil {
			*p = []store.Import{}
		}
	}
	if rec.Jobs == nil {
		rec.Jobs = []store.Job{}
	}
	if rec.Audit == nil {
		rec.Audit = []store.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, rec)
}

func (s *Server) queue(w http.ResponseWriter, r *http.Request, _ identity.Caller) {
	ctx := r.Context()
	imgs, err := s.Store.Images(ctx, store.ImageFilter{State: store.Quarantined, Repository: r.URL.Query().Get("repository")})
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := []QueueEntry{}
	for _, img := range imgs {
		if img.Subject != "" {
			continue // signatures and other referrers are not reviewed on their own
		}
		if isChildOfQuarantinedIndex(img, imgs) {
			continue // reviewed with its index
		}
		v, _, err := s.Decider.Verdict(ctx, img.Digest)
		if err != nil {
			s.storeError(w, err)
			return
		}
		e := QueueEntry{Image: img, Verdict: v, Approvers: []string{}, Required: s.Decider.Required(img.Repositories)}
		as, err := s.Store.Approvals(ctx, img.Digest)
		if err != nil {
			s.storeError(w, err)
			return
		}
		for _, a := range as {
			if a.Outcome == store.ApprovalPending {
				e.Approvers = append(e.Approvers, a.Actor)
			}
		}
		out = append(out, e)
	}
	// Approved digests whose revocation is scheduled wait for a decision too.
	scheduled, err := s.Store.Revocations(ctx, store.RevocationFilter{Status: store.RevocationScheduled})
	if err != nil {
		s.storeError(w, err)
		return
	}
	for i, sr := range scheduled {
		img, err := s.Store.Image(ctx, sr.Digest)
		if err != nil {
			s.storeError(w, err)
			return
		}
		if repo := r.URL.Query().Get("repository"); repo != "" && !slices.Contains(img.Repositories, repo) {
			continue
		}
		v, _, err := s.Decider.Verdict(ctx, img.Digest)
		if err != nil {
			s.storeError(w, err)
			return
		}
		out = append(out, QueueEntry{Image: img, Verdict: v, Approvers: []string{}, Required: s.Decider.Required(img.Repositories), Revocation: &scheduled[i]})
	}
	writeJSON(w, http.StatusOK, out)
}

func isChildOfQuarantinedIndex(img store.Image, all []store.Image) bool {
	for _, o := range all {
		for _, c := range o.Children {
			if c.Digest == img.Digest {
				return true
			}
		}
	}
	return false
}

// decide approves, rejects or revokes a digest
// (POST /api/v1/images/{digest}/{approve|reject|revoke}).
func (s *Server) decide(w http.ResponseWriter, r *http.Request, c identity.Caller) {
	to := map[string]store.State{"approve": store.Approved, "reject": store.Rejected, "revoke": store.Revoked}[r.PathValue("action")]
	if to == "" {
		writeJSONError(w, http.StatusNotFound, "NOT_FOUND", "unknown action; use approve, reject or revoke")
		return
	}
	dgst := r.PathValue("digest")
	if !registry.ValidDigest(dgst) {
		writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("%q is not a digest (sha256:<64 hex>)", dgst))
		return
	}
	var req DecisionRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Reason == "" {
		writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", "a reason is required (--reason TEXT)")
		return
	}
	var exp *time.Time
	if req.Expires != "" {
		if to != store.Approved {
			writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", "only an approval can expire")
			return
		}
		d, err := ParseLifetime(req.Expires)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", err.Error())
			return
		}
		t := time.Now().UTC().Add(d)
		exp = &t
	}
	if to == store.Approved {
		res, err := s.Decider.Approve(r.Context(), dgst, c.Name, req.Reason, exp)
		switch {
		case errors.Is(err, ErrPolicyDenied):
			writeJSONError(w, http.StatusConflict, "POLICY_DENIED", err.Error())
		case errors.Is(err, store.ErrExists):
			writeJSONError(w, http.StatusConflict, "ALREADY_APPROVED", err.Error())
		case err != nil && res.Digest != "":
			s.Log.Error("approve", "digest", dgst, "err", err)
			writeJSONError(w, http.StatusServiceUnavailable, "UNAVAILABLE", err.Error())
		case err != nil:
			s.storeError(w, err)
		default:
			writeJSON(w, http.StatusOK, res)
		}
		return
	}
	img, err := s.Store.Transition(r.Context(), dgst, to, c.Name, req.Reason, nil)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, img)
}
