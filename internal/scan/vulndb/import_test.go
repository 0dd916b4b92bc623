package vulndb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func TestImportRealData(t *testing.T) {
	d := realDB(t)
	st, err := d.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"Go": 500, "PyPI": 302, "crates.io": 115, "Ubuntu": 17}
	if !reflect.DeepEqual(st.Ecosystems, want) {
		t.Errorf("ecosystems = %v, want %v", st.Ecosystems, want)
	}
	if st.Records != 934 {
		t.Errorf("records = %d, want 934", st.Records)
	}
	// GO-2022-0617, GO-2025-3543, RUSTSEC-2023-0002, RUSTSEC-2025-0007,
	// PYSEC-2023-73, PYSEC-2022-43059.
	if st.Withdrawn != 6 {
		t.Errorf("withdrawn = %d, want 6", st.Withdrawn)
	}
	if st.NewestModified != "2026-08-18T08:23:07Z" {
		t.Errorf("newest modified = %q", st.NewestModified)
	}
	if len(st.Sources) != 1 || st.Sources[0].Kind != "directory" || st.Sources[0].Records != 934 || st.Sources[0].Skipped != 0 {
		t.Errorf("sources = %+v", st.Sources)
	}
	if st.Sources[0].Digest != st.Snapshot {
		t.Errorf("the only source's digest %s differs from the snapshot %s", st.Sources[0].Digest, st.Snapshot)
	}
	if st.Snapshot != d.Snapshot() || !strings.HasPrefix(st.Snapshot, "sha256:") {
		t.Errorf("snapshot = %q, Snapshot() = %q", st.Snapshot, d.Snapshot())
	}
	if st.Snapshot != expectedSnapshot(t) {
		t.Errorf("snapshot = %s, want sha256 of the sorted (id, modified) lines %s", st.Snapshot, expectedSnapshot(t))
	}
}

