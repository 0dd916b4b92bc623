//go:build linux

package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// entry is one raw tar entry, in the order given (the hostile cases need
// exact names and order, which sandboxtest.Layer does not promise).
type entry struct {
	name, link string
	typ        byte
	data       string
	mode       int64
	size       int64 // when non-zero, the header claims this size
}

func rawTar(t testing.TB, ents ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Format: tar.FormatPAX}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// snapshot lists every path under dir with its kind, for "nothing changed" checks.
func snapshot(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel+" "+d.Type().String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestUnpackLayers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to keep owners and setuid bits")
	}
	base := sandboxtest.Layer(t, map[string]sandboxtest.File{
		"bin":              {Dir: true},
		"bin/tool":         {Data: []byte("tool v1"), Mode: 0o4755, UID: 0},
		"bin/tool-link":    {Hardlink: "bin/tool"},
		"bin/sym":          {Symlink: "/bin/tool"},
		"etc":              {Dir: true},
		"etc/passwd":       {Data: []byte("root:x:0:0::/root:/bin/sh\n"), Mode: 0o644},
		"etc/gone":         {Data: []byte("removed by the next layer")},
		"ro":               {Dir: true, Mode: 0o555},
		"ro/file":          {Data: []byte("inside a read-only dir"), Mode: 0o444},
		"var/cache":        {Dir: true},
		"var/cache/a":      {Data: []byte("a")},
		"var/cache/b/deep": {Data: []byte("b")},
		"home/user/f":      {Data: []byte("f"), UID: 1000, GID: 1000},
	})
	top := sandboxtest.LayerOf(t, rawTar(t,
		entry{name: "etc/.wh.gone"},
		entry{name: "var/cache/.wh..wh..opq"},
		entry{name: "var/cache/new", data: "new"},
		entry{name: "bin/tool", data: "tool v2", mode: 0o755},
		entry{name: "dev/sda", typ: tar.TypeBlock},
		entry{name: "dev/null", typ: tar.TypeChar},
	))
	img := sandboxtest.Image(t, v1.Config{}, base, top)
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := Unpack(context.Background(), img, dir, UnpackLimits{Root: true}); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			return "ERR " + err.Error()
		}
		return string(b)
	}
	if got := read("bin/tool"); got != "tool v2" {
		t.Errorf("bin/tool = %q, want the upper layer's content", got)
	}
	if got := read("bin/tool-link"); got != "tool v1" {
		t.Errorf("hard link bin/tool-link = %q, want the lower layer's inode (the upper layer replaced bin/tool, not wrote through)", got)
	}
	if l, err := os.Readlink(filepath.Join(dir, "bin/sym")); err != nil || l != "/bin/tool" {
		t.Errorf("symlink = %q, %v", l, err)
	}
	for _, p := range []string{"etc/gone", "var/cache/a", "var/cache/b", "dev/sda", "dev/null"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists after unpack (whiteout, opaque dir or device node): %v", p, err)
		}
	}
	if got := read("var/cache/new"); got != "new" {
		t.Errorf("opaque dir lost the layer's own entry: %q", got)
	}
	st, _ := os.Stat(filepath.Join(dir, "ro"))
	if st.Mode().Perm() != 0o555 {
		t.Errorf("ro mode = %v, want 0555", st.Mode())
	}
	st, _ = os.Stat(filepath.Join(dir, "bin/tool-link"))
	if st.Mode()&os.ModeSetuid == 0 {
		t.Errorf("root mode dropped setuid on bin/link: %v", st.Mode())
	}
	fi, _ := os.Stat(filepath.Join(dir, "home/user/f"))
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 1000 {
		t.Errorf("owner uid = %d, want 1000", uid)
	}

	// Without Root, setuid goes.
	dir2 := filepath.Join(t.TempDir(), "rootfs")
	if err := Unpack(context.Background(), img, dir2, UnpackLimits{}); err != nil {
		t.Fatal(err)
	}
	st, _ = os.Stat(filepath.Join(dir2, "bin/tool-link"))
	if st.Mode()&os.ModeSetuid != 0 {
		t.Errorf("setuid kept outside root mode: %v", st.Mode())
	}
}

// hostileCases are layers that try to write outside the root or exhaust it.
func hostileCases(t testing.TB) map[string][]byte {
	return map[string][]byte{
		"dotdot":           rawTar(t, entry{name: "../outside", data: "x"}),
		"dotdot-deep":      rawTar(t, entry{name: "a/../../outside", data: "x"}),
		"absolute":         rawTar(t, entry{name: "/outside-abs", data: "x"}),
		"symlink-parent":   rawTar(t, entry{name: "evil", typ: tar.TypeSymlink, link: "../../../../../"}, entry{name: "evil/outside", data: "x"}),
		"symlink-abs":      rawTar(t, entry{name: "evil", typ: tar.TypeSymlink, link: "/"}, entry{name: "evil/outside", data: "x"}),
		"symlink-file":     rawTar(t, entry{name: "evil", typ: tar.TypeSymlink, link: "../outside"}, entry{name: "evil", data: "overwrite through the link"}),
		"symlink-dir-then": rawTar(t, entry{name: "d", typ: tar.TypeSymlink, link: ".."}, entry{name: "d/d/d/outside", data: "x"}),
		"hardlink-out":     rawTar(t, entry{name: "h", typ: tar.TypeLink, link: "../sentinel"}),
		"hardlink-abs":     rawTar(t, entry{name: "h", typ: tar.TypeLink, link: "/etc/hostname"}),
		"hardlink-sym":     rawTar(t, entry{name: "s", typ: tar.TypeSymlink, link: "/"}, entry{name: "h", typ: tar.TypeLink, link: "s/sentinel"}),
		"whiteout-out":     rawTar(t, entry{name: ".wh...", data: ""}, entry{name: "x/.wh..wh..opq"}),
		"whiteout-sym":     rawTar(t, entry{name: "s", typ: tar.TypeSymlink, link: "../"}, entry{name: "s/.wh.sentinel"}, entry{name: "s/.wh..wh..opq"}),
		"device":           rawTar(t, entry{name: "sda", typ: tar.TypeBlock}),
		"not-tar":          []byte("this is not a tar stream at all, just bytes........"),
	}
}

