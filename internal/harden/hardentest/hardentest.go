// Package hardentest builds realistic Debian images for the harden tests
// and benchmark from this machine's installed packages: the files dpkg
// lists for a set of packages and their dependencies, with the dpkg
// database describing exactly those packages, so scanners and the
// package-metadata trimming see a real distribution.
package hardentest

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is an extra file of a Debian image (the application).
type File struct {
	Data    []byte
	Mode    int64
	Dir     bool
	Symlink string // a symbolic link to this target
}

// ErrNoDpkg is returned on a machine without dpkg.
var ErrNoDpkg = errors.New("this machine has no dpkg database")

// Closure returns packages and everything they depend on (Depends and
// Pre-Depends, the first installed alternative), sorted.
func Closure(packages []string) ([]string, error) {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Package}\t${Status}\t${Depends}\t${Pre-Depends}\n").Output()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDpkg, err)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 4 || !strings.HasSuffix(f[1], " installed") {
			continue
		}
		deps[f[0]] = nil
		for _, group := range strings.Split(f[2]+","+f[3], ",") {
			var alts []string
			for _, a := range strings.Split(group, "|") {
				a = strings.TrimSpace(a)
				if i := strings.IndexAny(a, " (:"); i >= 0 {
					a = a[:i]
				}
				if a != "" {
					alts = append(alts, a)
				}
			}
			if len(alts) > 0 {
				deps[f[0]] = append(deps[f[0]], strings.Join(alts, "|"))
			}
		}
	}
	seen := map[string]bool{}
	var visit func(p string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		if _, ok := deps[p]; !ok {
			return
		}
		seen[p] = true
		for _, g := range deps[p] {
			for _, a := range strings.Split(g, "|") {
				if _, ok := deps[a]; ok {
					visit(a)
					break
				}
			}
		}
	}
	for _, p := range packages {
		if _, ok := deps[p]; !ok {
			return nil, fmt.Errorf("package %s is not installed on this machine", p)
		}
		visit(p)
	}
	var list []string
	for p := range seen {
		list = append(list, p)
	}
	sort.Strings(list)
	return list, nil
}

