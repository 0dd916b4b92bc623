package source

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// rawHeader builds one 512-byte tar header by hand, for what archive/tar
// refuses to write (GNU sparse, NUL in names, PAX sparse records).
func rawHeader(name string, typ byte, size int64, gnu bool, extra func(b []byte)) []byte {
	b := make([]byte, 512)
	copy(b, name)
	octal(b[100:108], 0o644)
	octal(b[108:116], 0)
	octal(b[116:124], 0)
	octal(b[124:136], size)
	octal(b[136:148], 0)
	b[156] = typ
	if gnu {
		copy(b[257:], "ustar  \x00")
	} else {
		copy(b[257:], "ustar\x0000")
	}
	if extra != nil {
		extra(b)
	}
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func octal(b []byte, v int64) { copy(b, fmt.Sprintf("%0*o", len(b)-1, v)) }

func pad512(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }

// paxRecord encodes "LEN key=value\n", LEN counting itself.
func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3
	for {
		s := fmt.Sprintf("%d %s=%s\n", n, k, v)
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}

// paxMember is a PAX extended header with records, then a member.
func paxMember(records string, name string, typ byte, body []byte) []byte {
	var b []byte
	b = append(b, rawHeader("PaxHeaders.0/"+name, 'x', int64(len(records)), false, nil)...)
	b = append(b, pad512([]byte(records))...)
	b = append(b, rawHeader(name, typ, int64(len(body)), false, nil)...)
	return append(b, pad512(body)...)
}

var endOfArchive = make([]byte, 1024)

// hostile is one archive Airlock must refuse, whatever reads it.
type hostile struct {
	name   string
	tar    []byte
	member string // the member the error must name ("" when none can be)
	reason string
	max    int64
	// partial: the refusal comes while the member is written (its data
	// runs out), so a partial file may be left inside the target.
	partial bool
}

func hostileArchives() []hostile {
	file := func(name string) tarMember { return tarMember{Name: name, Type: tar.TypeReg, Body: []byte("owned\n")} }
	ok := file("index.json")
	big := bytes.Repeat([]byte("x"), 10<<10)
	whole := tarBytes(tarMember{Name: "blob", Type: tar.TypeReg, Body: big})
	two := tarBytes(tarMember{Name: "first", Type: tar.TypeReg, Body: big}, tarMember{Name: "second", Type: tar.TypeReg, Body: big})

	// GNU (old) sparse: 5 bytes of data claiming a 2 GiB file.
	gnuSparse := rawHeader("sparse", tar.TypeGNUSparse, 5, true, func(b []byte) {
		octal(b[386:398], 0)     // first sparse entry: offset
		octal(b[398:410], 5)     // and length
		octal(b[483:495], 1<<31) // real size
	})
	gnuSparse = append(append(gnuSparse, pad512([]byte("hello"))...), endOfArchive...)

	// PAX (GNU 1.0) sparse of a modest size: harmless-looking, still sparse.
	paxSparseBody := append(pad512([]byte("1\n0\n5\n")), "hello"...)
	paxSparse := append(paxMember(paxRecord("GNU.sparse.major", "1")+paxRecord("GNU.sparse.minor", "0")+
		paxRecord("GNU.sparse.name", "blobs/sparse")+paxRecord("GNU.sparse.realsize", "100"),
		"GNUSparseFile.0/sparse", tar.TypeReg, paxSparseBody), endOfArchive...)

	gnuLong := "x/" + strings.Repeat("../", 40) + "evil"
	var gnuLongTar bytes.Buffer
	tw := tar.NewWriter(&gnuLongTar)
	if err := tw.WriteHeader(&tar.Header{Name: gnuLong, Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatGNU}); err != nil {
		panic(err)
	}
	tw.Close()

	return []hostile{
		{name: "dotdot", tar: tarBytes(ok, file("../evil")), member: "../evil", reason: "path escapes the archive"},
		{name: "dotdot deep", tar: tarBytes(file("a/../../b")), member: "a/../../b", reason: "path escapes the archive"},
		{name: "dotdot only", tar: tarBytes(tarMember{Name: "../", Type: tar.TypeDir}), member: "../", reason: "path escapes the archive"},
		{name: "absolute", tar: tarBytes(file("/etc/passwd")), member: "/etc/passwd", reason: "absolute or backslash path"},
		{name: "backslash", tar: tarBytes(file(`..\..\evil`)), member: `..\..\evil`, reason: "absolute or backslash path"},
		{name: "backslash inside", tar: tarBytes(file(`blobs\sha256\x`)), member: `blobs\sha256\x`, reason: "absolute or backslash path"},
		{name: "pax path escapes", tar: append(paxMember(paxRecord("path", "../../evil"), "innocent", tar.TypeReg, []byte("x")), endOfArchive...),
			member: "../../evil", reason: "path escapes the archive"},
		{name: "gnu long name escapes", tar: gnuLongTar.Bytes(), member: gnuLong, reason: "path escapes the archive"},
		// archive/tar itself refuses a PAX path with NUL: no member to name.
		{name: "NUL", tar: append(paxMember(paxRecord("path", "ok\x00../../evil"), "ok", tar.TypeReg, nil), endOfArchive...),
			reason: "not a tar archive or truncated"},
		{name: "absolute symlink", tar: tarBytes(ok, tarMember{Name: "blobs", Type: tar.TypeSymlink, Link: "/etc"}), member: "blobs", reason: "absolute symlink"},
		{name: "symlink escapes", tar: tarBytes(tarMember{Name: "x", Type: tar.TypeSymlink, Link: "../../etc"}), member: "x", reason: "symlink escapes the archive"},
		{name: "nested symlink escapes", tar: tarBytes(tarMember{Name: "a/b/x", Type: tar.TypeSymlink, Link: "../../../etc"}), member: "a/b/x", reason: "symlink escapes the archive"},
		{name: "symlink to parent", tar: tarBytes(tarMember{Name: "up", Type: tar.TypeSymlink, Link: ".."}), member: "up", reason: "symlink escapes the archive"},
		{name: "hard link", tar: tarBytes(ok, tarMember{Name: "h", Type: tar.TypeLink, Link: "index.json"}), member: "h", reason: `member type "1" is not accepted`},
		{name: "hard link outside", tar: tarBytes(tarMember{Name: "h", Type: tar.TypeLink, Link: "/etc/shadow"}), member: "h", reason: `member type "1" is not accepted`},
		{name: "char device", tar: tarBytes(tarMember{Name: "null", Type: tar.TypeChar}), member: "null", reason: `member type "3" is not accepted`},
		{name: "block device", tar: tarBytes(tarMember{Name: "sda", Type: tar.TypeBlock}), member: "sda", reason: `member type "4" is not accepted`},
		{name: "fifo", tar: tarBytes(tarMember{Name: "pipe", Type: tar.TypeFifo}), member: "pipe", reason: `member type "6" is not accepted`},
		{name: "GNU sparse", tar: gnuSparse, member: "sparse", reason: "sparse files are not accepted"},
		{name: "PAX sparse", tar: paxSparse, member: "blobs/sparse", reason: "sparse files are not accepted"},
		{name: "sparse claim", tar: tarBytes(tarMember{Name: "blob", Type: tar.TypeReg, Body: []byte("tiny"), Size: 2 << 30}),
			member: "blob", reason: "claims 2147483648 bytes, more than the archive holds"},
		// Cut in the first member: its header claims more than the file holds.
		{name: "truncated first member", tar: whole[:512+5<<10], member: "blob", reason: "claims 10240 bytes, more than the archive holds"},
		// Cut in a later member: the file is large enough, the data runs out.
		{name: "truncated mid-member", tar: two[:512+10<<10+512+5<<10], member: "second", reason: "truncated: unexpected EOF", partial: true},
		{name: "truncated mid-header", tar: whole[:300], reason: "not a tar archive or truncated"},
		{name: "empty file", tar: nil, reason: "empty archive"},
		{name: "only end blocks", tar: endOfArchive, reason: "empty archive"},
		{name: "not a tar", tar: bytes.Repeat([]byte("not a tar archive\n"), 100), reason: "not a tar archive"},
		{name: "over the limit", tar: whole, max: 4 << 10, reason: fmt.Sprintf("%d bytes is over the limit of 4096", len(whole))},
	}
}

// jail is a directory tree around an archive, to prove that nothing is
// written outside the extraction directory: base/a/b/c holds the archive,
// a sentinel, the target dir and the temp dir; escapes of up to three
// levels from the target land inside base, where tree() sees them.
type jail struct {
	base, work, out, tmp, archive string
	before                        []string
}

func newJail(t *testing.T, archive []byte) *jail {
	t.Helper()
	base := t.TempDir()
	j := &jail{base: base, work: filepath.Join(base, "a", "b", "c")}
	j.out, j.tmp, j.archive = filepath.Join(j.work, "out"), filepath.Join(j.work, "tmp"), filepath.Join(j.work, "in.tar")
	for _, d := range []string{j.out, j.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{filepath.Join(j.work, "sentinel"), []byte("sentinel")}, {filepath.Join(base, "a", "sentinel"), []byte("sentinel")}, {j.archive, archive}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	j.before = tree(t, base)
	return j
}

// check fails if anything changed outside out, if tmp is not empty, or if
// out holds anything but regular files and directories.
func (j *jail) check(t *testing.T) {
	t.Helper()
	outRel, _ := filepath.Rel(j.base, j.out)
	var outside []string
	for _, p := range tree(t, j.base) {
		if inside := outRel + "/"; p == inside || !strings.HasPrefix(p, inside) {
			outside = append(outside, p)
		}
	}
	if !slices.Equal(outside, j.before) {
		t.Errorf("the tree outside the target changed:\nbefore %v\nafter  %v", j.before, outside)
	}
	for _, s := range []string{filepath.Join(j.work, "sentinel"), filepath.Join(j.base, "a", "sentinel")} {
		if b, err := os.ReadFile(s); err != nil || string(b) != "sentinel" {
			t.Errorf("sentinel %s: %q %v", s, b, err)
		}
	}
	if got := tree(t, j.tmp); len(got) != 0 {
		t.Errorf("temp dir not cleaned: %v", got)
	}
	onlyFilesAndDirs(t, j.out)
}

func onlyFilesAndDirs(t testing.TB, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() && !d.IsDir() {
			t.Errorf("extraction created %s of type %s", p, d.Type())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// wantArchiveError checks err is an *ArchiveError naming member and reason.
func wantArchiveError(t *testing.T, what string, err error, member, reason string) {
	t.Helper()
	var ae *ArchiveError
	if !errors.As(err, &ae) {
		t.Errorf("%s: error %v (%T), want an *ArchiveError", what, err, err)
		return
	}
	msg := err.Error()
	if ae.Member != member || (member != "" && !strings.Contains(msg, strconv.Quote(member))) {
		t.Errorf("%s: error %q names member %q, want %q", what, msg, ae.Member, member)
	}
	if !strings.Contains(ae.Reason, reason) || !strings.Contains(msg, reason) {
		t.Errorf("%s: error %q does not say %q", what, msg, reason)
	}
	if !strings.HasPrefix(msg, "archive in.tar: ") {
		t.Errorf("%s: error %q does not name the archive", what, msg)
	}
}

func TestHostileArchives(t *testing.T) {
	for _, h := range hostileArchives() {
		t.Run(h.name, func(t *testing.T) {
			j := newJail(t, h.tar)
			wantArchiveError(t, "CheckArchive", CheckArchive(j.archive, h.max), h.member, h.reason)
			wantArchiveError(t, "ExtractArchive", ExtractArchive(j.archive, j.out, h.max), h.member, h.reason)
			for _, transport := range []string{DockerArchive, OCIArchive} {
				src, err := Parse(transport+":"+j.archive, false)
				if err != nil {
					t.Fatal(err)
				}
				a, err := src.Open(t.Context(), Options{MaxArchive: h.max, TempDir: j.tmp})
				if err == nil {
					a.Close()
				}
				wantArchiveError(t, "Open "+transport, err, h.member, h.reason)
			}
			j.check(t)
			// Each refusal happens before the refused member is written.
			if got := tree(t, j.out); len(got) > 1 && !h.partial {
				t.Errorf("extraction wrote %v before refusing", got)
			}
		})
	}
}

func TestMemberNames(t *testing.T) {
	// archive/tar never returns these names, but member is the last line.
	for _, n := range []string{"", "ok\x00../../evil"} {
		_, err := member("in.tar", &tar.Header{Name: n, Typeflag: tar.TypeReg})
		wantArchiveError(t, fmt.Sprintf("member(%q)", n), err, n, "empty or NUL in name")
	}
	_, err := member("in.tar", &tar.Header{Name: "f", Typeflag: tar.TypeReg, Size: -1})
	wantArchiveError(t, "negative size", err, "f", "negative size")
	for n, want := range map[string]string{"./index.json": "index.json", "a//b/../c": "a/c", "./": ".", "blobs/sha256/": "blobs/sha256"} {
		got, err := member("in.tar", &tar.Header{Name: n, Typeflag: tar.TypeReg})
		if err != nil || got != want {
			t.Errorf("member(%q) = %q, %v; want %q", n, got, err, want)
		}
	}
}

// TestExtractOnlyRefuses covers archives that are well-formed, so
// CheckArchive accepts them, but that an OCI archive must not hold.
func TestExtractOnlyRefuses(t *testing.T) {
	ok := tarMember{Name: "index.json", Type: tar.TypeReg, Body: []byte("{}")}
	for _, h := range []hostile{
		{name: "relative symlink", tar: tarBytes(ok, tarMember{Name: "blobs/link", Type: tar.TypeSymlink, Link: "../index.json"}),
			member: "blobs/link", reason: "links are not accepted in an OCI archive"},
		{name: "duplicate member", tar: tarBytes(ok, tarMember{Name: "./index.json", Type: tar.TypeReg, Body: []byte(`{"evil":1}`)}),
			member: "./index.json", reason: "exists"},
		{name: "file then directory", tar: tarBytes(ok, tarMember{Name: "index.json/x", Type: tar.TypeReg, Body: []byte("x")}),
			member: "index.json/x", reason: "not a directory"},
		{name: "file then directory member", tar: tarBytes(ok, tarMember{Name: "index.json/x/", Type: tar.TypeDir}),
			member: "index.json/x/", reason: "not a directory"},
	} {
		t.Run(h.name, func(t *testing.T) {
			j := newJail(t, h.tar)
			if err := CheckArchive(j.archive, 0); err != nil {
				t.Fatalf("CheckArchive: %v", err)
			}
			wantArchiveError(t, "ExtractArchive", ExtractArchive(j.archive, j.out, 0), h.member, h.reason)
			src, err := Parse(OCIArchive+":"+j.archive, false)
			if err != nil {
				t.Fatal(err)
			}
			if a, err := src.Open(t.Context(), Options{TempDir: j.tmp}); err == nil {
				a.Close()
				t.Fatal("Open succeeded")
			} else {
				wantArchiveError(t, "Open", err, h.member, h.reason)
			}
			j.check(t)
			// The first index.json was not replaced by the duplicate.
			if b, err := os.ReadFile(filepath.Join(j.out, "index.json")); err != nil || string(b) != "{}" {
				t.Errorf("index.json = %q, %v", b, err)
			}
		})
	}
}

// TestExtractIntoSymlinkedTarget: a target dir that (against the contract)
// already holds a symlink pointing out must not be written through.
func TestExtractIntoSymlinkedTarget(t *testing.T) {
	j := newJail(t, tarBytes(tarMember{Name: "evil/x", Type: tar.TypeReg, Body: []byte("owned")}))
	outside := filepath.Join(j.base, "a", "outside")
	if err := os.Mkdir(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../outside", filepath.Join(j.out, "evil")); err != nil {
		t.Fatal(err)
	}
	err := ExtractArchive(j.archive, j.out, 0)
	if err == nil {
		t.Fatal("extraction through a symlink out of the target succeeded")
	}
	wantArchiveError(t, "ExtractArchive", err, "evil/x", "escapes")
	if got := tree(t, outside); len(got) != 0 {
		t.Errorf("written outside through the symlink: %v", got)
	}
}

func TestArchiveMemberLimit(t *testing.T) {
	// "./" members are counted but extract to nothing, so the limit is
	// tested without creating 100 000 files.
	entries := func(n int) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for range n {
			if err := tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	t.Run("at the limit", func(t *testing.T) {
		j := newJail(t, entries(maxEntries))
		if err := CheckArchive(j.archive, 0); err != nil {
			t.Fatalf("%d members: %v", maxEntries, err)
		}
		if err := ExtractArchive(j.archive, j.out, 0); err != nil {
			t.Fatalf("%d members: %v", maxEntries, err)
		}
		j.check(t)
	})
	t.Run("over the limit", func(t *testing.T) {
		j := newJail(t, entries(maxEntries+1))
		reason := fmt.Sprintf("more than %d members", maxEntries)
		wantArchiveError(t, "CheckArchive", CheckArchive(j.archive, 0), "", reason)
		wantArchiveError(t, "ExtractArchive", ExtractArchive(j.archive, j.out, 0), "", reason)
		for _, transport := range []string{DockerArchive, OCIArchive} {
			src, err := Parse(transport+":"+j.archive, false)
			if err != nil {
				t.Fatal(err)
			}
			_, err = src.Open(t.Context(), Options{TempDir: j.tmp})
			wantArchiveError(t, "Open "+transport, err, "", reason)
		}
		j.check(t)
	})
}

// gzipBomb is a multi-member gzip stream: n copies of 16 MiB of zeros,
// about 16 KiB each compressed.
func gzipBomb(t *testing.T, n int) []byte {
	t.Helper()
	var one bytes.Buffer
	zw, err := gzip.NewWriterLevel(&one, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(make([]byte, 16<<20)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.Repeat(one.Bytes(), n)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestGzipBombLayer: opening an archive must not inflate its layers. The
// layer here inflates to 4 GiB; Open and Describe read only manifests and
// configs, and nothing larger than the archive is written anywhere.
func TestGzipBombLayer(t *testing.T) {
	bomb := gzipBomb(t, 256)
	layerHex := sha256Hex(bomb)
	config := []byte(`{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:` + hex64 + `"]}}`)
	configHex := sha256Hex(config)

	docker := tarBytes(
		tarMember{Name: "manifest.json", Type: tar.TypeReg, Body: []byte(`[{"Config":"config.json","RepoTags":["bomb:latest"],"Layers":["layer.tar.gz"]}]`)},
		tarMember{Name: "config.json", Type: tar.TypeReg, Body: config},
		tarMember{Name: "layer.tar.gz", Type: tar.TypeReg, Body: bomb},
	)
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":%d,"digest":"sha256:%s"},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":%d,"digest":"sha256:%s"}]}`,
		len(config), configHex, len(bomb), layerHex))
	manifestHex := sha256Hex(manifest)
	oci := tarBytes(
		tarMember{Name: "oci-layout", Type: tar.TypeReg, Body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		tarMember{Name: "index.json", Type: tar.TypeReg, Body: []byte(fmt.Sprintf(`{"schemaVersion":2,"manifests":[`+
			`{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":%d,"digest":"sha256:%s"}]}`, len(manifest), manifestHex))},
		tarMember{Name: "blobs/sha256/" + manifestHex, Type: tar.TypeReg, Body: manifest},
		tarMember{Name: "blobs/sha256/" + configHex, Type: tar.TypeReg, Body: config},
		tarMember{Name: "blobs/sha256/" + layerHex, Type: tar.TypeReg, Body: bomb},
	)

	for _, tc := range []struct {
		transport string
		archive   []byte
	}{{DockerArchive, docker}, {OCIArchive, oci}} {
		t.Run(tc.transport, func(t *testing.T) {
			j := newJail(t, tc.archive)
			t.Setenv("TMPDIR", j.tmp) // anything spilled to a temp file lands where we look
			src, err := Parse(tc.transport+":"+j.archive, false)
			if err != nil {
				t.Fatal(err)
			}
			a, err := src.Open(t.Context(), Options{TempDir: j.tmp})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer a.Close()
			if a.Image == nil {
				t.Fatal("no image")
			}
			f, err := Describe(a)
			if err != nil {
				t.Fatalf("Describe: %v", err)
			}
			if len(f.Images) != 1 || f.Images[0].Layers != 1 || f.Images[0].Size != int64(len(config)+len(bomb)) {
				t.Errorf("facts %+v, want one layer of %d compressed bytes", f.Images, len(bomb))
			}
			if tc.transport == OCIArchive && a.Digest.Hex != manifestHex {
				t.Errorf("digest %s, want sha256:%s", a.Digest, manifestHex)
			}
			limit := int64(len(tc.archive))
			err = filepath.WalkDir(j.base, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				info, err := d.Info()
				if err != nil {
					return err
				}
				if info.Size() > limit {
					t.Errorf("%s is %d bytes, more than the %d-byte archive: a layer was inflated", p, info.Size(), limit)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// fuzzSeeds are a valid OCI archive, a valid docker archive shape and every
// hostile archive but the large ones.
func fuzzSeeds(f *testing.F) {
	f.Add(tarBytes(
		tarMember{Name: "./", Type: tar.TypeDir},
		tarMember{Name: "./oci-layout", Type: tar.TypeReg, Body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		tarMember{Name: "./index.json", Type: tar.TypeReg, Body: []byte(`{"schemaVersion":2,"manifests":[]}`)},
		tarMember{Name: "./blobs/", Type: tar.TypeDir},
		tarMember{Name: "./blobs/sha256/", Type: tar.TypeDir},
		tarMember{Name: "./blobs/sha256/" + hex64, Type: tar.TypeReg, Body: []byte("{}")},
	))
	f.Add(tarBytes(
		tarMember{Name: "manifest.json", Type: tar.TypeReg, Body: []byte(`[{"Config":"c.json","Layers":["l/layer.tar"]}]`)},
		tarMember{Name: "l/layer.tar", Type: tar.TypeSymlink, Link: "../blobs/sha256/x"},
	))
	for _, h := range hostileArchives() {
		if len(h.tar) <= 64<<10 {
			f.Add(h.tar)
		}
	}
}

const fuzzMax = 1 << 20

func FuzzCheckArchive(f *testing.F) {
	fuzzSeeds(f)
	// One file per worker process, rewritten for each input: cheaper than a
	// directory per input, which keeps minimization quick.
	p := filepath.Join(f.TempDir(), "in.tar")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		err := CheckArchive(p, fuzzMax)
		if err != nil {
			var ae *ArchiveError
			if !errors.As(err, &ae) {
				t.Fatalf("CheckArchive error %v (%T) is not an *ArchiveError", err, err)
			}
			return
		}
		if err := CheckArchive(p, fuzzMax); err != nil {
			t.Fatalf("accepted once, refused the second time: %v", err)
		}
	})
}

func FuzzExtractArchive(f *testing.F) {
	fuzzSeeds(f)
	// One directory per worker process; the target is emptied per input.
	base := f.TempDir()
	out, archive, sentinel := filepath.Join(base, "out"), filepath.Join(base, "in.tar"), filepath.Join(base, "sentinel")
	if err := os.WriteFile(sentinel, []byte("sentinel"), 0o600); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.RemoveAll(out); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(out, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(archive, data, 0o600); err != nil {
			t.Fatal(err)
		}
		err := ExtractArchive(archive, out, fuzzMax)
		if err != nil {
			var ae *ArchiveError
			if !errors.As(err, &ae) {
				t.Fatalf("ExtractArchive error %v (%T) is not an *ArchiveError", err, err)
			}
		} else if cerr := CheckArchive(archive, fuzzMax); cerr != nil {
			t.Fatalf("extracted an archive CheckArchive refuses: %v", cerr)
		}
		for _, p := range tree(t, base) {
			if p != "in.tar" && p != "sentinel" && p != "out/" && !strings.HasPrefix(p, "out/") {
				t.Fatalf("extraction created %q outside the target", p)
			}
		}
		if b, err := os.ReadFile(sentinel); err != nil || string(b) != "sentinel" {
			t.Fatalf("sentinel changed: %q %v", b, err)
		}
		onlyFilesAndDirs(t, out)
	})
}
