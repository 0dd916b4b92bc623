package scan

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type entry struct {
	name, link string
	typ        byte
	body       string
	mode       int64
}

func tarOf(t testing.TB, es ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body))}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func newTree(t testing.TB) *Tree {
	t.Helper()
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return &Tree{Dir: dir, Files: map[string]*File{}, root: root}
}

func all(*File) bool { return true }

// recordSink is called from several goroutines at once, as every sink is.
type recordSink struct {
	mu   sync.Mutex
	seen map[string]string
}

func (s *recordSink) Want(*File) bool { return true }
func (s *recordSink) Content(_ context.Context, f *File, r io.Reader) error {
	b, err := io.ReadAll(r)
	s.mu.Lock()
	s.seen[f.Path+"@"+f.Layer] = string(b)
	s.mu.Unlock()
	return err
}

func TestLayersWhiteoutsAndSymlinks(t *testing.T) {
	tr := newTree(t)
	sink := &recordSink{seen: map[string]string{}}
	ctx := context.Background()
	l0 := tarOf(t,
		entry{name: "usr/", typ: tar.TypeDir},
		entry{name: "usr/bin/", typ: tar.TypeDir},
		entry{name: "bin", typ: tar.TypeSymlink, link: "usr/bin"},
		entry{name: "usr/bin/tool", typ: tar.TypeReg, body: "v1", mode: 0o4755},
		entry{name: "etc/secret", typ: tar.TypeReg, body: "AKIA"},
		entry{name: "opt/app/a", typ: tar.TypeReg, body: "a"},
		entry{name: "opt/app/b", typ: tar.TypeReg, body: "b"},
		entry{name: "etc/os-release", typ: tar.TypeSymlink, link: "../usr/lib/os-release"},
		entry{name: "usr/lib/os-release", typ: tar.TypeReg, body: "ID=debian\n"},
		entry{name: "escape", typ: tar.TypeSymlink, link: "../../../../etc/passwd"},
	)
	if err := tr.applyLayer(ctx, Limits{}, 0, "sha256:l0", bytes.NewReader(l0), all, sink); err != nil {
		t.Fatal(err)
	}
	l1 := tarOf(t,
		entry{name: "bin/extra", typ: tar.TypeReg, body: "x"}, // written through the /bin symlink
		entry{name: "etc/.wh.secret", typ: tar.TypeReg},
		entry{name: "opt/app/.wh..wh..opq", typ: tar.TypeReg},
		entry{name: "opt/app/c", typ: tar.TypeReg, body: "c"},
		entry{name: "usr/bin/hard", typ: tar.TypeLink, link: "usr/bin/tool"},
	)
	if err := tr.applyLayer(ctx, Limits{}, 1, "sha256:l1", bytes.NewReader(l1), all, sink); err != nil {
		t.Fatal(err)
	}
	f, ok := tr.Files["/usr/bin/extra"]
	if !ok || f.Layer != "sha256:l1" {
		t.Fatalf("file written through a parent symlink: %+v (files %v)", f, keys(tr.Files))
	}
	if _, ok := tr.Files["/bin/extra"]; ok {
		t.Fatal("/bin/extra recorded under the symlink's name")
	}
	if _, ok := tr.Files["/etc/secret"]; ok {
		t.Fatal("whiteout did not remove /etc/secret")
	}
	if sink.seen["/etc/secret@sha256:l0"] != "AKIA" {
		t.Fatal("a file deleted by a later layer must still be offered to the detectors")
	}
	if _, ok := tr.Files["/opt/app/a"]; ok {
		t.Fatal("opaque directory kept a lower-layer file")
	}
	if f := tr.Files["/opt/app/c"]; f == nil || f.Layer != "sha256:l1" {
		t.Fatal("opaque directory lost the layer's own file")
	}
	if f := tr.Files["/usr/bin/tool"]; f == nil || f.Mode&os.ModeSetuid == 0 {
		t.Fatal("setuid bit not recorded")
	}
	if f := tr.Files["/usr/bin/hard"]; f == nil || f.Link != "/usr/bin/tool" || f.Size != 2 {
		t.Fatalf("hard link: %+v", f)
	}
	// On disk nothing is setuid and symlinks stay inside the tree.
	st, err := os.Stat(filepath.Join(tr.Dir, "usr/bin/tool"))
	if err != nil || st.Mode()&os.ModeSetuid != 0 {
		t.Fatalf("on disk: %v %v", st, err)
	}
	if b, err := tr.ReadFile("/etc/os-release", 1<<20); err != nil || string(b) != "ID=debian\n" {
		t.Fatalf("os-release through a symlink: %q %v", b, err)
	}
	if _, err := tr.ReadFile("/escape", 1<<20); err == nil {
		// chroot semantics: ../../../../etc/passwd is /etc/passwd of the image, which does not exist.
		t.Fatal("an escaping symlink read something")
	}
	if p, _ := tr.Resolve("/escape"); p != "/etc/passwd" {
		t.Fatalf("escape resolves to %s, want /etc/passwd inside the image", p)
	}
}