func TestUnpackHostile(t *testing.T) {
	for name, data := range hostileCases(t) {
		t.Run(name, func(t *testing.T) { checkContained(t, data, UnpackLimits{}) })
	}
}

func TestUnpackBombs(t *testing.T) {
	many := make([]entry, 0, 50)
	for i := 0; i < 50; i++ {
		many = append(many, entry{name: strings.Repeat("d/", i%5) + "f" + string(rune('a'+i%26)) + string(rune('a'+i/26)), data: "x"})
	}
	big := rawTar(t, entry{name: "big", data: strings.Repeat("A", 4096)})
	for name, c := range map[string]struct {
		data []byte
		lim  UnpackLimits
	}{
		"entries": {rawTar(t, many...), UnpackLimits{MaxEntries: 10}},
		"bytes":   {big, UnpackLimits{MaxBytes: 1024}},
	} {
		t.Run(name, func(t *testing.T) {
			err := checkContained(t, c.data, c.lim)
			if !errors.Is(err, ErrUnpackLimit) {
				t.Fatalf("err = %v, want ErrUnpackLimit", err)
			}
		})
	}
	// A gzip bomb: 64 MiB of zeros in one entry compresses to ~64 KiB.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Size: 64 << 20, Mode: 0o644})
	tw.Write(make([]byte, 64<<20))
	tw.Close()
	img := sandboxtest.Image(t, v1.Config{}, sandboxtest.LayerOf(t, buf.Bytes()))
	dir := filepath.Join(t.TempDir(), "rootfs")
	err := Unpack(context.Background(), img, dir, UnpackLimits{MaxBytes: 1 << 20})
	if !errors.Is(err, ErrUnpackLimit) {
		t.Fatalf("bomb: err = %v, want ErrUnpackLimit", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("bomb: unpack left %d entries behind", len(ents))
	}
}

// checkContained unpacks data as the only layer into parent/rootfs next to
// parent/sentinel and fails if anything outside rootfs changed, or if a
// failed unpack left anything inside.
func checkContained(t testing.TB, data []byte, lim UnpackLimits) error {
	t.Helper()
	parent := t.TempDir()
	if err := os.WriteFile(filepath.Join(parent, "sentinel"), []byte("host file"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "rootfs")
	before := snapshot(t, parent)
	img := sandboxtest.Image(t, v1.Config{}, sandboxtest.LayerOf(t, data))
	err := Unpack(context.Background(), img, dir, lim)
	after := snapshot(t, parent)
	var outside []string
	for _, p := range after {
		if !strings.HasPrefix(p, "rootfs") && !contains(before, p) {
			outside = append(outside, p)
		}
	}
	for _, p := range before {
		if !contains(after, p) {
			outside = append(outside, "removed "+p)
		}
	}
	if len(outside) > 0 {
		t.Fatalf("unpack changed the host outside the root: %v (err %v)", outside, err)
	}
	if b, _ := os.ReadFile(filepath.Join(parent, "sentinel")); string(b) != "host file" {
		t.Fatalf("sentinel rewritten: %q", b)
	}
	if err != nil {
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("failed unpack (%v) left %d entries in the root", err, len(ents))
		}
	}
	return err
}

func contains(list []string, s string) bool {
	i := sort.SearchStrings(list, s)
	return i < len(list) && list[i] == s
}

func FuzzUnpackLayer(f *testing.F) {
	for _, data := range hostileCases(f) {
		f.Add(data)
	}
	f.Add(rawTar(f, entry{name: "a/b/c", data: "x"}, entry{name: "a/.wh..wh..opq"}, entry{name: "a/l", typ: tar.TypeLink, link: "a/b/c"}))
	base := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		parent, err := os.MkdirTemp(base, "case")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(parent)
		if err := os.WriteFile(filepath.Join(parent, "sentinel"), []byte("host file"), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(parent, "rootfs")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = unpackTar(context.Background(), bytes.NewReader(data), dir, UnpackLimits{MaxBytes: 1 << 20, MaxEntries: 1000})
		after := snapshot(t, parent)
		for _, p := range after {
			if p != ". d---------" && !strings.HasPrefix(p, "rootfs") && p != "sentinel ----------" {
				t.Fatalf("unpack wrote outside the root: %s", p)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(parent, "sentinel")); string(b) != "host file" {
			t.Fatalf("sentinel rewritten: %q", b)
		}
	})
}
