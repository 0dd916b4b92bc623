package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// RecordApproval records one approval and approves the digest when it is the
// last one needed. The state is read inside the write transaction, so of two
// concurrent approvals only one can make the transition.
func (s *Store) RecordApproval(ctx context.Context, r store.ApprovalRequest) (store.ApprovalResult, error) {
	res := store.ApprovalResult{Required: max(r.Required, 1)}
	if r.Digest == "" || r.Actor == "" {
		return res, errors.New("record approval: digest and actor are required")
	}
	policy, err := store.CompactDetail(r.Policy)
	if err != nil {
		return res, fmt.Errorf("record approval of %s: policy: %w", r.Digest, err)
	}
	var refused error
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var state store.State
		err := tx.QueryRowContext(ctx, `SELECT state FROM images WHERE digest = ?`, r.Digest).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("image %s: %w", r.Digest, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("record approval of %s: %w", r.Digest, err)
		}
		if state != store.Quarantined {
			// The losing side of a race (or a late approval) is recorded too.
			refused = store.CheckTransition(r.Digest, state, store.Approved)
			detail, _ := json.Marshal(map[string]string{"reason": r.Reason, "refused": refused.Error()})
			_, err := s.appendAudit(ctx, tx, store.AuditEntry{Actor: r.Actor, Action: "approval.refused", Subject: r.Digest, Detail: detail})
			return err
		}
		var dup int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM approvals WHERE digest = ? AND actor = ? AND outcome = 'pending'`,
			r.Digest, r.Actor).Scan(&dup); err != nil {
			return fmt.Errorf("record approval of %s: %w", r.Digest, err)
		}
		if dup > 0 {
			return fmt.Errorf("%w: %s already approved %s; %d distinct approvers are needed, each approves once", store.ErrExists, r.Actor, r.Digest, res.Required)
		}
		now := s.now()
		if _, err := tx.ExecContext(ctx, `INSERT INTO approvals (digest, actor, reason, at, expires, outcome, policy)
			VALUES (?, ?, ?, ?, ?, 'pending', ?)`, r.Digest, r.Actor, r.Reason, nanos(now), nullNanos(r.Expires), nullText(policy)); err != nil {
			return fmt.Errorf("record approval of %s: %w", r.Digest, err)
		}
		pending, err := approvalsOf(ctx, tx, r.Digest, store.ApprovalPending)
		if err != nil {
			return err
		}
		res.Approvals = pending
		detail, _ := json.Marshal(struct {
			Reason   string     `json:"reason"`
			Expires  *time.Time `json:"expires,omitempty"`
			Count    int        `json:"approvals"`
			Required int        `json:"required"`
		}{r.Reason, utcPtr(r.Expires), len(pending), res.Required})
		if _, err := s.appendAudit(ctx, tx, store.AuditEntry{Actor: r.Actor, Action: "approval.recorded", Subject: r.Digest, Detail: detail}); err != nil {
			return err
		}
		if len(pending) < res.Required {
			return nil
		}
		var expires *time.Time
		for _, a := range pending {
			if a.Expires != nil && (expires == nil || a.Expires.Before(*expires)) {
				expires = a.Expires
			}
		}
		reason := r.Reason
		if len(pending) > 1 {
			reason = fmt.Sprintf("%s (approver %d of %d)", r.Reason, len(pending), res.Required)
		}
		if err := s.transitionTx(ctx, tx, r.Digest, store.Approved, r.Actor, reason, expires); err != nil {
			return err
		}
		for i := range res.Approvals {
			res.Approvals[i].Outcome = store.ApprovalApproved
		}
		res.Approved = true
		return nil
	})
	if err != nil {
		return res, err
	}
	if refused != nil {
		return res, refused
	}
	res.Image, err = s.Image(ctx, r.Digest)
	return res, err
}

// Approvals lists every approval of digest, oldest first.
func (s *Store) Approvals(ctx context.Context, digest string) ([]store.Approval, error) {
	return approvalsOf(ctx, s.read, digest, "")
}

func approvalsOf(ctx context.Context, q querier, digest, outcome string) ([]store.Approval, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, digest, actor, reason, at, expires, outcome, policy FROM approvals
		WHERE digest = ?1 AND (?2 = '' OR outcome = ?2) ORDER BY id`, digest, outcome)
	if err != nil {
		return nil, fmt.Errorf("approvals of %s: %w", digest, err)
	}
	defer rows.Close()
	out := []store.Approval{}
	for rows.Next() {
		var (
			a       store.Approval
			at      int64
			expires sql.NullInt64
			policy  sql.NullString
		)
		if err := rows.Scan(&a.ID, &a.Digest, &a.Actor, &a.Reason, &at, &expires, &a.Outcome, &policy); err != nil {
			return nil, fmt.Errorf("approvals of %s: %w", digest, err)
		}
		a.At, a.Expires = fromNanos(at), fromNullNanos(expires)
		if policy.Valid {
			a.Policy = json.RawMessage(policy.String)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// RecordAttestation records a stored attestation and audits it.
func (s *Store) RecordAttestation(ctx context.Context, a store.Attestation) error {
	if a.Digest == "" || a.Repository == "" || a.Manifest == "" {
		return errors.New("record attestation: digest, repository and manifest are required")
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = s.now()
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var known bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM images WHERE digest = ?)`, a.Digest).Scan(&known); err != nil {
			return fmt.Errorf("record attestation of %s: %w", a.Digest, err)
		}
		if !known {
			return fmt.Errorf("record attestation of %s: image %w", a.Digest, store.ErrNotFound)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO attestations
			(repository, manifest, digest, tag, predicate_type, envelope, key_id, created_at, expires)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			a.Repository, a.Manifest, a.Digest, a.Tag, a.PredicateType, a.Envelope, a.KeyID, nanos(a.CreatedAt), nullNanos(a.Expires))
		if err != nil {
			return fmt.Errorf("record attestation of %s: %w", a.Digest, err)
		}
		if affected(res) == 0 {
			return nil
		}
		detail, _ := json.Marshal(map[string]string{
			"repository": a.Repository, "manifest": a.Manifest, "tag": a.Tag, "predicateType": a.PredicateType, "keyId": a.KeyID,
		})
		_, err = s.appendAudit(ctx, tx, store.AuditEntry{Actor: "airlock", Action: "attestation.created", Subject: a.Digest, Detail: detail})
		return err
	})
}

// Attestations lists the attestations of digest, newest first.
func (s *Store) Attestations(ctx context.Context, digest string) ([]store.Attestation, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT repository, manifest, digest, tag, predicate_type, envelope, key_id,
		created_at, expires, revoked_at, revoked_by, revoke_reason FROM attestations
		WHERE digest = ? ORDER BY created_at DESC, repository, manifest`, digest)
	if err != nil {
		return nil, fmt.Errorf("attestations of %s: %w", digest, err)
	}
	defer rows.Close()
	out := []store.Attestation{}
	for rows.Next() {
		var (
			a                store.Attestation
			created          int64
			expires, revoked sql.NullInt64
		)
		if err := rows.Scan(&a.Repository, &a.Manifest, &a.Digest, &a.Tag, &a.PredicateType, &a.Envelope, &a.KeyID,
			&created, &expires, &revoked, &a.RevokedBy, &a.RevokeReason); err != nil {
			return nil, fmt.Errorf("attestations of %s: %w", digest, err)
		}
		a.CreatedAt, a.Expires, a.RevokedAt = fromNanos(created), fromNullNanos(expires), fromNullNanos(revoked)
		out = append(out, a)
	}
	return out, rows.Err()
}
