package pin

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadFile: small files in one read, files larger than the scratch
// buffer whole, binary files recognised, files above the limit refused.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	scratch := make([]byte, readScratch)
	big := bytes.Repeat([]byte("image: nginx:1.27 # padding padding padding\n"), 3*readScratch/40)
	for _, tc := range []struct {
		name    string
		content []byte
		limit   int
		binary  bool
		large   bool
	}{
		{"empty", nil, 1 << 20, false, false},
		{"small", []byte("FROM alpine:3.20\n"), 1 << 20, false, false},
		{"exactly the scratch size", bytes.Repeat([]byte("a"), readScratch), 1 << 20, false, false},
		{"larger than the scratch", big, 1 << 20, false, false},
		{"binary", append([]byte("ELF"), 0, 1, 2), 1 << 20, true, false},
		{"above the limit", big, len(big) - 1, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(p, tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			got, binary, err := readFile(p, scratch, tc.limit)
			var tl *tooLargeError
			if tc.large {
				if !errors.As(err, &tl) {
					t.Fatalf("want a too-large error, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if binary != tc.binary {
				t.Fatalf("binary = %v", binary)
			}
			if !tc.binary && !bytes.Equal(got, tc.content) {
				t.Fatalf("read %d bytes, want %d", len(got), len(tc.content))
			}
		})
	}
	if _, _, err := readFile(filepath.Join(dir, "missing"), scratch, 1<<20); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestRewriteFile: the file keeps its inode and mode and gets exactly the
// new content, longer or shorter; a file whose size changed since it was
// read is not touched.
func TestRewriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "deploy.yaml")
	old := []byte("image: nginx:1.27\n# a comment that makes the file long enough\n")
	if err := os.WriteFile(p, old, 0o640); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(p)
	longer := []byte("image: registry.example.com/library/nginx:1.27@sha256:" + strings.Repeat("0", 64) + "\n# a comment\n")
	if err := rewriteFile(p, old, longer); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, longer) {
		t.Fatalf("content %q", b)
	}
	after, _ := os.Stat(p)
	if !os.SameFile(before, after) || after.Mode() != before.Mode() {
		t.Errorf("the file was replaced or its mode changed: %v → %v", before.Mode(), after.Mode())
	}
	shorter := []byte("image: x\n")
	if err := rewriteFile(p, longer, shorter); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, shorter) {
		t.Fatalf("content after a shorter rewrite %q", b)
	}
	// changed on disk since it was read: left alone
	if err := rewriteFile(p, old, longer); err == nil || !strings.Contains(err.Error(), "changed while pin was reading it") {
		t.Fatalf("want a changed-file error, got %v", err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, shorter) {
		t.Fatalf("a changed file was written: %q", b)
	}
}
