package vulndb

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseRecord: any bytes give a record or an ErrBadRecord, never a
// panic; an accepted record's JSON form parses to the same id and time.
func FuzzParseRecord(f *testing.F) {
	for _, rel := range []string{"go/GO-2022-0969.json", "crates/RUSTSEC-2018-0003.json", "ubuntu/USN-5760-1.json", "pypi/django/PYSEC-2007-1.yaml", "pypi/py/PYSEC-2022-42969.yaml"} {
		b, err := os.ReadFile(filepath.Join(osvDir, rel))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("id: X\nmodified: 2024-01-01T00:00:00Z\naffected:\n- package: {name: a, ecosystem: npm}\n  versions: [1.0, 1.10]\n"))
	f.Add([]byte(`{"id":"X","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"name":"a","ecosystem":"npm"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"limit":"2"}]}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, js, err := ParseRecord(b)
		if err != nil {
			return
		}
		r2, js2, err := ParseRecord(js)
		if err != nil {
			t.Fatalf("the JSON form of an accepted record is refused: %v\n%s", err, js)
		}
		if r2.ID != r.ID || r2.Modified != r.Modified || !bytes.Equal(js, js2) {
			t.Fatalf("round trip changed the record: %q %q / %q %q", r.ID, r.Modified, r2.ID, r2.Modified)
		}
	})
}
