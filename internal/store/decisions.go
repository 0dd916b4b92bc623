package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Approval outcomes.
const (
	ApprovalPending  = "pending"  // counts towards the required number of approvers
	ApprovalApproved = "approved" // part of the approval that moved the digest to approved
	ApprovalVoid     = "void"     // the digest left quarantine another way (rejected) first
)

// Approval is one approver's approval of a quarantined digest. A digest that
// needs N distinct approvers moves to approved with the Nth.
type Approval struct {
	ID      int64           `json:"id"`
	Digest  string          `json:"digest"`
	Actor   string          `json:"actor"`
	Reason  string          `json:"reason"`
	At      time.Time       `json:"at"`
	Expires *time.Time      `json:"expires,omitempty"`
	Outcome string          `json:"outcome"`
	Policy  json.RawMessage `json:"policy,omitempty"` // the policy verdict the approver saw
}

// ApprovalRequest records one approval.
type ApprovalRequest struct {
	Digest   string
	Actor    string
	Reason   string
	Expires  *time.Time
	Required int // distinct approvers needed (≥1)
	Policy   json.RawMessage
}

// ApprovalResult is what an approval did.
type ApprovalResult struct {
	Image     Image      `json:"image"`
	Approvals []Approval `json:"approvals"` // pending ones, or those that made the approval
	Required  int        `json:"required"`
	Approved  bool       `json:"approved"` // this approval moved the digest to approved
}

// Attestation is one signed attestation Airlock stored in the registry for a
// digest: never deleted; a revocation is recorded on it.
type Attestation struct {
	Digest        string     `json:"digest"`     // the subject
	Repository    string     `json:"repository"` // where it is stored
	Manifest      string     `json:"manifest"`   // digest of the attestation manifest
	Tag           string     `json:"tag"`        // sha256-<hex>.att
	PredicateType string     `json:"predicateType"`
	Envelope      string     `json:"envelope"` // digest of the DSSE envelope layer
	KeyID         string     `json:"keyId"`
	CreatedAt     time.Time  `json:"createdAt"`
	Expires       *time.Time `json:"expires,omitempty"`
	RevokedAt     *time.Time `json:"revokedAt,omitempty"`
	RevokedBy     string     `json:"revokedBy,omitempty"`
	RevokeReason  string     `json:"revokeReason,omitempty"`
}

// Decisions is the store's side of approving and attesting.
type Decisions interface {
	// RecordApproval records an approval of a quarantined digest and, when it
	// brings the distinct approvers to Required, moves the digest to approved
	// in the same transaction (expiry: the earliest any approver gave). An
	// approver approves once per quarantine (ErrExists). A digest not in
	// quarantine gets ErrInvalidTransition, and the refused approval is
	// audited all the same.
	RecordApproval(ctx context.Context, r ApprovalRequest) (ApprovalResult, error)
	// Approvals lists every approval of a digest, oldest first.
	Approvals(ctx context.Context, digest string) ([]Approval, error)
	// RecordAttestation records an attestation stored for a digest (idempotent
	// per repository and manifest) and audits it.
	RecordAttestation(ctx context.Context, a Attestation) error
	// Attestations lists the attestations of a digest, newest first. Revoking
	// the digest (Transition to Revoked) marks them revoked.
	Attestations(ctx context.Context, digest string) ([]Attestation, error)
}

// DigestOf is the sha256 digest of a recorded JSON document (compacted
// first, so the digest does not depend on whitespace).
func DigestOf(doc json.RawMessage) string {
	if c, err := CompactDetail(doc); err == nil {
		doc = c
	}
	sum := sha256.Sum256(doc)
	return "sha256:" + hex.EncodeToString(sum[:])
}
