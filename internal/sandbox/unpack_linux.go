package sandbox

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Unpack applies img's layers in order into dir, which must be empty or not
// exist yet. Every parent path is resolved inside dir by the kernel
// (openat2 with RESOLVE_IN_ROOT), the last component is never followed,
// whiteouts and opaque directories remove what lower layers put there, hard
// links may only name entries inside dir, and device nodes are skipped. On
// any error everything Unpack wrote is removed again.
func Unpack(ctx context.Context, img v1.Image, dir string, lim UnpackLimits) (err error) {
	lim = lim.withDefaults()
	if lim.Root && os.Geteuid() != 0 {
		return fmt.Errorf("unpack with owners and setuid bits needs root: run as root or unpack without UnpackLimits.Root")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create the unpack directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read the unpack directory: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("unpack directory %s is not empty: unpack into a new directory", dir)
	}
	rootfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the unpack directory: %w", err)
	}
	defer unix.Close(rootfd)
	u := &unpacker{root: rootfd, lim: lim, dirModes: map[string]uint32{}}
	defer func() {
		if err != nil {
			clearDir(dir)
		}
	}()
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("read the image's layers: %w", err)
	}
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return layerError(i, "", err)
		}
		err = u.layer(ctx, i, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return u.finish()
}

// unpackTar applies one uncompressed tar stream into dir as Unpack does
// for each layer (dir may already hold lower layers). It is the unit the
// fuzz target exercises.
func unpackTar(ctx context.Context, r io.Reader, dir string, lim UnpackLimits) (err error) {
	lim = lim.withDefaults()
	rootfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the unpack directory: %w", err)
	}
	defer unix.Close(rootfd)
	u := &unpacker{root: rootfd, lim: lim, dirModes: map[string]uint32{}}
	if err := u.layer(ctx, 0, r); err != nil {
		return err
	}
	return u.finish()
}

type unpacker struct {
	root     int
	lim      UnpackLimits
	bytes    int64
	entries  int
	dirModes map[string]uint32 // applied at the end so read-only dirs can be filled
	inLayer  map[string]bool   // paths written by the current layer (opaque whiteouts spare them)
}

func (u *unpacker) layer(ctx context.Context, idx int, r io.Reader) error {
	u.inLayer = map[string]bool{}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return layerError(idx, "", fmt.Errorf("the layer is not a valid tar stream: %w", err))
		}
		u.entries++
		if u.entries > u.lim.MaxEntries {
			return layerError(idx, h.Name, fmt.Errorf("%w: more than %d entries", ErrUnpackLimit, u.lim.MaxEntries))
		}
		if h.Size < 0 || h.Size > u.lim.MaxBytes-u.bytes {
			return layerError(idx, h.Name, fmt.Errorf("%w: more than %d bytes", ErrUnpackLimit, u.lim.MaxBytes))
		}
		u.bytes += h.Size
		name, err := cleanName(h.Name)
		if err != nil {
			return layerError(idx, h.Name, err)
		}
		if name == "" { // the root itself
			if h.Typeflag == tar.TypeDir {
				u.dirModes[""] = u.mode(h)
			}
			continue
		}
		if err := u.entry(h, name, tr); err != nil {
			return layerError(idx, h.Name, err)
		}
	}
}

// cleanName turns a tar entry name into a clean path relative to the root,
// refusing anything that climbs out of it.
func cleanName(n string) (string, error) {
	if len(n) > maxNameLen {
		return "", fmt.Errorf("name longer than %d bytes", maxNameLen)
	}
	if strings.IndexByte(n, 0) >= 0 {
		return "", errors.New("name contains a NUL byte")
	}
	for _, c := range strings.Split(n, "/") {
		if c == ".." {
			return "", errors.New("name climbs out of the image root with '..'")
		}
	}
	c := path.Clean("/" + n)
	return strings.TrimPrefix(c, "/"), nil
}

func (u *unpacker) mode(h *tar.Header) uint32 {
	m := uint32(h.Mode) & 0o7777
	if !u.lim.Root {
		m &^= unix.S_ISUID | unix.S_ISGID
	}
	return m
}

