// Package harden makes a smaller image holding only what a profiled run of
// the original used plus what that needs to run (loader, libraries, script
// interpreters, certificates, a declared keep-list), squashed into one
// reproducible layer, and replays the profile on the result to prove it
// still behaves the same.
package harden

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Limits bound what an image may make the index hold. Zero fields take the
// defaults.
type Limits struct {
	MaxEntries    int   // tar entries over all layers (default 2,000,000)
	MaxFileBytes  int64 // one regular file (default 4 GiB)
	MaxTotalBytes int64 // regular file bytes over all layers (default 32 GiB)
	MaxNameBytes  int   // one path or link target (default 4096)
}

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = 2_000_000
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = 4 << 30
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = 32 << 30
	}
	if l.MaxNameBytes <= 0 {
		l.MaxNameBytes = 4096
	}
	return l
}

// LayerError is an image layer that cannot be indexed: malformed, over a
// limit, or inconsistent (a hard link to nothing). The image is bad input,
// not an internal failure.
type LayerError struct {
	Layer  int // 0 = bottom
	Digest string
	Err    error
}

func (e *LayerError) Error() string {
	return fmt.Sprintf("layer %d (%s) of the image cannot be read: %v; the image is malformed or hostile, fix or replace it", e.Layer, e.Digest, e.Err)
}
func (e *LayerError) Unwrap() error { return e.Err }

// Entry is one path of the image's final file set: the tar header that put
// it there (mode, owner, xattrs exactly as the layer had them) and the layer
// that holds it.
type Entry struct {
	Path   string // absolute and clean, e.g. "/usr/bin/env"
	Header tar.Header
	Layer  int // index of the layer holding it, 0 = bottom
	// blob is the spooled content of a regular file (or of the regular file
	// a hard link names); hard-linked paths share one blob.
	blob int
}

// IsDir, IsSymlink and IsRegular say what kind of entry this is. A hard
// link is regular: it is the content it names.
func (e *Entry) IsDir() bool     { return e.Header.Typeflag == tar.TypeDir }
func (e *Entry) IsSymlink() bool { return e.Header.Typeflag == tar.TypeSymlink }
func (e *Entry) IsRegular() bool {
	return e.Header.Typeflag == tar.TypeReg || e.Header.Typeflag == tar.TypeLink
}

// Size is the content size of a regular file, 0 otherwise.
func (e *Entry) Size() int64 {
	if e.IsRegular() {
		return e.Header.Size
	}
	return 0
}

// Index is the final file set of an image with every regular file's content
// spooled to a private directory under numbered names, so that no path from
// the image is ever used on the host's filesystem.
type Index struct {
	entries map[string]*Entry
	// children lists the paths directly under each directory path, so a
	// whiteout costs the size of what it removes, not of the image.
	children map[string]map[string]struct{}
	spool    string
	sizes    map[int]int64
	next     int
	// Layers are the layer digests, bottom first.
	Layers []string
}

// maxSymlinkHops is the loader's and the kernel's limit on links followed
// while resolving one path (MAXSYMLINKS).
const maxSymlinkHops = 40

// NewIndex walks img's layers bottom to top into the final file set. Nothing
// is written outside a temporary spool directory under tempDir, which Close
// removes.
func NewIndex(ctx context.Context, img v1.Image, tempDir string, lim Limits) (*Index, error) {
	lim = lim.withDefaults()
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("read the image's layer list: %w", err)
	}
	spool, err := os.MkdirTemp(tempDir, "airlock-harden-")
	if err != nil {
		return nil, fmt.Errorf("create a spool directory for the image's files: %w", err)
	}
	ix := &Index{entries: map[string]*Entry{}, children: map[string]map[string]struct{}{}, spool: spool, sizes: map[int]int64{}}
	var total int64
	count := 0
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			ix.Close()
			return nil, fmt.Errorf("read the digest of layer %d: %w", i, err)
		}
		ix.Layers = append(ix.Layers, d.String())
		rc, err := l.Uncompressed()
		if err != nil {
			ix.Close()
			return nil, &LayerError{Layer: i, Digest: d.String(), Err: err}
		}
		err = ix.addLayer(ctx, i, rc, lim, &total, &count)
		rc.Close()
		if err != nil {
			ix.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &LayerError{Layer: i, Digest: d.String(), Err: err}
		}
	}
	ix.collect()
	return ix, nil
}

