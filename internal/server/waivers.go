package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/identity"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/registry"
	"github.com/airlock-dev/airlock/internal/store"
)

// WaiverRequest asks for a waiver of one finding (POST /api/v1/waivers).
type WaiverRequest struct {
	Digest     string `json:"digest,omitempty"`     // one digest …
	Repository string `json:"repository,omitempty"` // … or every digest of a repository
	Finding    string `json:"finding"`              // advisory id or alias, or a finding id
	Package    string `json:"package,omitempty"`    // only in this package
	Owner      string `json:"owner"`                // who answers for it
	Reason     string `json:"reason"`
	Expires    string `json:"expires"` // lifetime: 720h, 30d
}

// CancelRequest gives the reason for cancelling a scheduled revocation or revoking a waiver.
type CancelRequest struct {
	Reason string `json:"reason"`
}

// maxWaiverText bounds the free-text fields of a waiver.
const maxWaiverText = 1024

// CheckWaiverRequest says what is wrong with a waiver request, in one sentence.
func CheckWaiverRequest(r WaiverRequest) error {
	switch {
	case (r.Digest == "") == (r.Repository == ""):
		return errors.New("name exactly one of a digest (--digest) or a repository (--repository)")
	case r.Digest != "" && !registry.ValidDigest(r.Digest):
		return fmt.Errorf("%q is not a digest (sha256:<64 hex>)", r.Digest)
	case r.Repository != "" && !registry.ValidRepository(r.Repository):
		return fmt.Errorf("%q is not a repository name", r.Repository)
	case strings.TrimSpace(r.Finding) == "" || len(r.Finding) > 256 || strings.ContainsAny(r.Finding, " \t\r\n"):
		return errors.New("name the finding to waive (--finding CVE-… or an advisory or finding id, no spaces)")
	case len(r.Package) > 256 || strings.ContainsAny(r.Package, "\t\r\n"):
		return errors.New("the package name is too long or holds control characters")
	case strings.TrimSpace(r.Owner) == "" || len(r.Owner) > 256:
		return errors.New("a waiver needs an owner (--owner) who answers for it")
	case strings.TrimSpace(r.Reason) == "" || len(r.Reason) > maxWaiverText || !utf8.ValidString(r.Reason):
		return fmt.Errorf("a waiver needs a reason (--reason) of at most %d bytes", maxWaiverText)
	case r.Expires == "":
		return errors.New("a waiver needs an expiry (--expires 30d): it never lasts for ever")
	}
	_, err := ParseLifetime(r.Expires)
	return err
}

// Waive records a waiver, then cancels the scheduled revocations the
// policy no longer calls for now that the finding is waived.
func (d *Decider) Waive(ctx context.Context, r WaiverRequest, actor string) (store.Waiver, error) {
	if err := CheckWaiverRequest(r); err != nil {
		return store.Waiver{}, err
	}
	life, _ := ParseLifetime(r.Expires)
	w, err := d.Store.CreateWaiver(ctx, store.Waiver{Digest: r.Digest, Repository: r.Repository, Finding: strings.TrimSpace(r.Finding),
		Package: strings.TrimSpace(r.Package), Owner: r.Owner, Reason: r.Reason, Expires: d.now().Add(life), CreatedBy: actor})
	if err != nil {
		return w, err
	}
	open, err := d.Store.Revocations(ctx, store.RevocationFilter{Digest: r.Digest, Status: store.RevocationScheduled})
	if err != nil {
		return w, err
	}
	for _, sr := range open {
		img, err := d.Store.Image(ctx, sr.Digest)
		if err != nil {
			return w, err
		}
		if r.Repository != "" && !contains(img.Repositories, r.Repository) {
			continue
		}
		v, _, err := d.Verdict(ctx, sr.Digest)
		if err != nil {
			return w, err
		}
		if d.Policy.Reevaluation.Calls(v) {
			continue
		}
		cr, err := d.Store.CancelRevocation(ctx, sr.ID, actor, fmt.Sprintf("waiver %d of %s: the policy's verdict is %s now", w.ID, w.Finding, v.Effect))
		if err != nil {
			return w, err
		}
		if d.Metrics != nil {
			d.Metrics.Revocations.WithLabelValues(store.RevocationCancelled).Inc()
		}
		d.raise(ctx, Alert{Kind: AlertRevocationCancelled, Digest: sr.Digest, State: img.State, Repositories: img.Repositories, Revocation: &cr, Verdict: v.Effect,
			Message: fmt.Sprintf("the revocation of %s scheduled for %s is cancelled by %s's waiver %d of %s", sr.Digest, sr.Due.Format("2006-01-02T15:04:05Z07:00"), actor, w.ID, w.Finding)})
	}
	return w, nil
}

