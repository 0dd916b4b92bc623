package store

import (
	"context"
	"strings"
	"time"
)

// Waiver accepts one finding for a digest, or for every digest of a
// repository, for a while: the policy sees the finding as waived (rules skip
// waived findings unless they ask for them) until the waiver expires or is
// revoked. Finding is an advisory id or alias (CVE-…, GHSA-…) or a finding
// id of another detector; Package narrows it to one package.
type Waiver struct {
	ID           int64      `json:"id"`
	Digest       string     `json:"digest,omitempty"`
	Repository   string     `json:"repository,omitempty"`
	Finding      string     `json:"finding"`
	Package      string     `json:"package,omitempty"`
	Owner        string     `json:"owner"`
	Reason       string     `json:"reason"`
	Expires      time.Time  `json:"expires"`
	CreatedBy    string     `json:"createdBy"`
	CreatedAt    time.Time  `json:"createdAt"`
	RevokedAt    *time.Time `json:"revokedAt,omitempty"`
	RevokedBy    string     `json:"revokedBy,omitempty"`
	RevokeReason string     `json:"revokeReason,omitempty"`
	// ExpiryAudited is set once the expiry was noticed and audited.
	ExpiryAudited bool `json:"expiryAudited,omitempty"`
}

// Active reports whether the waiver applies at t.
func (w Waiver) Active(t time.Time) bool { return w.RevokedAt == nil && t.Before(w.Expires) }

// Covers reports whether the waiver is about a finding with id (and
// aliases) in package pkg of digest held in repos. It does not look at time.
func (w Waiver) Covers(digest string, repos []string, id string, aliases []string, pkg string) bool {
	if w.Digest != "" && w.Digest != digest {
		return false
	}
	if w.Repository != "" {
		held := false
		for _, r := range repos {
			if r == w.Repository {
				held = true
			}
		}
		if !held {
			return false
		}
	}
	if w.Package != "" && !strings.EqualFold(w.Package, pkg) {
		return false
	}
	if strings.EqualFold(w.Finding, id) {
		return true
	}
	for _, a := range aliases {
		if strings.EqualFold(w.Finding, a) {
			return true
		}
	}
	return false
}

// WaiverFilter narrows Waivers.
type WaiverFilter struct {
	Digest       string   // waivers of this digest …
	Repositories []string // … or of one of these repositories; both empty: every waiver
	ActiveAt     *time.Time
}

// Waivers is the store's side of waiving findings.
type Waivers interface {
	// CreateWaiver records a waiver and audits it (waiver.created).
	CreateWaiver(ctx context.Context, w Waiver) (Waiver, error)
	// Waivers lists waivers, newest first.
	Waivers(ctx context.Context, f WaiverFilter) ([]Waiver, error)
	// RevokeWaiver ends a waiver now and audits it (waiver.revoked).
	RevokeWaiver(ctx context.Context, id int64, actor, reason string) (Waiver, error)
	// ExpireWaivers audits (waiver.expired) each waiver that expired by now
	// and was not audited yet, and returns them.
	ExpireWaivers(ctx context.Context, now time.Time) ([]Waiver, error)
}
