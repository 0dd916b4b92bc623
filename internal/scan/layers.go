package scan

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Limits bound what unpacking an image may cost. Zero fields take defaults.
type Limits struct {
	MaxBytes   int64 // uncompressed bytes over all layers (default 32 GiB)
	MaxEntries int   // tar members over all layers (default 2,000,000)
	MaxFile    int64 // bytes of one file read by detectors (default 256 MiB)
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 32 << 30
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = 2_000_000
	}
	if l.MaxFile <= 0 {
		l.MaxFile = 256 << 20
	}
	return l
}

// LayerError is a layer refused as hostile or malformed: the scan fails
// closed and names the member.
type LayerError struct {
	Layer  string
	Member string
	Reason string
}

func (e *LayerError) Error() string {
	if e.Member != "" {
		return fmt.Sprintf("layer %s: member %q: %s", short(e.Layer), e.Member, e.Reason)
	}
	return fmt.Sprintf("layer %s: %s", short(e.Layer), e.Reason)
}

func short(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

// File is one entry of the image's file tree, as the layers built it.
type File struct {
	Path  string      // absolute, clean, symlinks in parent directories resolved
	Layer string      // digest of the layer that last wrote it
	Index int         // index of that layer (0 = base)
	Mode  fs.FileMode // as recorded in the layer (setuid bits included)
	Size  int64
	UID   int
	GID   int
	Link  string // symlink target as recorded; hard link target path
	Type  byte   // tar type flag
	ELF   bool   // a regular file starting with the ELF magic
}

// IsRegular reports whether f is a regular file (hard links included).
func (f *File) IsRegular() bool { return f.Type == tar.TypeReg || f.Type == tar.TypeLink }

// Tree is the file tree of an image, unpacked into a private directory.
// Only files some consumer wants are written there; every entry is in Files.
type Tree struct {
	Dir    string
	Files  map[string]*File // by absolute path
	Layers []string         // layer digests, base first
	root   *os.Root
}

// Open opens a file of the tree that was written to disk.
func (t *Tree) Open(p string) (*os.File, error) {
	return t.root.Open(strings.TrimPrefix(p, "/"))
}

// ReadFile reads a file of the tree that was written to disk, resolving
// symlinks inside the tree.
func (t *Tree) ReadFile(p string, max int64) ([]byte, error) {
	rp, err := t.Resolve(p)
	if err != nil {
		return nil, err
	}
	f, err := t.Open(rp)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// FS is the tree on disk as an fs.FS that cannot leave it.
func (t *Tree) FS() fs.FS { return t.root.FS() }

// Close releases the directory handle (the caller removes Dir).
func (t *Tree) Close() error { return t.root.Close() }

// Resolve follows symlinks of the tree (chroot semantics: absolute targets
// and ".." stop at the tree's root) and returns the final path.
func (t *Tree) Resolve(p string) (string, error) { return t.resolve(p, true) }

const maxHops = 40

func (t *Tree) resolve(p string, last bool) (string, error) {
	p = path.Clean("/" + p)
	hops := 0
	for {
		parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
		cur := "/"
		changed := false
		for i, part := range parts {
			if part == "" {
				continue
			}
			next := path.Join(cur, part)
			f, ok := t.Files[next]
			if ok && f.Type == tar.TypeSymlink && (last || i < len(parts)-1) {
				hops++
				if hops > maxHops {
					return "", fmt.Errorf("%s: too many levels of symbolic links", p)
				}
				target := f.Link
				if !strings.HasPrefix(target, "/") {
					target = path.Join(cur, target)
				}
				rest := strings.Join(parts[i+1:], "/")
				p = path.Clean("/" + target + "/" + rest)
				changed = true
				break
			}
			cur = next
		}
		if !changed {
			return p, nil
		}
	}
}

// FileSink is offered every regular file as it streams out of a layer.
// Want says whether it reads the content; Content gets the bytes (at most
// Limits.MaxFile of them) and must not keep r.
type FileSink interface {
	Want(f *File) bool
	Content(ctx context.Context, f *File, r io.Reader) error
}

// DiskFilter says whether a file must be written to the tree's directory
// (an inventory extractor will read it).
type DiskFilter func(f *File) bool

// Unpack applies the layers of img in order into dir (which must exist and
// be empty), with whiteouts, and offers each regular file to the sinks.
// Nothing is written outside dir: every write goes through os.Root, parent
// symlinks are resolved inside the tree, symlink targets are kept inside
// it, and devices are recorded but never created.
func Unpack(ctx context.Context, img v1.Image, dir string, lim Limits, disk DiskFilter, sinks ...FileSink) (*Tree, error) {
	lim = lim.withDefaults()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	t := &Tree{Dir: dir, Files: map[string]*File{}, root: root}
	layers, err := img.Layers()
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("read layers: %w", err)
	}
	u := &unpacker{t: t, lim: lim, disk: disk, sinks: sinks, inflight: make(chan struct{}, 64)}
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			root.Close()
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		t.Layers = append(t.Layers, d.String())
		rc, err := l.Uncompressed()
		if err != nil {
			root.Close()
			return nil, fmt.Errorf("layer %s: %w", short(d.String()), err)
		}
		err = u.layer(ctx, i, d.String(), rc)
		rc.Close()
		if err != nil {
			_ = u.wait()
			root.Close()
			return nil, err
		}
	}
	if err := u.wait(); err != nil {
		root.Close()
		return nil, err
	}
	return t, nil
}