// Close removes the spooled contents.
func (ix *Index) Close() error {
	if ix.spool == "" {
		return nil
	}
	err := os.RemoveAll(ix.spool)
	ix.spool = ""
	return err
}

// CleanPath makes any name from a layer or a profile an absolute, clean path
// inside the image: ".." cannot climb above the root.
func CleanPath(name string) string {
	return path.Clean("/" + strings.TrimPrefix(name, "./"))
}

func (ix *Index) addLayer(ctx context.Context, layer int, r io.Reader, lim Limits, total *int64, count *int) error {
	tr := tar.NewReader(r)
	whiteouts := map[string]bool{} // applied in this layer already
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar entry: %w", err)
		}
		*count++
		if *count > lim.MaxEntries {
			return fmt.Errorf("more than %d entries", lim.MaxEntries)
		}
		if len(h.Name) > lim.MaxNameBytes || len(h.Linkname) > lim.MaxNameBytes {
			return fmt.Errorf("a name or link target is longer than %d bytes", lim.MaxNameBytes)
		}
		if strings.ContainsRune(h.Name, 0) || strings.ContainsRune(h.Linkname, 0) {
			return errors.New("a name or link target contains a NUL byte")
		}
		p := CleanPath(h.Name)
		if p == "/" && h.Typeflag != tar.TypeDir {
			return fmt.Errorf("entry %q names the root but is not a directory", h.Name)
		}
		// Parent directories that are symlinks are followed, inside the
		// image, the way a runtime's unpacker resolves them.
		if p != "/" {
			dir, base := path.Split(p)
			p = path.Join(ix.resolve(path.Clean(dir), maxSymlinkHops), base)
		}
		base := path.Base(p)
		dir := path.Dir(p)
		switch {
		case base == ".wh..wh..opq":
			if !whiteouts[p] {
				whiteouts[p] = true
				ix.removeBelow(dir, layer, false)
			}
			continue
		case strings.HasPrefix(base, ".wh."):
			if !whiteouts[p] {
				whiteouts[p] = true
				ix.removeBelow(path.Join(dir, strings.TrimPrefix(base, ".wh.")), layer, true)
			}
			continue
		}
		e := &Entry{Path: p, Header: *h, Layer: layer, blob: -1}
		e.Header.Name = p
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archives still use TypeRegA
			e.Header.Typeflag = tar.TypeReg
			if h.Size < 0 || h.Size > lim.MaxFileBytes {
				return fmt.Errorf("%s is %d bytes, over the %d-byte limit for one file", p, h.Size, lim.MaxFileBytes)
			}
			*total += h.Size
			if *total > lim.MaxTotalBytes {
				return fmt.Errorf("files add up to more than %d bytes", lim.MaxTotalBytes)
			}
			id, err := ix.spoolBlob(tr, h.Size)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			e.blob = id
		case tar.TypeLink:
			target := CleanPath(h.Linkname)
			t, ok := ix.entries[target]
			if !ok || !t.IsRegular() {
				return fmt.Errorf("hard link %s names %s, which is not a regular file already in the image", p, h.Linkname)
			}
			e.blob = t.blob
			e.Header.Size = t.Header.Size
			e.Header.Linkname = target
		case tar.TypeSymlink:
			if h.Linkname == "" {
				return fmt.Errorf("symbolic link %s has an empty target", p)
			}
		case tar.TypeDir:
			if old, ok := ix.entries[p]; ok && !old.IsDir() {
				ix.removeBelow(p, layer+1, true)
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		default:
			// PAX global headers, GNU sparse and long-name entries are
			// consumed by archive/tar; anything else is not a file.
			continue
		}
		if old, ok := ix.entries[p]; ok && old.IsDir() && !e.IsDir() {
			// A non-directory replaces a directory and everything in it.
			ix.removeBelow(p, layer+1, true)
		}
		// A directory entry over a directory changes its metadata only.
		ix.put(e)
	}
}

