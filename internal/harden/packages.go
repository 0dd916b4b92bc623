package harden

import (
	"bufio"
	"bytes"
	"path"
	"sort"
	"strings"
)

// Package databases are trimmed to the packages that still have a file in
// the hardened image, so a scanner reading the result reports what is there
// and not what was removed.

const (
	dpkgStatus  = "/var/lib/dpkg/status"
	dpkgStatusD = "/var/lib/dpkg/status.d"
	dpkgInfo    = "/var/lib/dpkg/info"
	apkDB       = "/lib/apk/db/installed"
	// maxPackageDB bounds a package database read into memory.
	maxPackageDB = 64 << 20
)

// PackageChange lists the packages of the original image and the ones the
// hardened image keeps.
type PackageChange struct {
	Kept    []string `json:"kept"`
	Removed []string `json:"removed"`
}

// keptFile says whether an owned path (as a package lists it, possibly
// through a symlinked directory) is a kept non-directory.
func (k *keepSet) keptFile(p string) bool {
	real := k.ix.resolve(CleanPath(p), maxSymlinkHops)
	e, ok := k.ix.entries[real]
	if !ok || e.IsDir() {
		return false
	}
	_, kept := k.reasons[real]
	return kept
}

// packages trims the dpkg and apk databases; it must run after the keep-set
// is closed, and keeps only metadata (no new needs follow from it).
func (k *keepSet) packages(keepMeta bool) PackageChange {
	k.metaOn = keepMeta
	ch := PackageChange{Kept: []string{}, Removed: []string{}}
	k.dpkg(&ch)
	k.dpkgDistroless(&ch)
	k.apk(&ch)
	sort.Strings(ch.Kept)
	sort.Strings(ch.Removed)
	return ch
}

func (k *keepSet) keepMeta(p string, reason string) {
	if !k.metaOn {
		return
	}
	k.add(p, reason)
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		k.add(d, "directory on the way to "+p)
	}
}

func (k *keepSet) dpkg(ch *PackageChange) {
	e, ok := k.ix.entries[dpkgStatus]
	if !ok || !e.IsRegular() || e.Size() > maxPackageDB {
		return
	}
	b, err := k.ix.ReadFile(dpkgStatus, maxPackageDB)
	if err != nil {
		return
	}
	infos := map[string][]string{} // package name (without arch) -> info files
	for p := range k.ix.entries {
		if path.Dir(p) != dpkgInfo {
			continue
		}
		// NAME[:ARCH].EXT; package names may contain dots (python3.11).
		base := path.Base(p)
		i := strings.LastIndexByte(base, '.')
		if i <= 0 {
			continue
		}
		name := base[:i]
		if j := strings.IndexByte(name, ':'); j >= 0 {
			name = name[:j]
		}
		infos[name] = append(infos[name], p)
	}
	var out bytes.Buffer
	for _, st := range readStanzas(b) {
		name := field(st, "Package:")
		if name == "" {
			continue
		}
		keep := false
		for _, info := range infos[name] {
			if !strings.HasSuffix(info, ".list") {
				continue
			}
			lb, err := k.ix.ReadFile(info, maxPackageDB)
			if err != nil {
				continue
			}
			sc := bufio.NewScanner(bytes.NewReader(lb))
			sc.Buffer(make([]byte, 0, 4096), 1<<16)
			for sc.Scan() {
				if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "/") && k.keptFile(line) {
					keep = true
					break
				}
			}
			if keep {
				break
			}
		}
		if !keep {
			ch.Removed = append(ch.Removed, name)
			continue
		}
		ch.Kept = append(ch.Kept, name)
		if out.Len() > 0 {
			out.WriteByte('\n')
		}
		out.Write(st)
		for _, info := range infos[name] {
			k.keepMeta(info, "package metadata of "+name)
		}
	}
	k.keepMeta(dpkgStatus, "package database trimmed to the kept packages")
	if k.metaOn {
		k.synthetic[dpkgStatus] = out.Bytes()
	}
}

// dpkgDistroless handles status.d/NAME stanzas with NAME.md5sums lists
// (distroless images have no dpkg/status and no .list files).
func (k *keepSet) dpkgDistroless(ch *PackageChange) {
	for p, e := range k.ix.entries {
		if path.Dir(p) != dpkgStatusD || !e.IsRegular() || strings.HasSuffix(p, ".md5sums") || e.Size() > maxPackageDB {
			continue
		}
		b, err := k.ix.ReadFile(p, maxPackageDB)
		if err != nil {
			continue
		}
		name := field(b, "Package:")
		if name == "" {
			name = path.Base(p)
		}
		keep := false
		if sums, err := k.ix.ReadFile(p+".md5sums", maxPackageDB); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(sums))
			sc.Buffer(make([]byte, 0, 4096), 1<<16)
			for sc.Scan() {
				fs := strings.Fields(sc.Text())
				if len(fs) == 2 && k.keptFile("/"+fs[1]) {
					keep = true
					break
				}
			}
		}
		if !keep {
			ch.Removed = append(ch.Removed, name)
			continue
		}
		ch.Kept = append(ch.Kept, name)
		k.keepMeta(p, "package metadata of "+name)
		k.keepMeta(p+".md5sums", "package metadata of "+name)
	}
}

func (k *keepSet) apk(ch *PackageChange) {
	e, ok := k.ix.entries[apkDB]
	if !ok || !e.IsRegular() || e.Size() > maxPackageDB {
		return
	}
	b, err := k.ix.ReadFile(apkDB, maxPackageDB)
	if err != nil {
		return
	}
	var out bytes.Buffer
	for _, st := range readStanzas(b) {
		name := field(st, "P:")
		if name == "" {
			continue
		}
		keep, dir := false, "/"
		for _, line := range strings.Split(string(st), "\n") {
			switch {
			case strings.HasPrefix(line, "F:"):
				dir = CleanPath(line[2:])
			case strings.HasPrefix(line, "R:") && !keep:
				keep = k.keptFile(path.Join(dir, line[2:]))
			}
		}
		if !keep {
			ch.Removed = append(ch.Removed, name)
			continue
		}
		ch.Kept = append(ch.Kept, name)
		out.Write(st)
		out.WriteByte('\n')
	}
	k.keepMeta(apkDB, "package database trimmed to the kept packages")
	if k.metaOn {
		k.synthetic[apkDB] = out.Bytes()
	}
}
