package vulndb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Status describes what the database holds.
type Status struct {
	Path      string `json:"path"`
	Snapshot  string `json:"snapshot"`
	Records   int    `json:"records"`
	Withdrawn int    `json:"withdrawn"`
	// Ecosystems counts advisories by ecosystem family ("Debian" for
	// Debian:11 and Debian:12 alike); an advisory affecting packages of two
	// ecosystems counts in both.
	Ecosystems     map[string]int `json:"ecosystems"`
	NewestModified string         `json:"newestModified,omitempty"`
	UpdatedAt      string         `json:"updatedAt,omitempty"`
	// Sources are the paths imported, the latest import of each.
	Sources []SourceStatus `json:"sources"`
}

// SourceStatus is the latest import of one path.
type SourceStatus struct {
	Path       string `json:"path"`
	Kind       string `json:"kind"`
	ImportedAt string `json:"importedAt"`
	Records    int    `json:"records"`
	Skipped    int    `json:"skipped"`
	// Digest is the snapshot digest of the records this path held.
	Digest string `json:"digest"`
}

// Status reads the database's sources, counts, newest modified time and
// snapshot digest, all from one consistent snapshot.
func (d *DB) Status(ctx context.Context) (Status, error) {
	tx, err := d.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	defer tx.Rollback()
	st := Status{Path: d.path, Ecosystems: map[string]int{}, Sources: []SourceStatus{}}
	if st.Snapshot, err = readSnapshot(ctx, tx); err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	var newest sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COUNT(withdrawn), MAX(modified) FROM advisories`).Scan(&st.Records, &st.Withdrawn, &newest); err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	// modified is stored in RFC 3339 with a varying number of fraction
	// digits, so MAX(modified) can be off by a fraction; take the true
	// newest among the records sharing its second.
	if newest.Valid {
		rows, err := tx.QueryContext(ctx, `SELECT modified FROM advisories WHERE substr(modified, 1, 19) = substr(?, 1, 19)`, newest.String)
		if err != nil {
			return Status{}, fmt.Errorf("status: %w", err)
		}
		best := newest.String
		bt, _ := parseTime(best)
		for rows.Next() {
			var m string
			if err := rows.Scan(&m); err != nil {
				rows.Close()
				return Status{}, fmt.Errorf("status: %w", err)
			}
			if t, err := parseTime(m); err == nil && t.After(bt) {
				best, bt = m, t
			}
		}
		rows.Close()
		st.NewestModified = best
	}
	rows, err := tx.QueryContext(ctx, `SELECT family, COUNT(DISTINCT advisory) FROM packages GROUP BY family ORDER BY family`)
	if err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	for rows.Next() {
		var fam string
		var n int
		if err := rows.Scan(&fam, &n); err != nil {
			rows.Close()
			return Status{}, fmt.Errorf("status: %w", err)
		}
		st.Ecosystems[fam] = n
	}
	rows.Close()
	if err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'updated_at'`).Scan(&st.UpdatedAt); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	rows, err = tx.QueryContext(ctx, `SELECT path, kind, imported_at, records, skipped, sha256 FROM sources
		WHERE id IN (SELECT MAX(id) FROM sources GROUP BY path) ORDER BY path`)
	if err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s SourceStatus
		if err := rows.Scan(&s.Path, &s.Kind, &s.ImportedAt, &s.Records, &s.Skipped, &s.Digest); err != nil {
			return Status{}, fmt.Errorf("status: %w", err)
		}
		st.Sources = append(st.Sources, s)
	}
	return st, rows.Err()
}
