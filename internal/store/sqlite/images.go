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

// RecordManifest records m. A new digest starts quarantined with its first
// transition and an "image.recorded" audit entry; a known digest that gains a
// repository gets an "image.linked" entry, because an approved digest becomes
// pullable from that repository at once.
func (s *Store) RecordManifest(ctx context.Context, m store.Manifest) (store.Image, error) {
	if m.Repository == "" || m.Digest == "" {
		return store.Image{}, errors.New("record manifest: repository and digest are required")
	}
	var annotations []byte
	if len(m.Annotations) > 0 {
		var err error
		if annotations, err = json.Marshal(m.Annotations); err != nil {
			return store.Image{}, fmt.Errorf("record manifest %s: %w", m.Digest, err)
		}
	}
	now := s.now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO images
			(digest, media_type, artifact_type, size, state, subject, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING`,
			m.Digest, m.MediaType, m.ArtifactType, m.Size, store.Quarantined, m.Subject, nanos(now), nanos(now))
		if err != nil {
			return fmt.Errorf("record manifest %s: %w", m.Digest, err)
		}
		isNew := affected(res) == 1
		res, err = tx.ExecContext(ctx, `INSERT INTO image_repos (repository, digest, pushed_by, at)
			VALUES (?, ?, ?, ?) ON CONFLICT (repository, digest) DO NOTHING`,
			m.Repository, m.Digest, m.Actor, nanos(now))
		if err != nil {
			return fmt.Errorf("record manifest %s in %s: %w", m.Digest, m.Repository, err)
		}
		linked := affected(res) == 1

		for _, b := range m.Blobs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO manifest_blobs (repository, manifest_digest, blob_digest)
				VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, m.Repository, m.Digest, b); err != nil {
				return fmt.Errorf("record blob %s of %s: %w", b, m.Digest, err)
			}
		}
		for i, c := range m.Children {
			var platform []byte
			if c.Platform != nil {
				if platform, err = json.Marshal(c.Platform); err != nil {
					return fmt.Errorf("record child %s of %s: %w", c.Digest, m.Digest, err)
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO index_children
				(repository, index_digest, child_digest, position, media_type, platform)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				m.Repository, m.Digest, c.Digest, i, c.MediaType, nullText(platform)); err != nil {
				return fmt.Errorf("record child %s of %s: %w", c.Digest, m.Digest, err)
			}
		}
		if m.Subject != "" {
			if _, err := tx.ExecContext(ctx, `INSERT INTO referrers
				(repository, digest, subject, media_type, artifact_type, size, annotations)
				VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				m.Repository, m.Digest, m.Subject, m.MediaType, m.ArtifactType, m.Size, nullText(annotations)); err != nil {
				return fmt.Errorf("record referrer %s of %s: %w", m.Digest, m.Subject, err)
			}
		}

		detail, _ := json.Marshal(map[string]string{"repository": m.Repository, "mediaType": m.MediaType})
		switch {
		case isNew:
			if _, err := tx.ExecContext(ctx, `INSERT INTO transitions (digest, from_state, to_state, actor, reason, at)
				VALUES (?, '', ?, ?, ?, ?)`,
				m.Digest, store.Quarantined, m.Actor, "recorded on push to "+m.Repository, nanos(now)); err != nil {
				return fmt.Errorf("record manifest %s: %w", m.Digest, err)
			}
			_, err = s.appendAudit(ctx, tx, store.AuditEntry{Actor: m.Actor, Action: "image.recorded", Subject: m.Digest, Detail: detail})
			return err
		case linked:
			if _, err := tx.ExecContext(ctx, `UPDATE images SET updated_at = ? WHERE digest = ?`, nanos(now), m.Digest); err != nil {
				return fmt.Errorf("record manifest %s: %w", m.Digest, err)
			}
			_, err = s.appendAudit(ctx, tx, store.AuditEntry{Actor: m.Actor, Action: "image.linked", Subject: m.Digest, Detail: detail})
			return err
		}
		return nil
	})
	if err != nil {
		return store.Image{}, err
	}
	return s.Image(ctx, m.Digest)
}

