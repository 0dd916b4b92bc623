package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/airlock-dev/airlock/internal/store"
)

var _ store.Imports = (*Store)(nil)

// RecordImport stores im, notices a tag that now resolves to another digest,
// and copies the record into the image's source, all in one transaction so
// the source, the import history and the audit log never disagree.
func (s *Store) RecordImport(ctx context.Context, im store.Import) (store.Import, error) {
	if im.Digest == "" || im.Normalized == "" {
		return store.Import{}, errors.New("record import: digest and normalized reference are required")
	}
	facts, err := store.CompactDetail(im.Facts)
	if err != nil {
		return store.Import{}, fmt.Errorf("record import of %s: facts: %w", im.Digest, err)
	}
	im.Facts = facts
	var tags []byte
	if len(im.Tags) > 0 {
		if tags, err = json.Marshal(im.Tags); err != nil {
			return store.Import{}, fmt.Errorf("record import of %s: %w", im.Digest, err)
		}
	}
	now := s.now()
	if im.ResolvedAt.IsZero() {
		im.ResolvedAt = now
	}
	im.ResolvedAt = im.ResolvedAt.UTC()
	im.PreviousDigest, im.TagMoved = "", false

	err = s.tx(ctx, func(tx *sql.Tx) error {
		var known bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM images WHERE digest = ?)`, im.Digest).Scan(&known); err != nil {
			return fmt.Errorf("record import of %s: %w", im.Digest, err)
		}
		if !known {
			return fmt.Errorf("record import of %s: image %w; record its manifest before its import", im.Digest, store.ErrNotFound)
		}

		var prev string
		err := tx.QueryRowContext(ctx, `SELECT digest FROM imports WHERE normalized = ? ORDER BY id DESC LIMIT 1`, im.Normalized).Scan(&prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("record import of %s: previous import of %s: %w", im.Digest, im.Normalized, err)
		}
		if prev != "" && prev != im.Digest {
			im.PreviousDigest, im.TagMoved = prev, true
		}

		res, err := tx.ExecContext(ctx, `INSERT INTO imports
			(digest, reference, normalized, registry, transport, repository, tags, platform,
			 resolved_at, actor, facts, previous_digest, tag_moved)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			im.Digest, im.Reference, im.Normalized, im.Registry, im.Transport, im.Repository, nullText(tags), im.Platform,
			nanos(im.ResolvedAt), im.Actor, nullText(im.Facts), im.PreviousDigest, im.TagMoved)
		if err != nil {
			return fmt.Errorf("record import of %s: %w", im.Digest, err)
		}
		if im.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("record import of %s: %w", im.Digest, err)
		}

		if im.TagMoved {
			detail, err := json.Marshal(struct {
				Reference string `json:"reference"`
				From      string `json:"from"`
				To        string `json:"to"`
			}{im.Normalized, im.PreviousDigest, im.Digest})
			if err != nil {
				return fmt.Errorf("record import of %s: %w", im.Digest, err)
			}
			if _, err := s.appendAudit(ctx, tx, store.AuditEntry{Actor: im.Actor, Action: "tag.moved", Subject: im.Digest, Detail: detail}); err != nil {
				return err
			}
		}
		detail, err := json.Marshal(struct {
			Reference  string `json:"reference"`
			Normalized string `json:"normalized"`
			Transport  string `json:"transport"`
			Repository string `json:"repository"`
			Actor      string `json:"actor"`
		}{im.Reference, im.Normalized, im.Transport, im.Repository, im.Actor})
		if err != nil {
			return fmt.Errorf("record import of %s: %w", im.Digest, err)
		}
		if _, err := s.appendAudit(ctx, tx, store.AuditEntry{Actor: im.Actor, Action: "image.imported", Subject: im.Digest, Detail: detail}); err != nil {
			return err
		}

		source, err := json.Marshal(im)
		if err != nil {
			return fmt.Errorf("record import of %s: %w", im.Digest, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE images SET source = ?, updated_at = ? WHERE digest = ?`,
			string(source), nanos(now), im.Digest); err != nil {
			return fmt.Errorf("record import of %s: source: %w", im.Digest, err)
		}
		return nil
	})
	if err != nil {
		return store.Import{}, err
	}
	return im, nil
}

// ImportsOf lists the imports of digest, oldest first.
func (s *Store) ImportsOf(ctx context.Context, digest string) ([]store.Import, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, digest, reference, normalized, registry, transport, repository,
		tags, platform, resolved_at, actor, facts, previous_digest, tag_moved
		FROM imports WHERE digest = ? ORDER BY id`, digest)
	if err != nil {
		return nil, fmt.Errorf("imports of %s: %w", digest, err)
	}
	defer rows.Close()
	ims := []store.Import{}
	for rows.Next() {
		var (
			im          store.Import
			tags, facts sql.NullString
			resolvedAt  int64
		)
		if err := rows.Scan(&im.ID, &im.Digest, &im.Reference, &im.Normalized, &im.Registry, &im.Transport, &im.Repository,
			&tags, &im.Platform, &resolvedAt, &im.Actor, &facts, &im.PreviousDigest, &im.TagMoved); err != nil {
			return nil, fmt.Errorf("imports of %s: %w", digest, err)
		}
		im.ResolvedAt = fromNanos(resolvedAt)
		if tags.Valid {
			if err := json.Unmarshal([]byte(tags.String), &im.Tags); err != nil {
				return nil, fmt.Errorf("import %d of %s: tags: %w", im.ID, digest, err)
			}
		}
		if facts.Valid {
			im.Facts = json.RawMessage(facts.String)
		}
		ims = append(ims, im)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("imports of %s: %w", digest, err)
	}
	return ims, nil
}
