package vulndb

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func recordJSON(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(osvDir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestImportZip imports an all.zip of real records, with a bad member
// skipped and named, a member whose name tries to escape (names are only
// labels), and a non-record member ignored.
func TestImportZip(t *testing.T) {
	dir := t.TempDir()
	zp := filepath.Join(dir, "all.zip")
	writeZip(t, zp, []zipMember{
		{"GO-2022-0969.json", recordJSON(t, "go/GO-2022-0969.json")},
		{"../../../../tmp/airlock-escape/RUSTSEC-2021-0003.json", recordJSON(t, "crates/RUSTSEC-2021-0003.json")},
		{"bad.json", []byte(`{"id": "GO-BAD", "modified": "2024-01-01T00:00:00Z", "affected": [`)},
		{"README.txt", []byte("ignored")},
	})
	d := openDB(t)
	rep, err := d.Import(context.Background(), zp)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sources[0].Kind != "zip" || rep.Records != 2 || rep.Skipped != 1 {
		t.Fatalf("report = %+v", rep)
	}
	p := rep.Sources[0].Problems[0]
	if p.File != "all.zip:bad.json" || !strings.Contains(p.Error, "invalid JSON") {
		t.Errorf("problem = %+v, want all.zip:bad.json: invalid JSON", p)
	}
	if _, err := os.Stat("/tmp/airlock-escape"); !os.IsNotExist(err) {
		t.Errorf("a member name created a path: %v", err)
	}
	if vs := match(t, d, pkg("smallvec", "1.6.0", "crates.io")); len(vs) != 1 {
		t.Errorf("record from the oddly named member not matched: %+v", vs)
	}
}

// lyingZip writes a zip with one member whose headers declare 100 bytes
// while its data decompresses to all of actual.
func lyingZip(t testing.TB, path string, actual []byte) {
	t.Helper()
	writeZip(t, path, []zipMember{{"liar.json", actual}})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	patch := func(sig []byte, sizeOff int) {
		i := bytes.Index(b, sig)
		if i < 0 {
			t.Fatalf("no %x header", sig)
		}
		binary.LittleEndian.PutUint32(b[i+sizeOff:], 100)
	}
	patch([]byte("PK\x01\x02"), 24) // central directory: uncompressed size
	if i := bytes.Index(b, []byte("PK\x07\x08")); i >= 0 {
		binary.LittleEndian.PutUint32(b[i+12:], 100) // data descriptor
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestImportHostileZip: every hostile archive fails the import with a clear
// error wrapping ErrHostileArchive, and nothing it held is kept.
func TestImportHostileZip(t *testing.T) {
	small := Limits{RecordBytes: 1 << 20, ArchiveBytes: 3 << 20, ArchiveMembers: 10, Ratio: 200}
	good := recordJSON(t, "go/GO-2022-0969.json")
	padded := func(n int) []byte {
		// A valid record padded with incompressible-enough text.
		var m map[string]any
		json.Unmarshal(good, &m)
		var sb strings.Builder
		for i := 0; sb.Len() < n; i++ {
			sb.WriteString(strings.Repeat(string(rune('a'+i%26)), 1+i%7))
			sb.WriteByte(byte('0' + i%10))
		}
		m["details"] = sb.String()
		b, _ := json.Marshal(m)
		return b
	}
	zeros := func(n int) []byte {
		b := []byte(`{"id":"BOMB-1","modified":"2024-01-01T00:00:00Z","details":"`)
		b = append(b, bytes.Repeat([]byte("0"), n)...)
		return append(b, `"}`...)
	}
	for _, tc := range []struct {
		name   string
		make   func(path string)
		limits Limits
		want   string
	}{
		{"huge member", func(p string) {
			writeZip(t, p, []zipMember{{"GO-2022-0969.json", good}, {"huge.json", zeros(40 << 20)}})
		}, DefaultLimits, "declares"},
		// archive/zip itself stops reading at the declared size.
		{"member lying about its size", func(p string) { lyingZip(t, p, zeros(40<<20)) }, DefaultLimits, "liar.json: its data does not match its header"},
		{"decompression bomb ratio", func(p string) {
			writeZip(t, p, []zipMember{{"GO-2022-0969.json", good}, {"bomb.json", zeros(2 << 20)}})
		}, DefaultLimits, "decompression bomb"},
		{"too many members", func(p string) {
			var ms []zipMember
			for i := 0; i < 11; i++ {
				ms = append(ms, zipMember{string(rune('a'+i)) + ".json", good})
			}
			writeZip(t, p, ms)
		}, small, "11 members"},
		{"too much in total", func(p string) {
			var ms []zipMember
			for i := 0; i < 5; i++ {
				ms = append(ms, zipMember{string(rune('a'+i)) + ".json", padded(900 << 10)})
			}
			writeZip(t, p, ms)
		}, small, "decompresses to more than the limit of 3145728 bytes"},
		{"truncated archive", func(p string) {
			writeZip(t, p, []zipMember{{"GO-2022-0969.json", good}})
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-30], 0o644)
		}, DefaultLimits, "not a readable zip archive"},
		{"corrupt member", func(p string) {
			writeZip(t, p, []zipMember{{"GO-2022-0969.json", good}})
			b, _ := os.ReadFile(p)
			b[30+len("GO-2022-0969.json")+10] ^= 0xff // inside the compressed data
			os.WriteFile(p, b, 0o644)
		}, DefaultLimits, "GO-2022-0969.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			d := openDB(t)
			if _, err := d.Import(ctx, filepath.Join(osvDir, "crates")); err != nil {
				t.Fatal(err)
			}
			before, _ := d.Status(ctx)
			p := filepath.Join(t.TempDir(), "all.zip")
			tc.make(p)
			_, err := d.ImportWith(ctx, ImportOptions{Limits: tc.limits}, filepath.Join(osvDir, "ubuntu"), p)
			if !errors.Is(err, ErrHostileArchive) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "all.zip") {
				t.Fatalf("error = %v, want ErrHostileArchive naming the archive and saying %q", err, tc.want)
			}
			t.Log(err)
			after, _ := d.Status(ctx)
			if after.Snapshot != before.Snapshot || after.Records != before.Records || len(after.Sources) != len(before.Sources) {
				t.Errorf("a refused import changed the database: %d → %d records", before.Records, after.Records)
			}
		})
	}
}
