package servertest

import (
	"context"
	"database/sql"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/internal/store/sqlite"
)

// Pid is the process id of the running server (a pipeline worker's lease
// owner names it).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// LogFrom returns what the process wrote to its log from byte offset off on,
// and the offset to continue from; a test waiting for a log line reads only
// what is new instead of copying the whole log on every poll.
func (p *Process) LogFrom(off int) (string, int) {
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	b := p.log.b.Bytes()
	if off > len(b) {
		off = len(b)
	}
	return string(b[off:]), len(b)
}

// PartialUploads lists the blob uploads that filesystem storage under
// DATA/registry holds open (path of each upload's data file → bytes written).
// An upload is removed when it commits, so a listed one is a copy in
// progress, or one that a crash cut short.
func PartialUploads(data string) map[string]int64 {
	up := map[string]int64{}
	root := filepath.Join(data, "registry", "docker", "registry", "v2", "repositories")
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil // a directory removed while walking: an upload that committed
		case d.IsDir() && (d.Name() == "_layers" || d.Name() == "_manifests"):
			return filepath.SkipDir
		case !d.IsDir() && d.Name() == "data" && filepath.Base(filepath.Dir(filepath.Dir(path))) == "_uploads":
			if fi, err := d.Info(); err == nil {
				up[path] = fi.Size()
			}
		}
		return nil
	})
	return up
}

// ReadStore opens the SQLite store of a running server read-only, for a test
// that watches for a row to appear and must notice it within microseconds,
// faster than any API answers. It is closed when the test ends at the
// latest; close it before a restart that should recover from a crash alone.
func ReadStore(t testing.TB, data string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "airlock.db")+"?mode=ro&_busy_timeout=1000")
	if err != nil {
		t.Fatalf("read store: %v", err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// SnapshotStore opens a copy of the SQLite store (DATA/airlock.db and its
// write-ahead log) of a process that is not running, so a test can read what
// a crash left behind without its own close checkpointing the log that the
// next start has to recover. The copy is closed when the test ends.
func SnapshotStore(t testing.TB, data string) *sqlite.Store {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"airlock.db", "airlock.db-wal"} {
		if err := copyFile(filepath.Join(data, name), filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
			t.Fatalf("snapshot store: %v", err)
		}
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "airlock.db"))
	if err != nil {
		t.Fatalf("snapshot store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
