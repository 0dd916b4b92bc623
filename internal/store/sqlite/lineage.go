package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/airlock-dev/airlock/internal/store"
)

var _ store.Lineages = (*Store)(nil)

// RecordLineage stores that l.Derived was made from l.Original; recording
// it again returns the first record, so a stage run again after a crash
// links the same pair once.
func (s *Store) RecordLineage(ctx context.Context, l store.Lineage) (store.Lineage, error) {
	if l.Original == "" || l.Derived == "" || l.Kind == "" {
		return store.Lineage{}, errors.New("record lineage: original, derived and kind are required")
	}
	if l.Original == l.Derived {
		return store.Lineage{}, fmt.Errorf("record lineage: %s cannot be derived from itself", l.Original)
	}
	detail, err := store.CompactDetail(l.Detail)
	if err != nil {
		return store.Lineage{}, fmt.Errorf("record lineage of %s: detail: %w", l.Derived, err)
	}
	l.Detail = detail
	l.CreatedAt = s.now().UTC()
	var out store.Lineage
	err = s.tx(ctx, func(tx *sql.Tx) error {
		for _, d := range []string{l.Original, l.Derived} {
			var known bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM images WHERE digest = ?)`, d).Scan(&known); err != nil {
				return fmt.Errorf("record lineage of %s: %w", l.Derived, err)
			}
			if !known {
				return fmt.Errorf("record lineage of %s: image %s %w; record its manifest first", l.Derived, d, store.ErrNotFound)
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO lineage (original, derived, kind, repository, detail, actor, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (original, derived, kind) DO NOTHING`,
			l.Original, l.Derived, l.Kind, l.Repository, nullText(l.Detail), l.Actor, nanos(l.CreatedAt))
		if err != nil {
			return fmt.Errorf("record lineage of %s: %w", l.Derived, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			d, err := json.Marshal(struct {
				Original string `json:"original"`
				Kind     string `json:"kind"`
			}{l.Original, l.Kind})
			if err != nil {
				return err
			}
			if _, err := s.appendAudit(ctx, tx, store.AuditEntry{Actor: l.Actor, Action: "image.derived", Subject: l.Derived, Detail: d}); err != nil {
				return fmt.Errorf("record lineage of %s: audit: %w", l.Derived, err)
			}
		}
		ls, err := queryLineage(ctx, tx, `original = ? AND derived = ? AND kind = ?`, l.Original, l.Derived, l.Kind)
		if err != nil {
			return err
		}
		if len(ls) != 1 {
			return fmt.Errorf("record lineage of %s: stored %d rows", l.Derived, len(ls))
		}
		out = ls[0]
		return nil
	})
	return out, err
}

// DerivedFrom lists the images made from original, oldest first.
func (s *Store) DerivedFrom(ctx context.Context, original string) ([]store.Lineage, error) {
	return queryLineage(ctx, s.read, `original = ?`, original)
}

// OriginsOf lists what derived was made from, oldest first.
func (s *Store) OriginsOf(ctx context.Context, derived string) ([]store.Lineage, error) {
	return queryLineage(ctx, s.read, `derived = ?`, derived)
}

func queryLineage(ctx context.Context, q querier, where string, args ...any) ([]store.Lineage, error) {
	rows, err := q.QueryContext(ctx, `SELECT original, derived, kind, repository, detail, actor, created_at
		FROM lineage WHERE `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("lineage: %w", err)
	}
	defer rows.Close()
	out := []store.Lineage{}
	for rows.Next() {
		var (
			l      store.Lineage
			detail sql.NullString
			at     int64
		)
		if err := rows.Scan(&l.Original, &l.Derived, &l.Kind, &l.Repository, &detail, &l.Actor, &at); err != nil {
			return nil, fmt.Errorf("lineage: %w", err)
		}
		if detail.Valid {
			l.Detail = json.RawMessage(detail.String)
		}
		l.CreatedAt = fromNanos(at)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lineage: %w", err)
	}
	return out, nil
}