func keys(m map[string]*File) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestLayersHostile(t *testing.T) {
	cases := map[string][]byte{
		"dotdot":          tarOf(t, entry{name: "../../etc/passwd", typ: tar.TypeReg, body: "x"}),
		"dotdot inside":   tarOf(t, entry{name: "a/../../x", typ: tar.TypeReg, body: "x"}),
		"hardlink escape": tarOf(t, entry{name: "x", typ: tar.TypeLink, link: "../../etc/passwd"}),
		"hardlink absent": tarOf(t, entry{name: "x", typ: tar.TypeLink, link: "nothing"}),
		"truncated":       tarOf(t, entry{name: "big", typ: tar.TypeReg, body: strings.Repeat("x", 4096)})[:1024],
		"not tar":         []byte("this is not a tar archive at all, but it is long enough to look like a header block?" + strings.Repeat("!", 600)),
	}
	for name, data := range cases {
		tr := newTree(t)
		err := tr.applyLayer(context.Background(), Limits{}, 0, "sha256:bad", bytes.NewReader(data), all)
		var le *LayerError
		if !errors.As(err, &le) {
			t.Errorf("%s: want a LayerError, got %v", name, err)
		}
	}
	// Limits: bytes and entries.
	tr := newTree(t)
	big := tarOf(t, entry{name: "a", typ: tar.TypeReg, body: strings.Repeat("x", 5000)})
	if err := tr.applyLayer(context.Background(), Limits{MaxBytes: 4096}, 0, "sha256:big", bytes.NewReader(big), all); err == nil {
		t.Error("over MaxBytes accepted")
	}
	many := tarOf(t, entry{name: "a", typ: tar.TypeReg}, entry{name: "b", typ: tar.TypeReg}, entry{name: "c", typ: tar.TypeReg})
	tr = newTree(t)
	if err := tr.applyLayer(context.Background(), Limits{MaxEntries: 2}, 0, "sha256:many", bytes.NewReader(many), all); err == nil {
		t.Error("over MaxEntries accepted")
	}
	// Nothing was written outside the tree's directory by any of it.
	if _, err := os.Stat("/etc/passwd.airlock-test"); err == nil {
		t.Fatal("wrote outside")
	}
}

func TestRelPath(t *testing.T) {
	for _, c := range [][3]string{
		{"/", "/usr/bin", "usr/bin"},
		{"/etc", "/usr/lib/os-release", "../usr/lib/os-release"},
		{"/a/b", "/a/b/c", "c"},
		{"/a/b", "/", "../.."},
		{"/a", "/a", "."},
	} {
		if got, _ := relPath(c[0], c[1]); got != c[2] {
			t.Errorf("relPath(%s, %s) = %s, want %s", c[0], c[1], got, c[2])
		}
	}
}