// expectedSnapshot computes the snapshot digest from the files themselves.
func expectedSnapshot(t *testing.T) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(osvDir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || !recordFile(p) {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		r, _, err := ParseRecord(b)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		lines = append(lines, r.ID+"\t"+r.Modified+"\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// TestSnapshotStableAcrossImportOrder imports the same records per
// ecosystem in two orders, one of them with crates.io as an all.zip, and
// all at once: the snapshot digest is the same, and importing again changes
// nothing.
func TestSnapshotStableAcrossImportOrder(t *testing.T) {
	ctx := context.Background()
	cratesZip := filepath.Join(t.TempDir(), "all.zip")
	if n := zipDir(t, filepath.Join(osvDir, "crates"), cratesZip); n != 115 {
		t.Fatalf("zipped %d crates records, want 115", n)
	}
	dir := func(eco string) string { return filepath.Join(osvDir, eco) }
	orders := [][]string{
		{dir("go"), dir("pypi"), dir("crates"), dir("ubuntu")},
		{dir("ubuntu"), cratesZip, dir("pypi"), dir("go")},
		{osvDir},
	}
	var snaps []string
	for i, order := range orders {
		d := openDB(t)
		for _, p := range order {
			if _, err := d.Import(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		snaps = append(snaps, d.Snapshot())
		if i == 1 {
			rep, err := d.Import(ctx, osvDir)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Added != 0 || rep.Updated != 0 || rep.Records != 934 || rep.Snapshot != snaps[i] {
				t.Errorf("re-import: %+v, want 934 records, nothing added or updated, same snapshot", rep)
			}
			st, err := d.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Sources) != 5 {
				t.Errorf("sources = %d, want 5 (four paths, then the parent folder)", len(st.Sources))
			}
		}
	}
	if snaps[0] != snaps[1] || snaps[1] != snaps[2] {
		t.Errorf("snapshots differ by import order: %v", snaps)
	}
}

// TestImportNewerWins: a record replaces a stored one only if newer, in
// whichever order the two arrive.
func TestImportNewerWins(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old := readRecord(t, "crates/RUSTSEC-2021-0003.json")
	newer := readRecord(t, "crates/RUSTSEC-2021-0003.json")
	newer["modified"] = "2030-01-01T00:00:00Z"
	newer["summary"] = "newer copy"
	pOld := writeJSON(t, filepath.Join(dir), "old.json", old)
	pNew := writeJSON(t, filepath.Join(dir), "new.json", newer)
	for _, order := range [][]string{{pOld, pNew}, {pNew, pOld}} {
		d := openDB(t)
		for _, p := range order {
			if _, err := d.Import(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		vs := match(t, d, pkg("smallvec", "1.6.0", "crates.io"))
		if len(vs) != 1 || vs[0].Summary != "newer copy" {
			t.Errorf("order %v: got %+v, want the newer copy", order, vs)
		}
		st, _ := d.Status(ctx)
		if st.NewestModified != "2030-01-01T00:00:00Z" || st.Records != 1 {
			t.Errorf("status = %+v", st)
		}
	}
}

func TestImportBadRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	good := readRecord(t, "go/GO-2022-0969.json")
	writeJSON(t, dir, "GO-2022-0969.json", good)
	noID := readRecord(t, "go/GO-2022-0969.json")
	delete(noID, "id")
	writeJSON(t, dir, "no-id.json", noID)
	badTime := readRecord(t, "go/GO-2022-0969.json")
	badTime["id"], badTime["modified"] = "GO-TEST-0001", "yesterday"
	writeJSON(t, dir, "bad-time.json", badTime)
	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{"id": "X", "modified": `), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("not a record"), 0o644); err != nil {
		t.Fatal(err)
	}

	d := openDB(t)
	rep, err := d.Import(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 1 || rep.Skipped != 3 {
		t.Fatalf("report = %+v, want 1 record and 3 skipped", rep)
	}
	got := map[string]string{}
	for _, p := range rep.Sources[0].Problems {
		got[filepath.Base(p.File)] = p.Error
	}
	for file, want := range map[string]string{
		"no-id.json":    "no id",
		"bad-time.json": `modified "yesterday" is not an RFC 3339 time`,
		"broken.json":   "invalid JSON",
	} {
		if !strings.Contains(got[file], want) {
			t.Errorf("problem for %s = %q, want it to say %q", file, got[file], want)
		}
	}

	// Strict: the first bad record fails the import and nothing changes.
	d2 := openDB(t)
	before := d2.Snapshot()
	_, err = d2.ImportWith(ctx, ImportOptions{Strict: true}, dir)
	if !errors.Is(err, ErrBadRecord) {
		t.Fatalf("strict import error = %v, want ErrBadRecord", err)
	}
	st, _ := d2.Status(ctx)
	if st.Records != 0 || d2.Snapshot() != before || len(st.Sources) != 0 {
		t.Errorf("a failed strict import left %d records, %d sources", st.Records, len(st.Sources))
	}
}

func TestImportMissingPath(t *testing.T) {
	d := openDB(t)
	if _, err := d.Import(context.Background(), filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error = %v, want ErrNotExist", err)
	}
}

// TestImportYAML: PyPA's YAML with unquoted versions keeps them as written
// (1.10 is not 1.1), and YAML aliases, the stuff of YAML bombs, are refused.
func TestImportYAML(t *testing.T) {
	rec := []byte(`id: PYSEC-TEST-1
modified: 2024-01-02T03:04:05Z
published: 2024-01-01T00:00:00Z
aliases: [CVE-2099-0001]
affected:
- package:
    name: Some_Package
    ecosystem: PyPI
  ranges:
  - type: ECOSYSTEM
    events:
    - introduced: 1.2
    - fixed: 1.10
  versions:
  - 1.2
  - 1.9
`)
	r, js, err := ParseRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if r.Modified != "2024-01-02T03:04:05Z" || string(r.Affected[0].Ranges[0].Events[1].Fixed) != "1.10" || string(r.Affected[0].Versions[0]) != "1.2" {
		t.Errorf("parsed %+v", r)
	}
	if !bytes.Contains(js, []byte(`"fixed":1.10`)) {
		t.Errorf("JSON form %s does not keep 1.10", js)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "PYSEC-TEST-1.yaml"), rec, 0o644); err != nil {
		t.Fatal(err)
	}
	d := openDB(t)
	if _, err := d.Import(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	// PEP 503: some-package, Some_Package and some.package are one name.
	for v, want := range map[string]string{"1.9": "1.10", "1.10": "", "1.1": ""} {
		vs := match(t, d, pkg("some.package", v, "PyPI"))
		if want == "" && len(vs) != 0 || want != "" && (len(vs) != 1 || vs[0].Fixed != want) {
			t.Errorf("some.package %s: %+v, want fixed %q", v, vs, want)
		}
	}

	bomb := []byte("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nid: X\nmodified: 2024-01-01T00:00:00Z\n")
	if _, _, err := ParseRecord(bomb); err == nil || !strings.Contains(err.Error(), "aliases are not allowed") {
		t.Errorf("YAML with aliases: error = %v", err)
	}
}