// ForgetManifest removes the repository's link and everything recorded under
// it; the image, its history and its links to other repositories stay.
func (s *Store) ForgetManifest(ctx context.Context, repository, digest string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		// Explicit deletes rather than trusting ON DELETE CASCADE alone, so a
		// connection without foreign_keys cannot leave servable blob rows behind.
		for _, q := range []string{
			`DELETE FROM manifest_blobs WHERE repository = ? AND manifest_digest = ?`,
			`DELETE FROM index_children WHERE repository = ? AND index_digest = ?`,
			`DELETE FROM referrers WHERE repository = ? AND digest = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, repository, digest); err != nil {
				return fmt.Errorf("forget %s in %s: %w", digest, repository, err)
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM image_repos WHERE repository = ? AND digest = ?`, repository, digest)
		if err != nil {
			return fmt.Errorf("forget %s in %s: %w", digest, repository, err)
		}
		if affected(res) == 0 {
			return fmt.Errorf("repository %s does not hold %s: %w", repository, digest, store.ErrNotFound)
		}
		return nil
	})
}

// SetSource stores the documented source of digest and audits it, since the
// source is part of the evidence an approval rests on.
func (s *Store) SetSource(ctx context.Context, digest string, source json.RawMessage) error {
	src, err := store.CompactDetail(source)
	if err != nil {
		return fmt.Errorf("set source of %s: %w", digest, err)
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE images SET source = ?, updated_at = ? WHERE digest = ?`,
			nullText(src), nanos(s.now()), digest)
		if err != nil {
			return fmt.Errorf("set source of %s: %w", digest, err)
		}
		if affected(res) == 0 {
			return fmt.Errorf("image %s: %w", digest, store.ErrNotFound)
		}
		_, err = s.appendAudit(ctx, tx, store.AuditEntry{Action: "image.source", Subject: digest, Detail: src})
		return err
	})
}

// Image returns the record of digest with its repositories, children and history.
func (s *Store) Image(ctx context.Context, digest string) (store.Image, error) {
	var img store.Image
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, imageSelect+` WHERE digest = ?`, digest)
		if err != nil {
			return fmt.Errorf("image %s: %w", digest, err)
		}
		imgs, err := scanImages(rows)
		if err != nil {
			return fmt.Errorf("image %s: %w", digest, err)
		}
		if len(imgs) == 0 {
			return fmt.Errorf("image %s: %w", digest, store.ErrNotFound)
		}
		img = imgs[0]
		return fillImage(ctx, tx, &img)
	})
	return img, err
}

// Images lists images, most recently changed first.
func (s *Store) Images(ctx context.Context, f store.ImageFilter) ([]store.Image, error) {
	q := imageSelect + ` WHERE (?1 = '' OR state = ?1)
		AND (?2 = '' OR digest IN (SELECT digest FROM image_repos WHERE repository = ?2))
		ORDER BY updated_at DESC, digest`
	args := []any{string(f.State), f.Repository}
	if f.Limit > 0 {
		q += ` LIMIT ?3`
		args = append(args, f.Limit)
	}
	var imgs []store.Image
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("list images: %w", err)
		}
		if imgs, err = scanImages(rows); err != nil {
			return fmt.Errorf("list images: %w", err)
		}
		for i := range imgs {
			if err := fillImage(ctx, tx, &imgs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	return imgs, err
}

const imageSelect = `SELECT digest, media_type, artifact_type, size, state, expires, subject, source, created_at, updated_at FROM images`

func scanImages(rows *sql.Rows) ([]store.Image, error) {
	defer rows.Close()
	var imgs []store.Image
	for rows.Next() {
		var (
			img                  store.Image
			expires              sql.NullInt64
			source               sql.NullString
			createdAt, updatedAt int64
		)
		if err := rows.Scan(&img.Digest, &img.MediaType, &img.ArtifactType, &img.Size, &img.State,
			&expires, &img.Subject, &source, &createdAt, &updatedAt); err != nil {
			return nil, err
		}
		img.Expires = fromNullNanos(expires)
		if source.Valid {
			img.Source = json.RawMessage(source.String)
		}
		img.CreatedAt, img.UpdatedAt = fromNanos(createdAt), fromNanos(updatedAt)
		imgs = append(imgs, img)
	}
	return imgs, rows.Err()
}

// fillImage adds the repositories, children and history of img.
func fillImage(ctx context.Context, q querier, img *store.Image) error {
	img.Repositories = []string{}
	rows, err := q.QueryContext(ctx, `SELECT repository FROM image_repos WHERE digest = ? ORDER BY repository`, img.Digest)
	if err != nil {
		return fmt.Errorf("repositories of %s: %w", img.Digest, err)
	}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			rows.Close()
			return fmt.Errorf("repositories of %s: %w", img.Digest, err)
		}
		img.Repositories = append(img.Repositories, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("repositories of %s: %w", img.Digest, err)
	}

	// An index has the same children in every repository (the digest fixes
	// its content); take them from whichever repository recorded them first.
	rows, err = q.QueryContext(ctx, `SELECT child_digest, media_type, platform FROM index_children
		WHERE index_digest = ?1 AND repository = (SELECT MIN(repository) FROM index_children WHERE index_digest = ?1)
		ORDER BY position`, img.Digest)
	if err != nil {
		return fmt.Errorf("children of %s: %w", img.Digest, err)
	}
	for rows.Next() {
		var (
			c        store.Child
			platform sql.NullString
		)
		if err := rows.Scan(&c.Digest, &c.MediaType, &platform); err != nil {
			rows.Close()
			return fmt.Errorf("children of %s: %w", img.Digest, err)
		}
		if platform.Valid {
			c.Platform = new(store.Platform)
			if err := json.Unmarshal([]byte(platform.String), c.Platform); err != nil {
				rows.Close()
				return fmt.Errorf("children of %s: platform of %s: %w", img.Digest, c.Digest, err)
			}
		}
		img.Children = append(img.Children, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("children of %s: %w", img.Digest, err)
	}

	img.History = []store.Transition{}
	rows, err = q.QueryContext(ctx, `SELECT from_state, to_state, actor, reason, at, expires FROM transitions
		WHERE digest = ? ORDER BY id`, img.Digest)
	if err != nil {
		return fmt.Errorf("history of %s: %w", img.Digest, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			t       store.Transition
			at      int64
			expires sql.NullInt64
		)
		if err := rows.Scan(&t.From, &t.To, &t.Actor, &t.Reason, &at, &expires); err != nil {
			return fmt.Errorf("history of %s: %w", img.Digest, err)
		}
		t.At, t.Expires = fromNanos(at), fromNullNanos(expires)
		img.History = append(img.History, t)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("history of %s: %w", img.Digest, err)
	}
	return nil
}

// Transition moves digest to state to. The current state is read inside the
// write transaction, so two concurrent approvals cannot both succeed.
// An expiry in the past is accepted (the approval is then never servable);
// rejecting bad user input is the caller's job, recording decisions is ours.
func (s *Store) Transition(ctx context.Context, digest string, to store.State, actor, reason string, expires *time.Time) (store.Image, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return s.transitionTx(ctx, tx, digest, to, actor, reason, expires)
	})
	if err != nil {
		return store.Image{}, err
	}
	return s.Image(ctx, digest)
}

// transitionTx moves digest to state to inside tx: state, history, audit,
// and what hangs on the decision: pending approvals are consumed (approved)
// or voided (rejected), and a revocation is recorded on every attestation.
func (s *Store) transitionTx(ctx context.Context, tx *sql.Tx, digest string, to store.State, actor, reason string, expires *time.Time) error {
	if to != store.Approved {
		expires = nil
	}
	now := s.now()
	var from store.State
	err := tx.QueryRowContext(ctx, `SELECT state FROM images WHERE digest = ?`, digest).Scan(&from)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("image %s: %w", digest, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("transition %s: %w", digest, err)
	}
	if err := store.CheckTransition(digest, from, to); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE images SET state = ?, expires = ?, updated_at = ? WHERE digest = ?`,
		to, nullNanos(expires), nanos(now), digest); err != nil {
		return fmt.Errorf("transition %s to %s: %w", digest, to, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO transitions (digest, from_state, to_state, actor, reason, at, expires)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, digest, from, to, actor, reason, nanos(now), nullNanos(expires)); err != nil {
		return fmt.Errorf("transition %s to %s: %w", digest, to, err)
	}
	switch to {
	case store.Approved, store.Rejected:
		outcome := store.ApprovalVoid
		if to == store.Approved {
			outcome = store.ApprovalApproved
		}
		if _, err := tx.ExecContext(ctx, `UPDATE approvals SET outcome = ? WHERE digest = ? AND outcome = 'pending'`, outcome, digest); err != nil {
			return fmt.Errorf("transition %s to %s: approvals: %w", digest, to, err)
		}
	case store.Revoked:
		if _, err := tx.ExecContext(ctx, `UPDATE attestations SET revoked_at = ?, revoked_by = ?, revoke_reason = ?
			WHERE digest = ? AND revoked_at IS NULL`, nanos(now), actor, reason, digest); err != nil {
			return fmt.Errorf("transition %s to %s: attestations: %w", digest, to, err)
		}
	}
	detail, err := json.Marshal(struct {
		From    store.State `json:"from"`
		To      store.State `json:"to"`
		Reason  string      `json:"reason"`
		Expires *time.Time  `json:"expires,omitempty"`
	}{from, to, reason, utcPtr(expires)})
	if err != nil {
		return fmt.Errorf("transition %s to %s: %w", digest, to, err)
	}
	_, err = s.appendAudit(ctx, tx, store.AuditEntry{Actor: actor, Action: "state." + string(to), Subject: digest, Detail: detail})
	return err
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// approvedIn is the effective-approval test for manifest digest column m in
// repository ?1 at time ?2: approved and unexpired itself, or a child of an
// approved, unexpired index held in the same repository. One level of
// nesting only: OCI indexes of indexes are not pushed by common tools.
const approvedIn = `(
	EXISTS (SELECT 1 FROM images i WHERE i.digest = %[1]s
		AND i.state = 'approved' AND (i.expires IS NULL OR i.expires > ?2))
	OR EXISTS (SELECT 1 FROM index_children c JOIN images p ON p.digest = c.index_digest
		WHERE c.repository = ?1 AND c.child_digest = %[1]s
		AND p.state = 'approved' AND (p.expires IS NULL OR p.expires > ?2)))`

var (
	manifestServableQuery = `SELECT i.state, ` + fmt.Sprintf(approvedIn, "r.digest") + `
		FROM image_repos r JOIN images i ON i.digest = r.digest
		WHERE r.repository = ?1 AND r.digest = ?3`
	blobServableQuery = `SELECT EXISTS (SELECT 1 FROM manifest_blobs b
		WHERE b.repository = ?1 AND b.blob_digest = ?3 AND ` + fmt.Sprintf(approvedIn, "b.manifest_digest") + `)`
)

// ManifestServable reports the effective state of digest in repository.
// Approved means servable now. An approval that has expired reports
// Quarantined: the digest needs vetting again, and Image still shows the
// stored state and Expires so the caller can say why.
func (s *Store) ManifestServable(ctx context.Context, repository, digest string) (store.State, bool, error) {
	var (
		state    store.State
		approved bool
	)
	err := s.manifestStmt.QueryRowContext(ctx, repository, nanos(s.now()), digest).Scan(&state, &approved)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("check %s in %s: %w", digest, repository, err)
	}
	switch {
	case approved:
		return store.Approved, true, nil
	case state == store.Approved: // expired
		return store.Quarantined, true, nil
	}
	return state, true, nil
}

// BlobServable reports whether blob belongs to a manifest in repository whose
// effective state is approved.
func (s *Store) BlobServable(ctx context.Context, repository, blob string) (bool, error) {
	var ok bool
	if err := s.blobStmt.QueryRowContext(ctx, repository, nanos(s.now()), blob).Scan(&ok); err != nil {
		return false, fmt.Errorf("check blob %s in %s: %w", blob, repository, err)
	}
	return ok, nil
}

// Referrers lists manifests in repository whose subject is digest.
func (s *Store) Referrers(ctx context.Context, repository, digest string) ([]store.Referrer, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT r.digest, r.media_type, r.artifact_type, r.size, r.annotations, i.state
		FROM referrers r JOIN images i ON i.digest = r.digest
		WHERE r.repository = ? AND r.subject = ? ORDER BY r.digest`, repository, digest)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s in %s: %w", digest, repository, err)
	}
	defer rows.Close()
	refs := []store.Referrer{}
	for rows.Next() {
		var (
			r           store.Referrer
			annotations sql.NullString
		)
		if err := rows.Scan(&r.Digest, &r.MediaType, &r.ArtifactType, &r.Size, &annotations, &r.State); err != nil {
			return nil, fmt.Errorf("referrers of %s in %s: %w", digest, repository, err)
		}
		if annotations.Valid {
			if err := json.Unmarshal([]byte(annotations.String), &r.Annotations); err != nil {
				return nil, fmt.Errorf("referrer %s: annotations: %w", r.Digest, err)
			}
		}
		refs = append(refs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("referrers of %s in %s: %w", digest, repository, err)
	}
	return refs, nil
}

func affected(res sql.Result) int64 {
	n, err := res.RowsAffected()
	if err != nil {
		return 0
	}
	return n
}
