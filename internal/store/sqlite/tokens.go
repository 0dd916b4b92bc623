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

// CreateToken stores t and audits "token.created". The hash never reaches the
// audit log: the log is shown to people, the hash is a credential check.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if t.Name == "" || t.Hash == "" {
		return errors.New("create token: name and hash are required")
	}
	if !t.Role.Valid() {
		return fmt.Errorf("create token %s: %q is not a role; use puller, pusher, approver, scanner or admin", t.Name, t.Role)
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var clash string
		err := tx.QueryRowContext(ctx, `SELECT CASE WHEN name = ? THEN 'name' ELSE 'secret' END
			FROM tokens WHERE name = ? OR hash = ? LIMIT 1`, t.Name, t.Name, t.Hash).Scan(&clash)
		switch {
		case err == nil && clash == "name":
			return fmt.Errorf("token %s: %w; choose another name or revoke the old token", t.Name, store.ErrExists)
		case err == nil:
			return fmt.Errorf("token %s: a token with the same secret %w; generate a new secret", t.Name, store.ErrExists)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("create token %s: %w", t.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO tokens (name, role, hash, created_by, created_at, expires_at, revoked)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, t.Name, t.Role, t.Hash, t.CreatedBy, nanos(t.CreatedAt), nullNanos(t.ExpiresAt), t.Revoked); err != nil {
			return fmt.Errorf("create token %s: %w", t.Name, err)
		}
		detail, err := json.Marshal(struct {
			Role      store.Role `json:"role"`
			ExpiresAt *time.Time `json:"expiresAt,omitempty"`
		}{t.Role, utcPtr(t.ExpiresAt)})
		if err != nil {
			return fmt.Errorf("create token %s: %w", t.Name, err)
		}
		_, err = s.appendAudit(ctx, tx, store.AuditEntry{Actor: t.CreatedBy, Action: "token.created", Subject: t.Name, Detail: detail})
		return err
	})
}

const tokenSelect = `SELECT name, role, hash, created_by, created_at, expires_at, revoked FROM tokens`

// TokenByHash returns the token whose secret hashes to hash, revoked or
// expired alike: the caller decides, and can say which.
func (s *Store) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	rows, err := s.read.QueryContext(ctx, tokenSelect+` WHERE hash = ?`, hash)
	if err != nil {
		return store.Token{}, fmt.Errorf("look up token: %w", err)
	}
	toks, err := scanTokens(rows)
	if err != nil {
		return store.Token{}, fmt.Errorf("look up token: %w", err)
	}
	if len(toks) == 0 {
		// Never echo the hash: it would end up in logs next to the request.
		return store.Token{}, fmt.Errorf("token: %w", store.ErrNotFound)
	}
	return toks[0], nil
}

// Tokens lists all tokens by name.
func (s *Store) Tokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.read.QueryContext(ctx, tokenSelect+` ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	toks, err := scanTokens(rows)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return toks, nil
}

// RevokeToken marks the token revoked and audits "token.revoked". Revoking a
// revoked token changes nothing and is not audited again.
func (s *Store) RevokeToken(ctx context.Context, name, actor string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var revoked bool
		err := tx.QueryRowContext(ctx, `SELECT revoked FROM tokens WHERE name = ?`, name).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("token %s: %w", name, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("revoke token %s: %w", name, err)
		}
		if revoked {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked = 1 WHERE name = ?`, name); err != nil {
			return fmt.Errorf("revoke token %s: %w", name, err)
		}
		_, err = s.appendAudit(ctx, tx, store.AuditEntry{Actor: actor, Action: "token.revoked", Subject: name})
		return err
	})
}

func scanTokens(rows *sql.Rows) ([]store.Token, error) {
	defer rows.Close()
	toks := []store.Token{}
	for rows.Next() {
		var (
			t         store.Token
			createdAt int64
			expiresAt sql.NullInt64
		)
		if err := rows.Scan(&t.Name, &t.Role, &t.Hash, &t.CreatedBy, &createdAt, &expiresAt, &t.Revoked); err != nil {
			return nil, err
		}
		t.CreatedAt, t.ExpiresAt = fromNanos(createdAt), fromNullNanos(expiresAt)
		toks = append(toks, t)
	}
	return toks, rows.Err()
}