func (u *unpacker) entry(h *tar.Header, name string, r io.Reader) error {
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if base == "." || base == "" {
		return errors.New("empty name")
	}
	// Whiteouts.
	if strings.HasPrefix(base, ".wh.") {
		pfd, err := u.openDir(dir, false)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				return nil // nothing to white out
			}
			return err
		}
		defer unix.Close(pfd)
		if base == ".wh..wh..opq" {
			return u.opaque(pfd, dir)
		}
		victim := strings.TrimPrefix(base, ".wh.")
		if victim == "" || victim == "." || victim == ".." {
			return errors.New("whiteout without a name")
		}
		return removeAt(pfd, victim)
	}
	if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
		return nil // device nodes are never created from an image
	}
	pfd, err := u.openDir(dir, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	u.inLayer[name] = true
	mode := u.mode(h)
	switch h.Typeflag {
	case tar.TypeDir:
		var st unix.Stat_t
		err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := removeAt(pfd, base); err != nil {
				return err
			}
			err = unix.ENOENT
		}
		if err != nil {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return fmt.Errorf("create directory: %w", err)
			}
		}
		u.dirModes[name] = mode
		return u.owner(pfd, base, h)
	case tar.TypeReg, tar.TypeRegA:
		if err := replace(pfd, base); err != nil {
			return err
		}
		fd, err := unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fmt.Errorf("create file: %w", err)
		}
		f := os.NewFile(uintptr(fd), name)
		_, err = io.Copy(f, io.LimitReader(r, h.Size))
		if err == nil {
			err = f.Chmod(os.FileMode(mode&0o777) | goModeBits(mode))
		}
		if err == nil && u.lim.Root {
			err = f.Chown(h.Uid, h.Gid)
			if err == nil && mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
				// chown clears setuid/setgid; put them back.
				err = f.Chmod(os.FileMode(mode&0o777) | goModeBits(mode))
			}
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write file: %w", err)
		}
		return nil
	case tar.TypeSymlink:
		if len(h.Linkname) > maxNameLen || strings.IndexByte(h.Linkname, 0) >= 0 {
			return errors.New("symlink target is too long or contains a NUL byte")
		}
		if err := replace(pfd, base); err != nil {
			return err
		}
		if err := unix.Symlinkat(h.Linkname, pfd, base); err != nil {
			return fmt.Errorf("create symlink: %w", err)
		}
		return u.owner(pfd, base, h)
	case tar.TypeLink:
		src, err := cleanName(h.Linkname)
		if err != nil || src == "" {
			return fmt.Errorf("hard link target %q is outside the image root", h.Linkname)
		}
		sdir, sbase := path.Split(src)
		sfd, err := u.openDir(strings.TrimSuffix(sdir, "/"), false)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", h.Linkname, err)
		}
		defer unix.Close(sfd)
		var st unix.Stat_t
		if err := unix.Fstatat(sfd, sbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("hard link target %q does not exist in the image", h.Linkname)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return fmt.Errorf("hard link target %q is a directory", h.Linkname)
		}
		if src == name {
			return nil
		}
		if err := replace(pfd, base); err != nil {
			return err
		}
		if err := unix.Linkat(sfd, sbase, pfd, base, 0); err != nil {
			return fmt.Errorf("create hard link: %w", err)
		}
		return nil
	case tar.TypeFifo:
		if err := replace(pfd, base); err != nil {
			return err
		}
		if err := unix.Mknodat(pfd, base, unix.S_IFIFO|(mode&0o777), 0); err != nil {
			return fmt.Errorf("create fifo: %w", err)
		}
		return u.owner(pfd, base, h)
	default:
		return nil // other entry types carry no file
	}
}

func goModeBits(m uint32) os.FileMode {
	var fm os.FileMode
	if m&unix.S_ISUID != 0 {
		fm |= os.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		fm |= os.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

func (u *unpacker) owner(pfd int, base string, h *tar.Header) error {
	if !u.lim.Root {
		return nil
	}
	if err := unix.Fchownat(pfd, base, h.Uid, h.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set owner: %w", err)
	}
	return nil
}

// openDir opens dir (relative to the root) with every component resolved
// inside the root; create makes missing components.
func (u *unpacker) openDir(dir string, create bool) (int, error) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	if dir == "" {
		return unix.Openat2(u.root, ".", how)
	}
	fd, err := unix.Openat2(u.root, dir, how)
	if err == nil || !create {
		return fd, err
	}
	// Walk component by component, creating what is missing. Each step is
	// resolved from the root again so a symlink planted earlier is clamped.
	cur := ""
	for _, c := range strings.Split(dir, "/") {
		next := path.Join(cur, c)
		fd, err := unix.Openat2(u.root, next, how)
		if err == nil {
			unix.Close(fd)
			cur = next
			continue
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			return -1, fmt.Errorf("open %s: %w", next, err)
		}
		pfd, err := unix.Openat2(u.root, orDot(cur), how)
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", orDot(cur), err)
		}
		var st unix.Stat_t
		if unix.Fstatat(pfd, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Mode&unix.S_IFMT != unix.S_IFLNK {
			_ = removeAt(pfd, c) // a file where the layer wants a directory
		}
		err = unix.Mkdirat(pfd, c, 0o755)
		unix.Close(pfd)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return -1, fmt.Errorf("create directory %s: %w", next, err)
		}
		cur = next
	}
	return unix.Openat2(u.root, dir, how)
}

func orDot(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// opaque removes everything under dir that this layer did not write.
func (u *unpacker) opaque(pfd int, dir string) error {
	fd, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), dir)
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if u.inLayer[p] {
			var st unix.Stat_t
			if unix.Fstatat(pfd, n, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				cfd, err := unix.Openat(pfd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				if err != nil {
					return err
				}
				err = u.opaque(cfd, p)
				unix.Close(cfd)
				if err != nil {
					return err
				}
			}
			continue
		}
		if err := removeAt(pfd, n); err != nil {
			return err
		}
	}
	return nil
}

// replace removes whatever is at base unless it is a directory that a new
// directory would merge with.
func replace(pfd int, base string) error {
	err := removeAt(pfd, base)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// removeAt removes base under pfd, recursively for directories, never
// following symlinks.
func removeAt(pfd int, base string) error {
	err := unix.Unlinkat(pfd, base, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("remove %s: %w", base, err)
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("remove %s: %w", base, err)
	}
	// A read-only directory of an earlier layer must become writable to be emptied.
	_ = unix.Fchmod(fd, 0o700)
	f := os.NewFile(uintptr(fd), base)
	names, err := f.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = removeAt(fd, n); err != nil {
				break
			}
		}
	}
	f.Close()
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s: %w", base, err)
	}
	return nil
}

// finish applies directory modes, deepest first.
func (u *unpacker) finish() error {
	names := make([]string, 0, len(u.dirModes))
	for n := range u.dirModes {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for _, n := range names {
		m := u.dirModes[n]
		fd, err := unix.Openat2(u.root, orDot(n), &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
		if err != nil {
			continue // whited out or replaced by a later layer
		}
		err = unix.Fchmod(fd, m)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("set mode of %s: %w", n, err)
		}
	}
	return nil
}

// clearDir empties dir after a failed unpack.
func clearDir(dir string) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), dir)
	names, _ := f.Readdirnames(-1)
	for _, n := range names {
		_ = removeAt(fd, n)
	}
	f.Close()
}
