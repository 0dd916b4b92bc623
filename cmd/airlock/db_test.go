package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/shareddata"
)

var osvData = shareddata.Lookup("osv")

// runDB runs `airlock db ARGS` in-process.
func runDB(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return cli(t, append([]string{"db"}, args...)...)
}

func TestDBImportAndStatus(t *testing.T) {
	data := filepath.Join(t.TempDir(), "airlock-data")
	code, out, errs := runDB(t, "import", filepath.Join(osvData, "go"), filepath.Join(osvData, "ubuntu"), "--data", data)
	if code != 0 || !strings.Contains(out, "500 records, 500 added") || !strings.Contains(out, "17 records, 17 added") || !strings.Contains(out, "Snapshot: sha256:") {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runDB(t, "status", "--data", data, "-o", "json")
	if code != 0 {
		t.Fatalf("status: exit %d %s", code, errs)
	}
	var st struct {
		Snapshot   string
		Records    int
		Ecosystems map[string]int
		Sources    []struct{ Path, Kind string }
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if st.Records != 517 || st.Ecosystems["Go"] != 500 || st.Ecosystems["Ubuntu"] != 17 || len(st.Sources) != 2 || !strings.HasPrefix(st.Snapshot, "sha256:") {
		t.Errorf("status = %+v", st)
	}
	// For people, and the data directory from AIRLOCK_DATA.
	t.Setenv("AIRLOCK_DATA", data)
	code, out, _ = runDB(t, "status")
	for _, want := range []string{"Advisories: 517 (2 withdrawn)", "ECOSYSTEM", "Ubuntu     17", st.Snapshot, "directory"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status output lacks %q (exit %d):\n%s", want, code, out)
		}
	}
}

func TestDBExitCodes(t *testing.T) {
	data := t.TempDir()
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "broken.json"), []byte(`{"id": `), 0o644); err != nil {
		t.Fatal(err)
	}
	bomb := filepath.Join(t.TempDir(), "all.zip")
	f, _ := os.Create(bomb)
	zw := zip.NewWriter(f)
	w, _ := zw.Create("bomb.json")
	w.Write(append([]byte(`{"id":"B","modified":"2024-01-01T00:00:00Z","details":"`), bytes.Repeat([]byte("0"), 4<<20)...))
	zw.Close()
	f.Close()

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"import", "--data", data, filepath.Join(data, "missing")}, 2, "no such file"},
		{[]string{"import", "--data", data}, 2, "requires at least 1 arg"},
		{[]string{"import", "--data", data, bomb}, 2, "decompression bomb"},
		{[]string{"import", "--data", data, "--strict", bad}, 2, "broken.json"},
		{[]string{"import", "--data", data, bad}, 0, "skipped " + filepath.Join(bad, "broken.json")},
		{[]string{"status", "--data", filepath.Join(data, "nope")}, 2, "no such file"},
		{[]string{"status", "--data", data, "-o", "yaml"}, 2, "-o must be json"},
	} {
		code, out, errs := runDB(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("airlock db %s: exit %d, want %d with %q\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), code, tc.code, tc.want, out, errs)
		}
	}
	// The refused imports left nothing behind.
	code, out, _ := runDB(t, "status", "--data", data, "-o", "json")
	var st struct{ Records int }
	if json.Unmarshal([]byte(out), &st); code != 0 || st.Records != 0 {
		t.Errorf("after refused imports: exit %d, %d records", code, st.Records)
	}
}
