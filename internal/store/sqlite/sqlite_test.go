package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/storetest"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) }, tamper)
}

// tamper edits the file the way someone with sqlite3 and write access would.
func tamper(st store.Store, seq int64, op storetest.TamperOp) error {
	s := st.(*Store)
	q := `UPDATE audit SET actor = 'mallory' WHERE seq = ?`
	if op == storetest.TamperDelete {
		q = `DELETE FROM audit WHERE seq = ?`
	}
	res, err := s.write.Exec(q, seq)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("no audit row %d", seq)
	}
	return nil
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "airlock.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	m := store.Manifest{Repository: "library/app", Digest: "sha256:aaaa", MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 1, Actor: "alice"}
	if _, err := s.RecordManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, m.Digest, store.Approved, "bob", "vetted", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for range 2 { // opening an up-to-date database applies nothing
		s, err = Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		var versions, max int
		if err := s.read.QueryRow(`SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&versions, &max); err != nil {
			t.Fatal(err)
		}
		if versions != len(migrations) || max != len(migrations) {
			t.Errorf("schema_migrations has %d rows up to %d; want %d", versions, max, len(migrations))
		}
		img, err := s.Image(ctx, m.Digest)
		if err != nil || img.State != store.Approved || len(img.History) != 2 {
			t.Errorf("after reopen Image = %+v, %v; want approved with 2 transitions", img, err)
		}
		if n, err := s.VerifyAudit(ctx); err != nil || n != 2 {
			t.Errorf("after reopen VerifyAudit = %d, %v; want 2", n, err)
		}
		s.Close()
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "airlock.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	future := len(migrations) + 1
	if _, err := s.write.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`, future); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, err = Open(ctx, path)
	if !errors.Is(err, ErrSchemaNewer) {
		t.Fatalf("Open(newer schema) = %v; want ErrSchemaNewer", err)
	}
	t.Logf("error shown to the user: %v", err)
}

func TestFileMode(t *testing.T) {
	s := openTemp(t)
	// Write something so the -wal file exists too.
	if _, err := s.Audit(context.Background(), store.AuditEntry{Action: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{s.path, s.path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o; want 600", filepath.Base(p), mode)
		}
	}
}

func TestOpenRequiresFile(t *testing.T) {
	for _, p := range []string{"", ":memory:"} {
		if s, err := Open(context.Background(), p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded; want an error", p)
		}
	}
}

func TestPathWithURICharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a dir?x=1#frag%20", "airlock.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	defer s.Close()
	if _, err := s.Audit(context.Background(), store.AuditEntry{Action: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at %q: %v", path, err)
	}
}

// TestConcurrentReadersAndWriters runs the gate queries while this process
// and a second Store on the same file (another process, such as
// `airlock approve` next to `airlock serve`) write. None may see SQLITE_BUSY.
func TestConcurrentReadersAndWriters(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "airlock.db")
	s1, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()

	const writes = 100
	var (
		wg   sync.WaitGroup
		errs = make(chan error, 64)
		done = make(chan struct{})
	)
	writer := func(s *Store, name string) {
		defer wg.Done()
		for i := range writes {
			d := fmt.Sprintf("sha256:%s-%04d", name, i)
			m := store.Manifest{Repository: "library/app", Digest: d, MediaType: "application/vnd.oci.image.manifest.v1+json",
				Size: 1, Actor: name, Blobs: []string{d + "-layer"}}
			if _, err := s.RecordManifest(ctx, m); err != nil {
				errs <- fmt.Errorf("%s record %d: %w", name, i, err)
				return
			}
			if _, err := s.Transition(ctx, d, store.Approved, name, "ok", nil); err != nil {
				errs <- fmt.Errorf("%s approve %d: %w", name, i, err)
				return
			}
		}
	}
	reader := func(s *Store) {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			d := fmt.Sprintf("sha256:w1-%04d", i%writes)
			if _, _, err := s.ManifestServable(ctx, "library/app", d); err != nil {
				errs <- fmt.Errorf("ManifestServable: %w", err)
				return
			}
			if _, err := s.BlobServable(ctx, "library/app", d+"-layer"); err != nil {
				errs <- fmt.Errorf("BlobServable: %w", err)
				return
			}
		}
	}
	var readers sync.WaitGroup
	for i := range 4 {
		readers.Add(1)
		wg.Add(1)
		go func() { defer readers.Done(); reader([]*Store{s1, s2}[i%2]) }()
	}
	var writers sync.WaitGroup
	writers.Add(2)
	wg.Add(2)
	go func() { defer writers.Done(); writer(s1, "w1") }()
	go func() { defer writers.Done(); writer(s2, "w2") }()
	writers.Wait()
	close(done)
	readers.Wait()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, err := s1.VerifyAudit(ctx); err != nil || n != 4*writes {
		t.Errorf("VerifyAudit = %d, %v; want %d with no fork between the two writers", n, err, 4*writes)
	}
	ok, err := s2.BlobServable(ctx, "library/app", "sha256:w1-0099-layer")
	if err != nil || !ok {
		t.Errorf("blob approved through the other Store = %v, %v; want servable", ok, err)
	}
}