// FuzzLayer feeds arbitrary bytes as a layer: the unpacker must refuse or
// apply it without panicking and without writing outside its directory.
func FuzzLayer(f *testing.F) {
	f.Add(tarOf(f, entry{name: "a/b", typ: tar.TypeReg, body: "x"}, entry{name: "l", typ: tar.TypeSymlink, link: "/a"}, entry{name: "l/c", typ: tar.TypeReg, body: "y"}))
	f.Add(tarOf(f, entry{name: "x/.wh..wh..opq", typ: tar.TypeReg}, entry{name: ".wh.x", typ: tar.TypeReg}))
	f.Add(tarOf(f, entry{name: "h", typ: tar.TypeLink, link: "a/b"}, entry{name: "s", typ: tar.TypeSymlink, link: "../../../../"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		outside := t.TempDir()
		dir := filepath.Join(outside, "tree")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		tr := &Tree{Dir: dir, Files: map[string]*File{}, root: root}
		_ = tr.applyLayer(context.Background(), Limits{MaxBytes: 1 << 20, MaxEntries: 1000}, 0, "sha256:f", bytes.NewReader(data), all)
		_ = tr.applyLayer(context.Background(), Limits{MaxBytes: 1 << 20, MaxEntries: 1000}, 1, "sha256:g", bytes.NewReader(data), all)
		ents, _ := os.ReadDir(outside)
		if len(ents) != 1 {
			t.Fatalf("something was written beside the tree: %v", ents)
		}
		for p := range tr.Files {
			if !strings.HasPrefix(p, "/") || strings.Contains(p, "/../") {
				t.Fatalf("unclean path recorded: %q", p)
			}
			if _, err := tr.Resolve(p); err != nil && !strings.Contains(err.Error(), "symbolic links") {
				t.Fatal(err)
			}
		}
	})
}

func FuzzPackageDatabases(f *testing.F) {
	f.Add([]byte("/.\n/usr/bin/x\n/usr/lib/y\n"))
	f.Add([]byte("P:musl\nV:1.2.4-r4\nF:lib\nR:ld-musl-x86_64.so.1\n\nP:b\nR:x\n"))
	f.Add([]byte("Package: libc6\nVersion: 2.36\n\nPackage: b\nVersion: 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range DpkgList(data) {
			if !strings.HasPrefix(p, "/") {
				t.Fatalf("relative owned path %q", p)
			}
		}
		for p := range ApkFiles(data) {
			if !strings.HasPrefix(p, "/") || strings.Contains(p, "/../") {
				t.Fatalf("unclean owned path %q", p)
			}
		}
		_ = StanzasContain(data, dpkgStanza("libc6", "2.36"))
		_ = StanzasContain(data, apkStanza("musl", "1.2.4-r4"))
	})
}

func TestStanzas(t *testing.T) {
	db := []byte("Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\nPackage: zlib1g\nVersion: 1:1.2.13\n")
	if !StanzasContain(db, dpkgStanza("zlib1g", "1:1.2.13")) || StanzasContain(db, dpkgStanza("zlib1g", "2.36-9")) || StanzasContain(db, dpkgStanza("libc", "2.36-9")) {
		t.Fatal("stanza matching")
	}
	apk := []byte("P:musl\nV:1.2.4-r4\nF:lib\nR:ld.so\nF:usr/lib\nR:libc.so\n\nP:zlib\nV:1.3-r0\n")
	if !StanzasContain(apk, apkStanza("zlib", "1.3-r0")) || StanzasContain(apk, apkStanza("musl", "1.3-r0")) {
		t.Fatal("apk stanza matching")
	}
	files := ApkFiles(apk)
	if files["/lib/ld.so"] != "musl" || files["/usr/lib/libc.so"] != "musl" || len(files) != 2 {
		t.Fatalf("apk files %v", files)
	}
}
