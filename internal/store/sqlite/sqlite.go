// Package sqlite is the embedded Store backend: one SQLite file in WAL mode,
// pure Go (modernc.org/sqlite), for a single `airlock serve` on a laptop or a
// small site. Writes go through one connection so they are serialised; reads
// use a pool so the registry gate never waits behind a writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/airlock-dev/airlock/internal/store"
)

// ErrSchemaNewer is returned by Open for a database written by a newer Airlock.
var ErrSchemaNewer = errors.New("database schema is newer than this airlock")

// busyTimeout is how long a statement waits for another process's write lock.
// Inside one process writes never contend (one write connection); this covers
// a second process such as `airlock approve` run next to `airlock serve`.
const busyTimeout = 10 * time.Second

// Store implements store.Store over one SQLite file.
type Store struct {
	path  string
	write *sql.DB // exactly one connection: SQLite has one writer at a time anyway
	read  *sql.DB
	now   func() time.Time
	// gen counts write transactions (bumped before and after each commit),
	// so a cache of reads can tell that nothing changed since it read.
	gen atomic.Uint64
	// The gate's two queries run on every blob and manifest GET: prepared
	// once, they skip SQLite's parse and plan (most of their cost).
	manifestStmt, blobStmt *sql.Stmt
}

// Generation changes whenever a write transaction commits in this process.
func (s *Store) Generation() uint64 { return s.gen.Load() }

var _ store.Store = (*Store)(nil)

// Open opens or creates the database at path (mode 0600), switches it to WAL
// and applies any pending schema migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" {
		return nil, errors.New("open store: a database file path is required")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// Create the file ourselves so it never exists with the umask's mode: it
	// holds token hashes and the audit log. SQLite gives the -wal and -shm files
	// the same mode as the database.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	f.Close()

	write, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	s := &Store{path: abs, write: write, now: time.Now}
	if err := s.init(ctx); err != nil {
		write.Close()
		return nil, err
	}

	read, err := sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	s.read = read
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.manifestStmt, err = read.PrepareContext(ctx, manifestServableQuery); err == nil {
		s.blobStmt, err = read.PrepareContext(ctx, blobServableQuery)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open store %s: prepare: %w", abs, err)
	}
	return s, nil
}

// dsn builds a URI so that any character in the path survives. Writers begin
// transactions IMMEDIATE so they take the write lock before reading; a
// DEFERRED transaction that reads then writes can fail with SQLITE_BUSY
// without waiting when another process wrote in between.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(busyTimeout.Milliseconds(), 10))
	q.Set("_foreign_keys", "1")
	if readOnly {
		q.Set("_query_only", "1")
	} else {
		q.Set("_txlock", "immediate")
		// FULL, not the usual WAL choice NORMAL: the audit log must survive a
		// power cut, and Airlock writes rarely.
		q.Set("_synchronous", "FULL")
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

// init switches the file to WAL (a property of the file, set once) and
// migrates the schema.
func (s *Store) init(ctx context.Context) error {
	var mode string
	if err := s.write.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		return fmt.Errorf("open store %s: %w", s.path, err)
	}
	if mode != "wal" {
		return fmt.Errorf("open store %s: could not switch to WAL mode (got %q); is the file on a network filesystem?", s.path, mode)
	}
	return s.migrate(ctx)
}

func (s *Store) migrate(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			applied_at INTEGER NOT NULL
		)`); err != nil {
			return fmt.Errorf("migrate %s: %w", s.path, err)
		}
		var have int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
			return fmt.Errorf("migrate %s: %w", s.path, err)
		}
		if have > len(migrations) {
			return fmt.Errorf("%w: %s has schema version %d but this airlock knows versions up to %d; run a newer airlock or restore a backup",
				ErrSchemaNewer, s.path, have, len(migrations))
		}
		for v := have + 1; v <= len(migrations); v++ {
			if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("migrate %s to schema version %d: %w", s.path, v, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
				v, nanos(s.now())); err != nil {
				return fmt.Errorf("migrate %s to schema version %d: %w", s.path, v, err)
			}
		}
		return nil
	})
}

// SetClock replaces the clock used for timestamps and expiry checks, for tests
// and simulations. Call it before the store is shared between goroutines.
func (s *Store) SetClock(now func() time.Time) { s.now = now }

// Ping checks that both connection pools reach the file.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.write.PingContext(ctx); err != nil {
		return fmt.Errorf("store %s: %w", s.path, err)
	}
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("store %s: %w", s.path, err)
	}
	return nil
}

// Close closes both pools.
func (s *Store) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.manifestStmt, s.blobStmt} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	errs = append(errs, s.write.Close())
	return errors.Join(errs...)
}

// tx runs fn in a write transaction and commits it if fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store %s: begin: %w", s.path, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	s.gen.Add(1)
	err = tx.Commit()
	s.gen.Add(1)
	if err != nil {
		return fmt.Errorf("store %s: commit: %w", s.path, err)
	}
	return nil
}

// readTx runs fn in a read transaction so that multi-query reads see one snapshot.
func (s *Store) readTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("store %s: begin: %w", s.path, err)
	}
	defer tx.Rollback()
	return fn(tx)
}

func nanos(t time.Time) int64 { return t.UTC().UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func nullNanos(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: nanos(*t), Valid: true}
}

func fromNullNanos(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromNanos(n.Int64)
	return &t
}

// nullText stores empty JSON as NULL.
func nullText(b []byte) sql.NullString {
	if len(b) == 0 {
		return sql.NullString{}
	}
	return sql.NullString{String: string(b), Valid: true}
}

// querier is what both *sql.DB and *sql.Tx offer, so read helpers serve both paths.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}