// ErrRevocationStands means a human tried to cancel a revocation the policy still denies.
var ErrRevocationStands = errors.New("the policy still denies this digest")

// CancelRevocation is a human keeping an approved digest whose revocation is
// scheduled: allowed only when the policy does not deny it now (a review
// verdict is a human's to settle; a deny needs a waiver or a fix first).
func (d *Decider) CancelRevocation(ctx context.Context, id int64, actor, reason string) (store.ScheduledRevocation, error) {
	rs, err := d.Store.Revocations(ctx, store.RevocationFilter{})
	if err != nil {
		return store.ScheduledRevocation{}, err
	}
	for _, r := range rs {
		if r.ID != id {
			continue
		}
		if r.Status == store.RevocationScheduled {
			v, _, err := d.Verdict(ctx, r.Digest)
			if err != nil {
				return r, err
			}
			if v.Effect == policy.Deny {
				return r, fmt.Errorf("%w: %s; waive the finding or fix the image first", ErrRevocationStands, policy.RejectReason(v))
			}
		}
		cr, err := d.Store.CancelRevocation(ctx, id, actor, reason)
		if err == nil && d.Metrics != nil {
			d.Metrics.Revocations.WithLabelValues(store.RevocationCancelled).Inc()
		}
		return cr, err
	}
	return store.ScheduledRevocation{}, fmt.Errorf("scheduled revocation %d: %w", id, store.ErrNotFound)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("%q is not an id", r.PathValue("id")))
		return 0, false
	}
	return id, true
}

// cancelRequest reads the id in the path and the reason in the body of a
// request that revokes a waiver or cancels a revocation; on bad input it
// has answered 400 and returns false.
func cancelRequest(w http.ResponseWriter, r *http.Request) (int64, string, bool) {
	id, ok := pathID(w, r)
	if !ok {
		return 0, "", false
	}
	var req CancelRequest
	if !decode(w, r, &req) {
		return 0, "", false
	}
	if strings.TrimSpace(req.Reason) == "" {
		writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", "a reason is required (--reason TEXT)")
		return 0, "", false
	}
	return id, req.Reason, true
}

func (s *Server) waiversAPI(mux *http.ServeMux) {
	decider := func(c identity.Caller) bool { return c.CanDecide() }
	mux.HandleFunc("POST /api/v1/waivers", s.authed(decider, func(w http.ResponseWriter, r *http.Request, c identity.Caller) {
		var req WaiverRequest
		if !decode(w, r, &req) {
			return
		}
		if err := CheckWaiverRequest(req); err != nil {
			writeJSONError(w, http.StatusBadRequest, "BAD_REQUEST", err.Error())
			return
		}
		wv, err := s.Decider.Waive(r.Context(), req, c.Name)
		if err != nil {
			s.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, wv)
	}))
	mux.HandleFunc("GET /api/v1/waivers", s.authed(nil, func(w http.ResponseWriter, r *http.Request, _ identity.Caller) {
		q := r.URL.Query()
		f := store.WaiverFilter{Digest: q.Get("digest")}
		if repo := q.Get("repository"); repo != "" {
			f.Repositories = []string{repo}
		}
		if q.Get("active") == "true" {
			now := s.Decider.now()
			f.ActiveAt = &now
		}
		ws, err := s.Store.Waivers(r.Context(), f)
		if err != nil {
			s.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ws)
	}))
	mux.HandleFunc("POST /api/v1/waivers/{id}/revoke", s.authed(decider, func(w http.ResponseWriter, r *http.Request, c identity.Caller) {
		id, reason, ok := cancelRequest(w, r)
		if !ok {
			return
		}
		wv, err := s.Store.RevokeWaiver(r.Context(), id, c.Name, reason)
		if err != nil {
			s.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, wv)
	}))
	mux.HandleFunc("POST /api/v1/revocations/{id}/cancel", s.authed(decider, func(w http.ResponseWriter, r *http.Request, c identity.Caller) {
		id, reason, ok := cancelRequest(w, r)
		if !ok {
			return
		}
		sr, err := s.Decider.CancelRevocation(r.Context(), id, c.Name, reason)
		if errors.Is(err, ErrRevocationStands) {
			writeJSONError(w, http.StatusConflict, "POLICY_DENIED", err.Error())
			return
		}
		if err != nil {
			s.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, sr)
	}))
}