// DebianImage builds an image of packages (closed over their dependencies)
// from this machine's files, plus extra files, with cfg. Paths are as the
// machine has them (merged /usr: /bin, /lib, /lib64 and /sbin are links).
// It returns the image and the packages in it.
func DebianImage(packages []string, extra map[string]File, cfg v1.Config) (v1.Image, []string, error) {
	pkgs, err := Closure(packages)
	if err != nil {
		return nil, nil, err
	}
	entries := map[string]*entry{}
	var addPath func(p string) error
	addPath = func(p string) error {
		p = filepath.Clean(p)
		if p == "/" || entries[p] != nil {
			return nil
		}
		// The directory as the machine resolves it, so files land once.
		dir, err := filepath.EvalSymlinks(filepath.Dir(p))
		if err != nil {
			return nil // listed but gone (diverted, removed)
		}
		if dir != filepath.Dir(p) {
			// Keep the link on the way (e.g. /lib -> usr/lib) and the file at its real place.
			if err := addPath(filepath.Dir(p)); err != nil {
				return err
			}
			p = filepath.Join(dir, filepath.Base(p))
			if entries[p] != nil {
				return nil
			}
		}
		if err := addPath(filepath.Dir(p)); err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		h := &tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: int64(fi.Mode().Perm()), ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if fi.Mode()&os.ModeSetuid != 0 {
			h.Mode |= 0o4000
		}
		if fi.Mode()&os.ModeSetgid != 0 {
			h.Mode |= 0o2000
		}
		if fi.Mode()&os.ModeSticky != 0 {
			h.Mode |= 0o1000
		}
		e := &entry{hdr: h}
		switch {
		case fi.IsDir():
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case fi.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			h.Typeflag, h.Linkname = tar.TypeSymlink, t
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return nil // unreadable (a key only root reads): leave it out
			}
			h.Typeflag, h.Size, e.data = tar.TypeReg, int64(len(b)), b
		default:
			return nil
		}
		entries[p] = e
		return nil
	}
	var status bytes.Buffer
	for _, pkg := range pkgs {
		out, err := exec.Command("dpkg", "-L", pkg).Output()
		if err != nil {
			return nil, nil, fmt.Errorf("dpkg -L %s: %v", pkg, err)
		}
		for _, p := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(p, "/") && p != "/." {
				if err := addPath(p); err != nil {
					return nil, nil, err
				}
			}
		}
		st, err := exec.Command("dpkg-query", "-s", pkg).Output()
		if err != nil {
			return nil, nil, fmt.Errorf("dpkg-query -s %s: %v", pkg, err)
		}
		status.Write(bytes.TrimSpace(st))
		status.WriteString("\n\n")
		infos, _ := filepath.Glob("/var/lib/dpkg/info/" + pkg + ".*")
		archInfos, _ := filepath.Glob("/var/lib/dpkg/info/" + pkg + ":*.*")
		for _, f := range append(infos, archInfos...) {
			if strings.HasSuffix(f, ".list") || strings.HasSuffix(f, ".md5sums") {
				if err := addPath(f); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	// Files maintainer scripts generate (not in any .list): the CA bundle
	// and its hash links that update-ca-certificates writes.
	for _, pkg := range pkgs {
		if pkg != "ca-certificates" {
			continue
		}
		generated, _ := filepath.Glob("/etc/ssl/certs/*")
		for _, g := range generated {
			if err := addPath(g); err != nil {
				return nil, nil, err
			}
		}
	}
	for _, d := range []string{"/var/lib/dpkg", "/tmp", "/root", "/etc"} {
		if err := addPath(d); err != nil {
			return nil, nil, err
		}
	}
	entries["/var/lib/dpkg/status"] = &entry{hdr: &tar.Header{Name: "var/lib/dpkg/status", Typeflag: tar.TypeReg, Mode: 0o644,
		Size: int64(status.Len()), ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}, data: status.Bytes()}
	if e := entries["/tmp"]; e != nil {
		e.hdr.Mode = 0o1777
	}
	for name, f := range extra {
		p := "/" + strings.Trim(name, "/")
		entries[p] = fileEntry(p, f)
	}
	img, err := imageOf(entries, cfg, "hardentest: "+strings.Join(packages, " "))
	return img, pkgs, err
}

type entry struct {
	hdr  *tar.Header
	data []byte
}

func fileEntry(p string, f File) *entry {
	h := &tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: f.Mode, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
	if h.Mode == 0 {
		h.Mode = 0o644
	}
	e := &entry{hdr: h}
	switch {
	case f.Dir:
		h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
	case f.Symlink != "":
		h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Symlink, 0o777
	default:
		h.Typeflag, h.Size, e.data = tar.TypeReg, int64(len(f.Data)), f.Data
	}
	return e
}

// FilesImage builds a one-layer image of files with cfg.
func FilesImage(files map[string]File, cfg v1.Config) (v1.Image, error) {
	entries := map[string]*entry{}
	for name, f := range files {
		p := "/" + strings.Trim(name, "/")
		entries[p] = fileEntry(p, f)
	}
	return imageOf(entries, cfg, "hardentest: files")
}

func imageOf(entries map[string]*entry, cfg v1.Config, createdBy string) (v1.Image, error) {
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := entries[n]
		if err := tw.WriteHeader(e.hdr); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		if e.data != nil {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
		History: v1.History{CreatedBy: createdBy, Created: v1.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", hostArch()
	cf.Created = v1.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}

// Installed reports whether every package is installed on this machine.
func Installed(packages ...string) bool {
	for _, p := range packages {
		out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", p).Output()
		if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), " installed") {
			return false
		}
	}
	return true
}

func hostArch() string { return runtime.GOARCH }