// removeBelow deletes p (if self) and everything under p that came from a
// layer below layer.
func (ix *Index) removeBelow(p string, layer int, self bool) {
	for c := range ix.children[p] {
		ix.removeBelow(c, layer, true)
	}
	if e, ok := ix.entries[p]; ok && self && e.Layer < layer {
		ix.drop(p)
	}
}

func (ix *Index) put(e *Entry) {
	ix.entries[e.Path] = e
	for p := e.Path; p != "/"; {
		dir := path.Dir(p)
		kids := ix.children[dir]
		if kids == nil {
			kids = map[string]struct{}{}
			ix.children[dir] = kids
		}
		if _, ok := kids[p]; ok {
			break
		}
		kids[p] = struct{}{}
		p = dir
	}
}

func (ix *Index) drop(p string) {
	delete(ix.entries, p)
	if len(ix.children[p]) == 0 {
		delete(ix.children, p)
		dir := path.Dir(p)
		delete(ix.children[dir], p)
	}
}

func (ix *Index) spoolBlob(r io.Reader, size int64) (int, error) {
	id := ix.next
	ix.next++
	f, err := os.OpenFile(filepath.Join(ix.spool, strconv.Itoa(id)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("spool the content: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(r, size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("spool the content: %w", err)
	}
	if n != size {
		return 0, fmt.Errorf("content is %d bytes, the header says %d", n, size)
	}
	ix.sizes[id] = size
	return id, nil
}

// collect drops spooled contents no final path refers to.
func (ix *Index) collect() {
	used := map[int]bool{}
	for _, e := range ix.entries {
		if e.blob >= 0 {
			used[e.blob] = true
		}
	}
	for id := range ix.sizes {
		if !used[id] {
			os.Remove(filepath.Join(ix.spool, strconv.Itoa(id)))
			delete(ix.sizes, id)
		}
	}
}

// Entry returns the final entry at p (not following a symlink at p).
func (ix *Index) Entry(p string) (*Entry, bool) {
	e, ok := ix.entries[CleanPath(p)]
	return e, ok
}

// Paths returns every path of the final file set, sorted.
func (ix *Index) Paths() []string {
	out := make([]string, 0, len(ix.entries))
	for p := range ix.entries {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Len is the number of paths in the final file set.
func (ix *Index) Len() int { return len(ix.entries) }

// Open returns the content of the regular file (or hard link) at p.
func (ix *Index) Open(p string) (*os.File, error) {
	e, ok := ix.entries[CleanPath(p)]
	if !ok || !e.IsRegular() || e.blob < 0 {
		return nil, fmt.Errorf("%s is not a regular file in the image", p)
	}
	return os.Open(filepath.Join(ix.spool, strconv.Itoa(e.blob)))
}

// ReadFile returns up to max bytes of the regular file at p.
func (ix *Index) ReadFile(p string, max int64) ([]byte, error) {
	f, err := ix.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// resolve follows symlinks in every component of p (including the last)
// inside the image, with relative targets taken from the link's directory,
// absolute targets from the image's root and ".." stopping at the root.
// Components that do not exist are kept as they are.
func (ix *Index) resolve(p string, hops int) string {
	r, _ := ix.Resolve(p, hops)
	return r
}

// Resolve is resolve that also returns every symlink it went through, in
// order, so a keep-set can keep both the links and their target.
func (ix *Index) Resolve(p string, hops int) (string, []string) {
	var links []string
	todo := strings.Split(strings.TrimPrefix(CleanPath(p), "/"), "/")
	cur := "/"
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		e, ok := ix.entries[next]
		if !ok || !e.IsSymlink() {
			cur = next
			continue
		}
		if hops <= 0 {
			// A loop: stop here, as the kernel would fail with ELOOP.
			cur = next
			continue
		}
		hops--
		links = append(links, next)
		target := e.Header.Linkname
		if strings.HasPrefix(target, "/") {
			cur = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return cur, links
}
