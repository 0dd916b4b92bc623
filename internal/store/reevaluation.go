package store

import (
	"context"
	"encoding/json"
	"time"
)

// Reevaluation is one re-match of a digest's stored inventory against a
// newer advisory snapshot (`airlock db import`): no image is pulled again.
// Findings replace the vulnerability findings of the scan stage for the
// policy from then on; New names the ones no earlier match had.
type Reevaluation struct {
	ID       int64           `json:"id"`
	Digest   string          `json:"digest"`
	Snapshot string          `json:"snapshot"` // advisory database snapshot digest
	At       time.Time       `json:"at"`
	State    State           `json:"state"`    // the digest's state when it was re-matched
	Findings json.RawMessage `json:"findings"` // every vulnerability finding under Snapshot
	New      []string        `json:"new"`      // keys (advisory|package|image) of findings not known before
	Actor    string          `json:"actor"`
}

// Scheduled revocation outcomes.
const (
	RevocationScheduled = "scheduled" // waits for its grace period
	RevocationExecuted  = "executed"  // the digest was revoked
	RevocationCancelled = "cancelled" // a waiver, a withdrawn advisory or a new decision made it unnecessary
)

// ScheduledRevocation is a governed revocation of an approved digest: the
// policy asked for it after a re-evaluation, and it happens when the grace
// period ends unless it is cancelled first. It never returns a digest to
// quarantine silently: the digest stays approved until revoked, and both
// steps are audited.
type ScheduledRevocation struct {
	ID           int64      `json:"id"`
	Digest       string     `json:"digest"`
	Due          time.Time  `json:"due"`
	Reason       string     `json:"reason"`
	Actor        string     `json:"actor"`
	CreatedAt    time.Time  `json:"createdAt"`
	Reevaluation int64      `json:"reevaluation,omitempty"`
	Status       string     `json:"status"`
	ClosedAt     *time.Time `json:"closedAt,omitempty"`
	ClosedBy     string     `json:"closedBy,omitempty"`
	CloseReason  string     `json:"closeReason,omitempty"`
}

// RevocationFilter narrows Revocations.
type RevocationFilter struct {
	Digest    string     // empty: any
	Status    string     // empty: any
	DueBefore *time.Time // only those due at or before
}

// Reevaluations is the store's side of re-evaluating approved and
// quarantined digests when the advisory data changes.
type Reevaluations interface {
	// RecordReevaluation stores a re-match and audits it (reevaluation.recorded).
	RecordReevaluation(ctx context.Context, r Reevaluation) (Reevaluation, error)
	// LatestReevaluation returns the newest re-match of digest, or ErrNotFound.
	LatestReevaluation(ctx context.Context, digest string) (Reevaluation, error)
	// ScheduleRevocation schedules a revocation of an approved digest and
	// audits it (revocation.scheduled). A digest has at most one scheduled
	// revocation: asking again returns the open one and ErrExists.
	ScheduleRevocation(ctx context.Context, r ScheduledRevocation) (ScheduledRevocation, error)
	// Revocations lists scheduled revocations, oldest first.
	Revocations(ctx context.Context, f RevocationFilter) ([]ScheduledRevocation, error)
	// ExecuteRevocation revokes the digest of a scheduled revocation and
	// closes it in one transaction (state.revoked, revocation.executed).
	ExecuteRevocation(ctx context.Context, id int64, actor string) (Image, error)
	// CancelRevocation closes a scheduled revocation without revoking and
	// audits it (revocation.cancelled).
	CancelRevocation(ctx context.Context, id int64, actor, reason string) (ScheduledRevocation, error)
}
