package source

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// DefaultMaxArchive bounds archives when no limit is configured.
const DefaultMaxArchive = 16 << 30

// maxEntries bounds the number of members of an archive (inode bombs).
const maxEntries = 100000

// ArchiveError is an archive refused as unsafe or malformed.
type ArchiveError struct {
	Path   string
	Member string
	Reason string
}

func (e *ArchiveError) Error() string {
	if e.Member != "" {
		return fmt.Sprintf("archive %s: member %q: %s", filepath.Base(e.Path), e.Member, e.Reason)
	}
	return fmt.Sprintf("archive %s: %s", filepath.Base(e.Path), e.Reason)
}

// member checks one tar header and returns its cleaned relative name.
func member(archive string, h *tar.Header) (string, error) {
	bad := func(reason string) error { return &ArchiveError{Path: archive, Member: h.Name, Reason: reason} }
	n := h.Name
	if n == "" || strings.ContainsRune(n, 0) {
		return "", bad("empty or NUL in name")
	}
	if strings.HasPrefix(n, "/") || strings.Contains(n, "\\") {
		return "", bad("absolute or backslash path")
	}
	clean := path.Clean(n)
	if clean == ".." || strings.HasPrefix(clean, "../") || strings.Contains("/"+clean+"/", "/../") {
		return "", bad("path escapes the archive")
	}
	if h.Size < 0 {
		return "", bad("negative size")
	}
	// archive/tar expands GNU's PAX sparse formats into a regular member.
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return "", bad("sparse files are not accepted")
		}
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir:
	case tar.TypeSymlink:
		t := h.Linkname
		if strings.HasPrefix(t, "/") {
			return "", bad("absolute symlink")
		}
		if j := path.Join(path.Dir(clean), t); j == ".." || strings.HasPrefix(j, "../") {
			return "", bad("symlink escapes the archive")
		}
	case tar.TypeXGlobalHeader:
	case tar.TypeGNUSparse:
		return "", bad("sparse files are not accepted")
	default:
		return "", bad(fmt.Sprintf("member type %q is not accepted (only files, directories and relative symlinks)", string(h.Typeflag)))
	}
	return clean, nil
}

// walk reads every member of the archive fully, checking names, types and
// sizes against max. A header that claims more bytes than the archive holds
// (a truncated file or a sparse claim) fails here, before anything uses it.
func walk(archive string, max int64, each func(h *tar.Header, name string, r io.Reader) error) error {
	if max <= 0 {
		max = DefaultMaxArchive
	}
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() > max {
		return &ArchiveError{Path: archive, Reason: fmt.Sprintf("%d bytes is over the limit of %d", st.Size(), max)}
	}
	tr := tar.NewReader(f)
	var total int64
	for n := 0; ; n++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return &ArchiveError{Path: archive, Reason: "empty archive"}
			}
			return nil
		}
		if err != nil {
			return &ArchiveError{Path: archive, Reason: "not a tar archive or truncated: " + err.Error()}
		}
		if n >= maxEntries {
			return &ArchiveError{Path: archive, Reason: fmt.Sprintf("more than %d members", maxEntries)}
		}
		name, err := member(archive, h)
		if err != nil {
			return err
		}
		total += h.Size
		if h.Size > st.Size() || total > max {
			return &ArchiveError{Path: archive, Member: h.Name, Reason: fmt.Sprintf("claims %d bytes, more than the archive holds", h.Size)}
		}
		var r io.Reader = tr
		if each != nil && h.Typeflag != tar.TypeXGlobalHeader {
			if err := each(h, name, r); err != nil {
				return err
			}
		}
		// Drain what the callback left: a short member shows up as an error.
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return &ArchiveError{Path: archive, Member: h.Name, Reason: "truncated: " + err.Error()}
		}
	}
}

// CheckArchive verifies that a tar archive is well-formed and safe to read
// by name: no escaping paths or symlinks, no devices, no sparse or truncated
// members, within max bytes.
func CheckArchive(archive string, max int64) error { return walk(archive, max, nil) }

// ExtractArchive unpacks a checked tar archive into dir (which must exist and
// be empty). Only regular files and directories are written; symlinks are
// refused, since an OCI layout needs none.
func ExtractArchive(archive, dir string, max int64) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return walk(archive, max, func(h *tar.Header, name string, r io.Reader) error {
		if name == "." {
			return nil
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := mkdirAll(root, name); err != nil {
				return &ArchiveError{Path: archive, Member: h.Name, Reason: err.Error()}
			}
			return nil
		case tar.TypeReg:
			if d := path.Dir(name); d != "." {
				if err := mkdirAll(root, d); err != nil {
					return &ArchiveError{Path: archive, Member: h.Name, Reason: err.Error()}
				}
			}
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return &ArchiveError{Path: archive, Member: h.Name, Reason: err.Error()}
			}
			n, err := io.Copy(f, io.LimitReader(r, h.Size))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return &ArchiveError{Path: archive, Member: h.Name, Reason: "truncated: " + err.Error()}
			}
			if n != h.Size {
				return &ArchiveError{Path: archive, Member: h.Name, Reason: "truncated"}
			}
			return nil
		default:
			return &ArchiveError{Path: archive, Member: h.Name, Reason: "links are not accepted in an OCI archive"}
		}
	})
}

// mkdirAll creates name and its parents inside root (os.Root refuses escapes).
func mkdirAll(root *os.Root, name string) error {
	parts := strings.Split(name, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		if err := root.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return nil
}
