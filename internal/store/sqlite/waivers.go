package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

const waiverColumns = `id, digest, repository, finding, package, owner, reason, expires, created_by, created_at,
	revoked_at, revoked_by, revoke_reason, expiry_audited`

func scanWaiver(row interface{ Scan(...any) error }) (store.Waiver, error) {
	var (
		w                store.Waiver
		expires, created int64
		revoked          sql.NullInt64
	)
	err := row.Scan(&w.ID, &w.Digest, &w.Repository, &w.Finding, &w.Package, &w.Owner, &w.Reason, &expires, &w.CreatedBy, &created,
		&revoked, &w.RevokedBy, &w.RevokeReason, &w.ExpiryAudited)
	w.Expires, w.CreatedAt, w.RevokedAt = fromNanos(expires), fromNanos(created), fromNullNanos(revoked)
	return w, err
}

func waiverDetail(w store.Waiver, extra map[string]any) json.RawMessage {
	d := map[string]any{"id": w.ID, "finding": w.Finding, "owner": w.Owner, "reason": w.Reason, "expires": w.Expires.UTC()}
	for k, v := range map[string]string{"digest": w.Digest, "repository": w.Repository, "package": w.Package} {
		if v != "" {
			d[k] = v
		}
	}
	for k, v := range extra {
		d[k] = v
	}
	b, _ := json.Marshal(d)
	return b
}

func waiverSubject(w store.Waiver) string {
	if w.Digest != "" {
		return w.Digest
	}
	return w.Repository
}

// CreateWaiver records a waiver and audits it.
func (s *Store) CreateWaiver(ctx context.Context, w store.Waiver) (store.Waiver, error) {
	w.Finding, w.Owner, w.Reason = strings.TrimSpace(w.Finding), strings.TrimSpace(w.Owner), strings.TrimSpace(w.Reason)
	switch {
	case w.Digest == "" && w.Repository == "":
		return w, errors.New("create waiver: a digest or a repository is required")
	case w.Finding == "" || w.Owner == "" || w.Reason == "" || w.CreatedBy == "":
		return w, errors.New("create waiver: finding, owner, reason and creator are required")
	case w.Expires.IsZero():
		return w, errors.New("create waiver: an expiry is required; a waiver never lasts for ever")
	}
	w.CreatedAt = s.now().UTC()
	if !w.Expires.After(w.CreatedAt) {
		return w, fmt.Errorf("create waiver: expiry %s is not in the future", w.Expires.UTC().Format(time.RFC3339))
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if w.Digest != "" {
			var known bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM images WHERE digest = ?)`, w.Digest).Scan(&known); err != nil {
				return fmt.Errorf("create waiver: %w", err)
			}
			if !known {
				return fmt.Errorf("image %s: %w", w.Digest, store.ErrNotFound)
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO waivers (digest, repository, finding, package, owner, reason, expires, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, w.Digest, w.Repository, w.Finding, w.Package, w.Owner, w.Reason,
			nanos(w.Expires), w.CreatedBy, nanos(w.CreatedAt))
		if err != nil {
			return fmt.Errorf("create waiver: %w", err)
		}
		w.ID, _ = res.LastInsertId()
		w.Expires = w.Expires.UTC()
		_, err = s.appendAudit(ctx, tx, store.AuditEntry{Actor: w.CreatedBy, Action: "waiver.created", Subject: waiverSubject(w), Detail: waiverDetail(w, nil)})
		return err
	})
	return w, err
}

// Waivers lists waivers, newest first.
func (s *Store) Waivers(ctx context.Context, f store.WaiverFilter) ([]store.Waiver, error) {
	q := `SELECT ` + waiverColumns + ` FROM waivers`
	var (
		where []string
		args  []any
	)
	if f.Digest != "" || len(f.Repositories) > 0 {
		or := []string{}
		if f.Digest != "" {
			or = append(or, "digest = ?")
			args = append(args, f.Digest)
		}
		for _, r := range f.Repositories {
			or = append(or, "(digest = '' AND repository = ?)")
			args = append(args, r)
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	if f.ActiveAt != nil {
		where = append(where, "revoked_at IS NULL AND expires > ?")
		args = append(args, nanos(*f.ActiveAt))
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.read.QueryContext(ctx, q+" ORDER BY id DESC", args...)
	if err != nil {
		return nil, fmt.Errorf("waivers: %w", err)
	}
	defer rows.Close()
	out := []store.Waiver{}
	for rows.Next() {
		w, err := scanWaiver(rows)
		if err != nil {
			return nil, fmt.Errorf("waivers: %w", err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// RevokeWaiver ends a waiver now and audits it.
func (s *Store) RevokeWaiver(ctx context.Context, id int64, actor, reason string) (store.Waiver, error) {
	if actor == "" || reason == "" {
		return store.Waiver{}, errors.New("revoke waiver: actor and reason are required")
	}
	var w store.Waiver
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		w, err = scanWaiver(tx.QueryRowContext(ctx, `SELECT `+waiverColumns+` FROM waivers WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("waiver %d: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("waiver %d: %w", id, err)
		}
		if w.RevokedAt != nil {
			return fmt.Errorf("%w: waiver %d was revoked already", store.ErrInvalidTransition, id)
		}
		now := s.now().UTC()
		if _, err := tx.ExecContext(ctx, `UPDATE waivers SET revoked_at = ?, revoked_by = ?, revoke_reason = ? WHERE id = ?`,
			nanos(now), actor, reason, id); err != nil {
			return fmt.Errorf("revoke waiver %d: %w", id, err)
		}
		w.RevokedAt, w.RevokedBy, w.RevokeReason = &now, actor, reason
		_, err = s.appendAudit(ctx, tx, store.AuditEntry{Actor: actor, Action: "waiver.revoked", Subject: waiverSubject(w),
			Detail: waiverDetail(w, map[string]any{"revokeReason": reason})})
		return err
	})
	return w, err
}

// ExpireWaivers audits each waiver that expired by now, once.
func (s *Store) ExpireWaivers(ctx context.Context, now time.Time) ([]store.Waiver, error) {
	out := []store.Waiver{}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+waiverColumns+` FROM waivers
			WHERE expiry_audited = 0 AND revoked_at IS NULL AND expires <= ? ORDER BY id`, nanos(now))
		if err != nil {
			return fmt.Errorf("expire waivers: %w", err)
		}
		for rows.Next() {
			w, err := scanWaiver(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("expire waivers: %w", err)
			}
			out = append(out, w)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("expire waivers: %w", err)
		}
		for i, w := range out {
			if _, err := tx.ExecContext(ctx, `UPDATE waivers SET expiry_audited = 1 WHERE id = ?`, w.ID); err != nil {
				return fmt.Errorf("expire waiver %d: %w", w.ID, err)
			}
			out[i].ExpiryAudited = true
			if _, err := s.appendAudit(ctx, tx, store.AuditEntry{Actor: "airlock", Action: "waiver.expired", Subject: waiverSubject(w), Detail: waiverDetail(w, nil)}); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}
