package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/airlock-dev/airlock/internal/store"
)

// Audit appends e in its own transaction.
func (s *Store) Audit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error) {
	var out store.AuditEntry
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = s.appendAudit(ctx, tx, e)
		return err
	})
	return out, err
}

// appendAudit links e to the newest entry inside tx. The caller's write
// transaction (BEGIN IMMEDIATE on the single write connection) is what keeps
// the chain from forking: no other append can read the same head.
func (s *Store) appendAudit(ctx context.Context, tx *sql.Tx, e store.AuditEntry) (store.AuditEntry, error) {
	if e.Action == "" {
		return store.AuditEntry{}, errors.New("audit: action is required")
	}
	detail, err := store.CompactDetail(e.Detail)
	if err != nil {
		return store.AuditEntry{}, fmt.Errorf("audit %s: %w", e.Action, err)
	}
	e.Detail = detail
	// The head comes from sqlite_sequence, not MAX(seq), so that a deleted
	// newest row is not silently reused and keeps showing up as a gap.
	var last sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'audit'`).Scan(&last); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return store.AuditEntry{}, fmt.Errorf("audit %s: %w", e.Action, err)
	}
	e.PrevHash = ""
	if last.Valid && last.Int64 > 0 {
		err := tx.QueryRowContext(ctx, `SELECT hash FROM audit WHERE seq = ?`, last.Int64).Scan(&e.PrevHash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return store.AuditEntry{}, fmt.Errorf("audit %s: %w", e.Action, err)
		}
	}
	e.Seq = last.Int64 + 1
	e.At = s.now().UTC()
	if e.Hash, err = store.AuditHash(e); err != nil {
		return store.AuditEntry{}, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit (seq, at, actor, action, subject, detail, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, e.Seq, nanos(e.At), e.Actor, e.Action, e.Subject, nullText(e.Detail), e.PrevHash, e.Hash); err != nil {
		return store.AuditEntry{}, fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return e, nil
}

const auditSelect = `SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit`

// AuditEntries lists entries in seq order.
func (s *Store) AuditEntries(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	var (
		where []string
		args  []any
	)
	if f.Subject != "" {
		where, args = append(where, "subject = ?"), append(args, f.Subject)
	}
	if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if f.AfterSeq > 0 {
		where, args = append(where, "seq > ?"), append(args, f.AfterSeq)
	}
	q := auditSelect
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	defer rows.Close()
	entries := []store.AuditEntry{}
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("list audit entries: %w", err)
		}
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	return entries, nil
}

func scanAudit(rows *sql.Rows) (store.AuditEntry, error) {
	var (
		e      store.AuditEntry
		at     int64
		detail sql.NullString
	)
	if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Subject, &detail, &e.PrevHash, &e.Hash); err != nil {
		return e, err
	}
	e.At = fromNanos(at)
	if detail.Valid {
		e.Detail = []byte(detail.String)
	}
	return e, nil
}

// VerifyAudit recomputes the chain from the first entry, in one read
// snapshot so concurrent appends do not look like tampering.
func (s *Store) VerifyAudit(ctx context.Context) (int64, error) {
	var good int64
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, auditSelect+` ORDER BY seq`)
		if err != nil {
			return fmt.Errorf("verify audit: %w", err)
		}
		defer rows.Close()
		prev := ""
		for rows.Next() {
			e, err := scanAudit(rows)
			if err != nil {
				return fmt.Errorf("verify audit after entry %d: %w", good, err)
			}
			want := good + 1
			switch {
			case e.Seq != want:
				return fmt.Errorf("%w: audit entry %d is missing (the next one is %d); restore the log from a backup and investigate who deleted it",
					store.ErrAuditTampered, want, e.Seq)
			case e.PrevHash != prev:
				return fmt.Errorf("%w: audit entry %d does not link to entry %d; restore the log from a backup and investigate who changed it",
					store.ErrAuditTampered, e.Seq, e.Seq-1)
			}
			h, err := store.AuditHash(e)
			if err != nil || h != e.Hash {
				return fmt.Errorf("%w: audit entry %d was changed after it was written; restore the log from a backup and investigate who changed it",
					store.ErrAuditTampered, e.Seq)
			}
			prev = e.Hash
			good++
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("verify audit after entry %d: %w", good, err)
		}
		// Deleting the newest rows leaves an intact but shorter chain; the
		// sequence counter still remembers how far it got.
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'audit'`).Scan(&last); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("verify audit: %w", err)
		}
		if last.Int64 > good {
			return fmt.Errorf("%w: audit entries %d to %d are missing; restore the log from a backup and investigate who deleted them",
				store.ErrAuditTampered, good+1, last.Int64)
		}
		return nil
	})
	return good, err
}
