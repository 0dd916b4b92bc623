// Package vulndb is Airlock's offline advisory database: OSV records
// imported from directories, files and osv.dev's all.zip archives into one
// SQLite file in the data directory, indexed by ecosystem and package, and
// matched against an image's packages with each ecosystem's version order.
// Nothing is fetched: the data is what an operator imported, named by a
// snapshot digest that every finding carries.
package vulndb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the database file inside the data directory.
const FileName = "advisories.db"

// schemaVersion is bumped with every change to the tables below.
const schemaVersion = 2

// busyTimeout covers a second process (airlock db import next to airlock
// serve) holding the write lock.
const busyTimeout = 30 * time.Second

// ErrSchemaNewer is returned by Open for a database written by a newer Airlock.
var ErrSchemaNewer = errors.New("advisory database schema is newer than this airlock")

// DB is an open advisory database. It is safe for concurrent use.
type DB struct {
	path string
	db   *sql.DB // the single writer
	read *sql.DB
	now  func() time.Time

	mu       sync.Mutex
	snapshot string
}

// Open opens or creates the database DATA/advisories.db.
func Open(ctx context.Context, dataDir string) (*DB, error) {
	if dataDir == "" {
		return nil, errors.New("open advisory database: a data directory is required")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("open advisory database: %w", err)
	}
	return OpenFile(ctx, filepath.Join(dataDir, FileName))
}

// OpenFile opens or creates the database at path.
func OpenFile(ctx context.Context, path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open advisory database %s: %w", path, err)
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open advisory database: %w", err)
	}
	f.Close()
	write, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("open advisory database %s: %w", abs, err)
	}
	// One writer: SQLite has one at a time anyway, and IMMEDIATE transactions
	// make a second process wait (busy timeout) instead of failing.
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	d := &DB{path: abs, db: write, now: time.Now}
	if err := d.init(ctx); err != nil {
		write.Close()
		return nil, err
	}
	// Readers use DEFERRED transactions: in WAL mode each sees one
	// consistent snapshot and never waits behind an import.
	if d.read, err = sql.Open("sqlite", dsn(abs, true)); err != nil {
		write.Close()
		return nil, fmt.Errorf("open advisory database %s: %w", abs, err)
	}
	d.read.SetMaxOpenConns(4)
	if _, err := d.refreshSnapshot(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(busyTimeout.Milliseconds(), 10))
	q.Set("_foreign_keys", "1")
	// 64 MiB of page cache: an all.zip import touches index pages all over.
	q.Add("_pragma", "cache_size(-65536)")
	if readOnly {
		q.Set("_query_only", "1")
	} else {
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

// Path is the database file.
func (d *DB) Path() string { return d.path }

// Close closes the database.
func (d *DB) Close() error {
	err := d.db.Close()
	if d.read != nil {
		err = errors.Join(err, d.read.Close())
	}
	return err
}

// The tables: every record whole (the evidence, as imported), its header
// (the record without affected[], what a finding needs besides the entry
// that matched), one row per affected package with that entry's JSON, and
// the binary packages Ubuntu lists for each source package.
const schema = `
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE sources (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	path        TEXT NOT NULL,
	kind        TEXT NOT NULL,
	sha256      TEXT NOT NULL,
	imported_at TEXT NOT NULL,
	records     INTEGER NOT NULL,
	skipped     INTEGER NOT NULL
);
CREATE TABLE advisories (
	id        TEXT PRIMARY KEY,
	modified  TEXT NOT NULL,
	withdrawn TEXT,
	digest    TEXT NOT NULL,
	source    INTEGER NOT NULL REFERENCES sources(id),
	header    BLOB NOT NULL,
	record    BLOB NOT NULL
);
CREATE TABLE packages (
	advisory  TEXT NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
	idx       INTEGER NOT NULL,
	ecosystem TEXT NOT NULL,
	family    TEXT NOT NULL,
	name      TEXT NOT NULL,
	affected  BLOB NOT NULL,
	PRIMARY KEY (advisory, idx)
);
CREATE INDEX packages_name ON packages (family, name);
CREATE TABLE binaries (
	advisory TEXT NOT NULL,
	idx      INTEGER NOT NULL,
	family   TEXT NOT NULL,
	name     TEXT NOT NULL,
	FOREIGN KEY (advisory, idx) REFERENCES packages (advisory, idx) ON DELETE CASCADE
);
CREATE INDEX binaries_name ON binaries (family, name);
CREATE INDEX binaries_advisory ON binaries (advisory, idx);
`

func (d *DB) init(ctx context.Context) error {
	var mode string
	if err := d.db.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		return fmt.Errorf("open advisory database %s: %w", d.path, err)
	}
	var v int
	if err := d.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("open advisory database %s: %w", d.path, err)
	}
	if v > schemaVersion {
		return fmt.Errorf("open advisory database %s: %w (version %d > %d)", d.path, ErrSchemaNewer, v, schemaVersion)
	}
	if v == schemaVersion {
		return nil
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("open advisory database %s: %w", d.path, err)
	}
	defer tx.Rollback()
	if v > 0 {
		// An older layout holds nothing that cannot be imported again: it
		// is replaced, and status shows the database empty.
		slog.Warn("advisory database layout changed; its records are dropped, import them again", "path", d.path, "from", v, "to", schemaVersion)
		for _, t := range []string{"binaries", "packages", "affected", "advisories", "sources", "meta"} {
			if _, err := tx.ExecContext(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
				return fmt.Errorf("open advisory database %s: %w", d.path, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("create advisory database %s: %w", d.path, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("create advisory database %s: %w", d.path, err)
	}
	return tx.Commit()
}

// queryer is what both *sql.DB and *sql.Tx offer.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// computeSnapshot is the sha256 over the sorted lines "id\tmodified\n" of
// every record: the same set of advisories gives the same digest whatever
// order or path it was imported by.
func computeSnapshot(ctx context.Context, q queryer) (string, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, modified FROM advisories ORDER BY id`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	h := sha256.New()
	for rows.Next() {
		var id, modified string
		if err := rows.Scan(&id, &modified); err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\t%s\n", id, modified)
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// readSnapshot reads the digest stored by the last import.
func readSnapshot(ctx context.Context, q queryer) (string, error) {
	var s string
	err := q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'snapshot'`).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return emptySnapshot, nil
	}
	return s, err
}

// emptySnapshot is the digest of a database with no records.
var emptySnapshot = "sha256:" + hex.EncodeToString(sha256.New().Sum(nil))

func (d *DB) refreshSnapshot(ctx context.Context) (string, error) {
	s, err := readSnapshot(ctx, d.read)
	if err != nil {
		return "", fmt.Errorf("advisory database %s: %w", d.path, err)
	}
	d.mu.Lock()
	d.snapshot = s
	d.mu.Unlock()
	return s, nil
}

// Snapshot is the digest of the data as of the last import or match.
func (d *DB) Snapshot() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.snapshot
}
