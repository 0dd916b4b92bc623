package vulndb

import (
	"archive/zip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/airlock-dev/airlock/internal/scan"
	"github.com/airlock-dev/airlock/internal/shareddata"
)

// osvDir holds real, unmodified OSV records (see its NOTICE.md files).
var osvDir = shareddata.Lookup("osv")

func openDB(t testing.TB) *DB {
	t.Helper()
	d, err := Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// realDB is a database holding every record of osvDir.
func realDB(t testing.TB) *DB {
	t.Helper()
	d := openDB(t)
	rep, err := d.Import(context.Background(), osvDir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Skipped != 0 {
		t.Fatalf("real data: %d records skipped: %+v", rep.Skipped, rep.Sources[0].Problems)
	}
	return d
}

func match(t testing.TB, d *DB, pkgs ...scan.Package) []scan.Vulnerability {
	t.Helper()
	vs, err := d.Match(context.Background(), pkgs)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func ids(vs []scan.Vulnerability) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.ID)
	}
	sort.Strings(out)
	return out
}

func find(vs []scan.Vulnerability, id string) *scan.Vulnerability {
	for i := range vs {
		if vs[i].ID == id {
			return &vs[i]
		}
	}
	return nil
}

// readRecord loads a real record as a generic map, for tests that derive a
// variant of it (a distro state, no withdrawn field, a limit event).
func readRecord(t testing.TB, rel string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(osvDir, rel))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func writeJSON(t testing.TB, dir, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type zipMember struct {
	name string
	data []byte
}

func writeZip(t testing.TB, path string, members []zipMember) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, m := range members {
		w, err := zw.Create(m.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// zipDir writes every .json file of dir into one zip, like osv.dev's all.zip.
func zipDir(t testing.TB, dir, out string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ms []zipMember
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, zipMember{filepath.Base(f), b})
	}
	writeZip(t, out, ms)
	return len(ms)
}