type unpacker struct {
	inflight chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	sinkErr  error
	t        *Tree
	lim      Limits
	disk     DiskFilter
	sinks    []FileSink
	total    int64
	entries  int
}

// applyLayer applies one layer's tar stream to the tree (for tests and fuzzing).
func (t *Tree) applyLayer(ctx context.Context, lim Limits, index int, digest string, r io.Reader, disk DiskFilter, sinks ...FileSink) error {
	u := &unpacker{t: t, lim: lim.withDefaults(), disk: disk, sinks: sinks, inflight: make(chan struct{}, 64)}
	err := u.layer(ctx, index, digest, r)
	if werr := u.wait(); err == nil {
		err = werr
	}
	return err
}

func (u *unpacker) layer(ctx context.Context, index int, digest string, r io.Reader) error {
	bad := func(member, reason string) error { return &LayerError{Layer: digest, Member: member, Reason: reason} }
	// Bound the decompressed stream itself: a tar of huge sparse or
	// padding blocks is a decompression bomb even if no member is large.
	lr := &io.LimitedReader{R: r, N: u.lim.MaxBytes - u.total + 1}
	tr := tar.NewReader(lr)
	seen := map[string]bool{} // paths this layer wrote (whiteouts apply to lower layers only)
	var opaque []string
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if lr.N <= 0 {
				return bad("", fmt.Sprintf("more than %d uncompressed bytes", u.lim.MaxBytes))
			}
			return bad("", "not a tar stream or truncated: "+err.Error())
		}
		u.entries++
		if u.entries > u.lim.MaxEntries {
			return bad(h.Name, fmt.Sprintf("more than %d files in the image", u.lim.MaxEntries))
		}
		if h.Size < 0 {
			return bad(h.Name, "negative size")
		}
		u.total += h.Size
		if u.total > u.lim.MaxBytes {
			return bad(h.Name, fmt.Sprintf("more than %d uncompressed bytes", u.lim.MaxBytes))
		}
		p, err := memberPath(h.Name)
		if err != nil {
			return bad(h.Name, err.Error())
		}
		if p == "/" {
			continue
		}
		dir, base := path.Split(p)
		pdir, err := u.t.resolve(path.Clean(dir), true)
		if err != nil {
			return bad(h.Name, err.Error())
		}
		// Whiteouts (OCI image spec, layer changesets).
		if base == ".wh..wh..opq" {
			opaque = append(opaque, pdir)
			continue
		}
		if strings.HasPrefix(base, ".wh.") {
			victim := path.Join(pdir, strings.TrimPrefix(base, ".wh."))
			if victim == "/" || strings.TrimPrefix(base, ".wh.") == "" {
				return bad(h.Name, "whiteout of the root")
			}
			if err := u.remove(victim); err != nil {
				return bad(h.Name, err.Error())
			}
			continue
		}
		p = path.Join(pdir, base)
		seen[p] = true
		f := &File{Path: p, Layer: digest, Index: index, Mode: h.FileInfo().Mode(), Size: h.Size, UID: h.Uid, GID: h.Gid, Type: h.Typeflag}
		switch h.Typeflag {
		case tar.TypeDir:
			if old, ok := u.t.Files[p]; ok && old.Type != tar.TypeDir {
				if err := u.remove(p); err != nil {
					return bad(h.Name, err.Error())
				}
			}
			u.t.Files[p] = f
		case tar.TypeReg, tar.TypeRegA:
			f.Type = tar.TypeReg
			if err := u.replace(p); err != nil {
				return bad(h.Name, err.Error())
			}
			u.t.Files[p] = f
			if err := u.regular(ctx, f, tr); err != nil {
				var le *LayerError
				if errors.As(err, &le) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
					return err
				}
				return bad(h.Name, err.Error())
			}
		case tar.TypeSymlink:
			if h.Linkname == "" || strings.ContainsRune(h.Linkname, 0) {
				return bad(h.Name, "empty or NUL in symlink target")
			}
			if err := u.replace(p); err != nil {
				return bad(h.Name, err.Error())
			}
			f.Link = h.Linkname
			u.t.Files[p] = f
			u.symlinkOnDisk(f)
		case tar.TypeLink:
			tp, err := memberPath(h.Linkname)
			if err != nil {
				return bad(h.Name, "hard link: "+err.Error())
			}
			tp, err = u.t.resolve(tp, false)
			if err != nil {
				return bad(h.Name, err.Error())
			}
			target, ok := u.t.Files[tp]
			if !ok || !target.IsRegular() {
				return bad(h.Name, fmt.Sprintf("hard link to %s, which is not a regular file of the image", tp))
			}
			if tp == p {
				continue
			}
			if err := u.replace(p); err != nil {
				return bad(h.Name, err.Error())
			}
			f.Link, f.Size = tp, target.Size
			if h.Mode == 0 {
				f.Mode = target.Mode
			}
			u.t.Files[p] = f
			if _, err := u.t.root.Lstat(rel(tp)); err == nil {
				if err := u.mkdirs(path.Dir(p)); err == nil {
					_ = u.t.root.Link(rel(tp), rel(p))
				}
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			// Recorded (a device in an image is itself worth a look), never created.
			if err := u.replace(p); err != nil {
				return bad(h.Name, err.Error())
			}
			u.t.Files[p] = f
		case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		case tar.TypeGNUSparse:
			return bad(h.Name, "sparse files are not accepted")
		default:
			return bad(h.Name, fmt.Sprintf("member type %q is not accepted", string(h.Typeflag)))
		}
	}
	// An opaque directory hides what lower layers put under it, not what
	// this layer put there (the marker may come before or after its siblings).
	for _, d := range opaque {
		for p := range u.t.Files {
			if !seen[p] && (strings.HasPrefix(p, d+"/") || (d == "/" && p != "/")) {
				delete(u.t.Files, p)
				_ = u.t.root.RemoveAll(rel(p))
			}
		}
	}
	return nil
}

