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

// RecordReevaluation stores a re-match and audits it.
func (s *Store) RecordReevaluation(ctx context.Context, r store.Reevaluation) (store.Reevaluation, error) {
	if r.Digest == "" || r.Snapshot == "" || r.Actor == "" {
		return r, errors.New("record re-evaluation: digest, snapshot and actor are required")
	}
	findings, err := store.CompactDetail(r.Findings)
	if err != nil {
		return r, fmt.Errorf("record re-evaluation of %s: findings: %w", r.Digest, err)
	}
	if findings == nil {
		findings = json.RawMessage("[]")
	}
	r.Findings = findings
	if r.New == nil {
		r.New = []string{}
	}
	newKeys, _ := json.Marshal(r.New)
	if r.At.IsZero() {
		r.At = s.now()
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT state FROM images WHERE digest = ?`, r.Digest).Scan(&r.State); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("image %s: %w", r.Digest, store.ErrNotFound)
			}
			return fmt.Errorf("record re-evaluation of %s: %w", r.Digest, err)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO reevaluations (digest, snapshot, at, state, findings, new, actor)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, r.Digest, r.Snapshot, nanos(r.At), r.State, string(findings), string(newKeys), r.Actor)
		if err != nil {
			return fmt.Errorf("record re-evaluation of %s: %w", r.Digest, err)
		}
		r.ID, _ = res.LastInsertId()
		var n []any
		_ = json.Unmarshal(findings, &n)
		detail, _ := json.Marshal(map[string]any{"id": r.ID, "snapshot": r.Snapshot, "state": r.State, "findings": len(n), "new": r.New})
		_, err = s.appendAudit(ctx, tx, store.AuditEntry{Actor: r.Actor, Action: "reevaluation.recorded", Subject: r.Digest, Detail: detail})
		return err
	})
	return r, err
}

// LatestReevaluation returns the newest re-match of digest.
func (s *Store) LatestReevaluation(ctx context.Context, digest string) (store.Reevaluation, error) {
	r := store.Reevaluation{Digest: digest}
	var (
		at              int64
		findings, newer string
	)
	err := s.read.QueryRowContext(ctx, `SELECT id, snapshot, at, state, findings, new, actor FROM reevaluations
		WHERE digest = ? ORDER BY id DESC LIMIT 1`, digest).Scan(&r.ID, &r.Snapshot, &at, &r.State, &findings, &newer, &r.Actor)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("re-evaluation of %s: %w", digest, store.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("re-evaluation of %s: %w", digest, err)
	}
	r.At, r.Findings = fromNanos(at), json.RawMessage(findings)
	if err := json.Unmarshal([]byte(newer), &r.New); err != nil {
		return r, fmt.Errorf("re-evaluation of %s: new: %w", digest, err)
	}
	return r, nil
}

const revocationColumns = `id, digest, due, reason, actor, created_at, reevaluation, status, closed_at, closed_by, close_reason`

func scanRevocation(row interface{ Scan(...any) error }) (store.ScheduledRevocation, error) {
	var (
		r               store.ScheduledRevocation
		due, created    int64
		reeval, closeAt sql.NullInt64
	)
	err := row.Scan(&r.ID, &r.Digest, &due, &r.Reason, &r.Actor, &created, &reeval, &r.Status, &closeAt, &r.ClosedBy, &r.CloseReason)
	r.Due, r.CreatedAt, r.ClosedAt = fromNanos(due), fromNanos(created), fromNullNanos(closeAt)
	r.Reevaluation = reeval.Int64
	return r, err
}

// ScheduleRevocation schedules a revocation of an approved digest.
func (s *Store) ScheduleRevocation(ctx context.Context, r store.ScheduledRevocation) (store.ScheduledRevocation, error) {
	if r.Digest == "" || r.Actor == "" || r.Reason == "" || r.Due.IsZero() {
		return r, errors.New("schedule revocation: digest, actor, reason and due time are required")
	}
	var exists error
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var state store.State
		if err := tx.QueryRowContext(ctx, `SELECT state FROM images WHERE digest = ?`, r.Digest).Scan(&state); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("image %s: %w", r.Digest, store.ErrNotFound)
			}
			return fmt.Errorf("schedule revocation of %s: %w", r.Digest, err)
		}
		if err := store.CheckTransition(r.Digest, state, store.Revoked); err != nil {
			return err
		}
		open, err := scanRevocation(tx.QueryRowContext(ctx, `SELECT `+revocationColumns+` FROM scheduled_revocations
			WHERE digest = ? AND status = 'scheduled'`, r.Digest))
		if err == nil {
			r, exists = open, fmt.Errorf("%w: a revocation of %s is already scheduled for %s", store.ErrExists, r.Digest, open.Due.Format(time.RFC3339))
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("schedule revocation of %s: %w", r.Digest, err)
		}
		r.CreatedAt, r.Status = s.now(), store.RevocationScheduled
		res, err := tx.ExecContext(ctx, `INSERT INTO scheduled_revocations (digest, due, reason, actor, created_at, reevaluation, status)
			VALUES (?, ?, ?, ?, ?, ?, 'scheduled')`, r.Digest, nanos(r.Due), r.Reason, r.Actor, nanos(r.CreatedAt),
			sql.NullInt64{Int64: r.Reevaluation, Valid: r.Reevaluation != 0})
		if err != nil {
			return fmt.Errorf("schedule revocation of %s: %w", r.Digest, err)
		}
		r.ID, _ = res.LastInsertId()
		r.Due, r.CreatedAt = r.Due.UTC(), r.CreatedAt.UTC()
		detail, _ := json.Marshal(map[string]any{"id": r.ID, "due": r.Due, "reason": r.Reason, "reevaluation": r.Reevaluation})
		_, err = s.appendAudit(ctx, tx, store.AuditEntry{Actor: r.Actor, Action: "revocation.scheduled", Subject: r.Digest, Detail: detail})
		return err
	})
	if err != nil {
		return r, err
	}
	return r, exists
}

// Revocations lists scheduled revocations, oldest first.
func (s *Store) Revocations(ctx context.Context, f store.RevocationFilter) ([]store.ScheduledRevocation, error) {
	due := int64(1<<63 - 1)
	if f.DueBefore != nil {
		due = nanos(*f.DueBefore)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+revocationColumns+` FROM scheduled_revocations
		WHERE (?1 = '' OR digest = ?1) AND (?2 = '' OR status = ?2) AND due <= ?3 ORDER BY id`, f.Digest, f.Status, due)
	if err != nil {
		return nil, fmt.Errorf("scheduled revocations: %w", err)
	}
	defer rows.Close()
	out := []store.ScheduledRevocation{}
	for rows.Next() {
		r, err := scanRevocation(rows)
		if err != nil {
			return nil, fmt.Errorf("scheduled revocations: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// openRevocation reads a scheduled revocation that is still open, in tx.
func openRevocation(ctx context.Context, tx *sql.Tx, id int64) (store.ScheduledRevocation, error) {
	r, err := scanRevocation(tx.QueryRowContext(ctx, `SELECT `+revocationColumns+` FROM scheduled_revocations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("scheduled revocation %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("scheduled revocation %d: %w", id, err)
	}
	if r.Status != store.RevocationScheduled {
		return r, fmt.Errorf("%w: scheduled revocation %d of %s was %s already", store.ErrInvalidTransition, id, r.Digest, r.Status)
	}
	return r, nil
}

// ExecuteRevocation revokes the digest and closes the scheduled revocation.
func (s *Store) ExecuteRevocation(ctx context.Context, id int64, actor string) (store.Image, error) {
	var digest string
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r, err := openRevocation(ctx, tx, id)
		if err != nil {
			return err
		}
		digest = r.Digest
		reason := fmt.Sprintf("%s (scheduled revocation %d, grace period ended %s)", r.Reason, r.ID, r.Due.UTC().Format(time.RFC3339))
		if err := s.transitionTx(ctx, tx, r.Digest, store.Revoked, actor, reason, nil); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE scheduled_revocations SET status = 'executed', closed_at = ?, closed_by = ?, close_reason = ?
			WHERE id = ?`, nanos(s.now()), actor, "the grace period ended", id); err != nil {
			return fmt.Errorf("execute revocation %d: %w", id, err)
		}
		detail, _ := json.Marshal(map[string]any{"id": r.ID, "due": r.Due.UTC(), "reason": r.Reason})
		_, err = s.appendAudit(ctx, tx, store.AuditEntry{Actor: actor, Action: "revocation.executed", Subject: r.Digest, Detail: detail})
		return err
	})
	if err != nil {
		return store.Image{}, err
	}
	return s.Image(ctx, digest)
}

// CancelRevocation closes a scheduled revocation without revoking.
func (s *Store) CancelRevocation(ctx context.Context, id int64, actor, reason string) (store.ScheduledRevocation, error) {
	if actor == "" || reason == "" {
		return store.ScheduledRevocation{}, errors.New("cancel revocation: actor and reason are required")
	}
	var out store.ScheduledRevocation
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r, err := openRevocation(ctx, tx, id)
		if err != nil {
			return err
		}
		now := s.now()
		if _, err := tx.ExecContext(ctx, `UPDATE scheduled_revocations SET status = 'cancelled', closed_at = ?, closed_by = ?, close_reason = ?
			WHERE id = ?`, nanos(now), actor, reason, id); err != nil {
			return fmt.Errorf("cancel revocation %d: %w", id, err)
		}
		r.Status, r.ClosedBy, r.CloseReason = store.RevocationCancelled, actor, reason
		t := now.UTC()
		r.ClosedAt = &t
		out = r
		detail, _ := json.Marshal(map[string]any{"id": r.ID, "due": r.Due.UTC(), "reason": reason})
		_, err = s.appendAudit(ctx, tx, store.AuditEntry{Actor: actor, Action: "revocation.cancelled", Subject: r.Digest, Detail: detail})
		return err
	})
	return out, err
}