// memberPath cleans a tar member name to an absolute path inside the image.
// Names that climb out of the root are refused rather than clamped: a layer
// that tries it is hostile.
func memberPath(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", errors.New("empty or NUL in name")
	}
	n := strings.TrimPrefix(name, "./")
	n = strings.TrimLeft(n, "/")
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", errors.New("path escapes the image root")
		}
	}
	return path.Clean("/" + n), nil
}

func rel(p string) string {
	r := strings.TrimPrefix(p, "/")
	if r == "" {
		return "."
	}
	return r
}

// replace removes what a lower layer left at p before p is written again.
func (u *unpacker) replace(p string) error {
	if old, ok := u.t.Files[p]; ok {
		if old.Type == tar.TypeDir {
			return u.remove(p)
		}
		delete(u.t.Files, p)
		if err := u.t.root.Remove(rel(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// remove deletes p and everything under it from the tree and the disk.
func (u *unpacker) remove(p string) error {
	delete(u.t.Files, p)
	prefix := p + "/"
	for q := range u.t.Files {
		if strings.HasPrefix(q, prefix) {
			delete(u.t.Files, q)
		}
	}
	if err := u.t.root.RemoveAll(rel(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (u *unpacker) mkdirs(d string) error {
	if d == "/" || d == "." {
		return nil
	}
	return u.t.root.MkdirAll(rel(d), 0o700)
}

// symlinkOnDisk writes a symlink whose target, read from the link's own
// directory, stays inside the tree even when read lexically: absolute
// targets become relative, and ".." cannot climb past the root. os.Root
// refuses any link that still resolves outside.
func (u *unpacker) symlinkOnDisk(f *File) {
	if u.disk == nil || !u.disk(f) {
		return
	}
	target := f.Link
	if !strings.HasPrefix(target, "/") {
		target = path.Join(path.Dir(f.Path), target)
	}
	target = path.Clean("/" + target)
	relTarget, ok := relPath(path.Dir(f.Path), target)
	if !ok {
		return
	}
	if err := u.mkdirs(path.Dir(f.Path)); err != nil {
		return
	}
	_ = u.t.root.Symlink(relTarget, rel(f.Path))
}

// relPath is target relative to dir (both absolute, clean).
func relPath(dir, target string) (string, bool) {
	ds := strings.Split(strings.Trim(dir, "/"), "/")
	ts := strings.Split(strings.Trim(target, "/"), "/")
	if dir == "/" {
		ds = nil
	}
	if target == "/" {
		ts = nil
	}
	i := 0
	for i < len(ds) && i < len(ts) && ds[i] == ts[i] {
		i++
	}
	var parts []string
	for range ds[i:] {
		parts = append(parts, "..")
	}
	parts = append(parts, ts[i:]...)
	if len(parts) == 0 {
		return ".", true
	}
	return strings.Join(parts, "/"), true
}

// regular streams one file's bytes to disk (if wanted) and to the sinks.
func (u *unpacker) regular(ctx context.Context, f *File, r io.Reader) error {
	// The magic is read first so that Want can depend on it.
	var head [4]byte
	n, err := io.ReadFull(io.LimitReader(r, f.Size), head[:min(4, int(max(0, min(f.Size, 4))))])
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read: %w", err)
	}
	f.ELF = n == 4 && string(head[:]) == "\x7fELF"
	r = io.MultiReader(bytes.NewReader(head[:n]), r)
	var writers []io.Writer
	var file *os.File
	if u.disk != nil && u.disk(f) {
		if err := u.mkdirs(path.Dir(f.Path)); err != nil {
			return err
		}
		var err error
		// Permission bits are kept (extractors look for executables), never
		// setuid/setgid/sticky and never writable by others.
		perm := f.Mode.Perm()&0o755 | 0o600
		file, err = u.t.root.OpenFile(rel(f.Path), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
		if err != nil {
			return err
		}
		defer file.Close()
		writers = append(writers, file)
	}
	var pipes []*chunkPipe
	for _, s := range u.sinks {
		if !s.Want(f) {
			continue
		}
		cp := newChunkPipe()
		pipes = append(pipes, cp)
		writers = append(writers, cp)
		// Sinks run beside the walk, not in turn with it: the next member is
		// decompressed while this one is scanned. inflight bounds how many
		// files (and so how many buffered chunks) may be pending.
		u.inflight <- struct{}{}
		u.wg.Add(1)
		go func(s FileSink) {
			defer u.wg.Done()
			defer func() { <-u.inflight }()
			err := s.Content(ctx, f, io.LimitReader(cp, u.lim.MaxFile))
			cp.drain()
			if err != nil {
				u.fail(err)
			}
		}(s)
	}
	if len(writers) > 0 {
		_, err = io.Copy(io.MultiWriter(writers...), io.LimitReader(r, f.Size))
	}
	for _, cp := range pipes {
		cp.closeWithError(err)
	}
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

// wait waits for every sink still reading and returns the first error.
func (u *unpacker) wait() error {
	u.wg.Wait()
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.sinkErr
}

func (u *unpacker) fail(err error) {
	u.mu.Lock()
	if u.sinkErr == nil {
		u.sinkErr = err
	}
	u.mu.Unlock()
}

// chunkPipe hands a file's bytes to one sink through a bounded queue of
// copies, so the writer only waits when the sink is far behind.
type chunkPipe struct {
	ch   chan *[]byte
	err  error
	done chan struct{}
	cur  []byte
	buf  *[]byte // the pooled chunk cur points into
}

const pipeChunks = 16

func newChunkPipe() *chunkPipe {
	return &chunkPipe{ch: make(chan *[]byte, pipeChunks), done: make(chan struct{})}
}

func (p *chunkPipe) Write(b []byte) (int, error) {
	total := len(b)
	select {
	case <-p.done:
		// The sink stopped reading (limit reached or finished): drop the rest.
		return len(b), nil
	default:
	}
	for len(b) > 0 {
		bp := chunkPool.Get().(*[]byte)
		n := copy((*bp)[:cap(*bp)], b)
		*bp = (*bp)[:n]
		b = b[n:]
		select {
		case p.ch <- bp:
		case <-p.done:
			chunkPool.Put(bp)
			return total, nil
		}
	}
	return total, nil
}

// chunkPool recycles the copies handed to sinks (the walk copies every
// byte of every file a sink wants; fresh slices would be garbage at once).
var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

func (p *chunkPipe) closeWithError(err error) {
	p.err = err
	close(p.ch)
}

func (p *chunkPipe) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.buf != nil {
			chunkPool.Put(p.buf)
			p.buf = nil
		}
		c, ok := <-p.ch
		if !ok {
			if p.err != nil {
				return 0, p.err
			}
			return 0, io.EOF
		}
		p.buf, p.cur = c, *c
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// drain tells the writer the sink is done, then empties the queue.
func (p *chunkPipe) drain() {
	close(p.done)
	if p.buf != nil {
		chunkPool.Put(p.buf)
		p.buf, p.cur = nil, nil
	}
	for c := range p.ch {
		chunkPool.Put(c)
	}
}

// Sorted returns the tree's entries sorted by path.
func (t *Tree) Sorted() []*File {
	out := make([]*File, 0, len(t.Files))
	for _, f := range t.Files {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// fileInfo adapts a File to fs.FileInfo for plugins that filter on it.
type fileInfo struct{ f *File }

func (i fileInfo) Name() string       { return path.Base(i.f.Path) }
func (i fileInfo) Size() int64        { return i.f.Size }
func (i fileInfo) Mode() fs.FileMode  { return i.f.Mode }
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return i.f.Type == tar.TypeDir }
func (i fileInfo) Sys() any           { return nil }
