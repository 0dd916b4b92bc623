package harden

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/airlock-dev/airlock/internal/profile"
)

// Defaults are the files kept whatever the profile saw, each named so that
// a user can turn it off (--no-default NAME).
var Defaults = []Default{
	{"ca-certificates", "TLS trust store", []string{"/etc/ssl/certs/**", "/etc/ssl/cert.pem", "/etc/ca-certificates/**", "/etc/ca-certificates.conf",
		"/usr/share/ca-certificates/**", "/etc/pki/tls/certs/**", "/etc/pki/tls/cert.pem", "/etc/pki/ca-trust/**", "/usr/local/share/ca-certificates/**"}},
	{"zoneinfo", "time zone data", []string{"/usr/share/zoneinfo/**", "/etc/localtime", "/etc/timezone"}},
	{"passwd", "user database", []string{"/etc/passwd"}},
	{"group", "group database", []string{"/etc/group"}},
	{"nsswitch", "name service switch", []string{"/etc/nsswitch.conf"}},
	{"hosts", "static host names", []string{"/etc/hosts", "/etc/host.conf", "/etc/hostname"}},
	{"resolv", "resolver configuration", []string{"/etc/resolv.conf"}},
	{"os-release", "operating system identification", []string{"/etc/os-release", "/usr/lib/os-release", "/etc/debian_version",
		"/etc/alpine-release", "/etc/lsb-release", "/etc/redhat-release", "/etc/system-release"}},
	{"loader-config", "dynamic loader configuration", []string{"/etc/ld.so.conf", "/etc/ld.so.conf.d/**", "/etc/ld.so.cache", "/etc/ld-musl-*.path"}},
	{"package-metadata", "package database trimmed to the kept packages", nil},
	{"tmp", "scratch directories (the directories only, not what is in them)", nil},
}

// scratchDirs are kept as empty directories by the "tmp" default: programs
// expect to create files there, which a profile shows as created, not read.
var scratchDirs = []string{"/tmp", "/var/tmp", "/run", "/var/run"}

// Default is one group of files kept by default.
type Default struct {
	Name  string
	What  string
	Globs []string
}

// DefaultNames lists the names --no-default accepts.
func DefaultNames() []string {
	out := make([]string, len(Defaults))
	for i, d := range Defaults {
		out[i] = d.Name
	}
	return out
}

// KeepRule is one declared keep-list entry and where it was declared.
type KeepRule struct {
	Glob   string `json:"glob"`
	Source string `json:"source"` // "flag", "label", "config"
}

// KeepLabel is the image label whose value (globs separated by commas or
// white space) is added to the keep-list.
const KeepLabel = "dev.airlock.harden.keep"

// ParseKeepLabel splits a KeepLabel value into keep rules.
func ParseKeepLabel(v string) []KeepRule {
	var out []KeepRule
	for _, g := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		out = append(out, KeepRule{Glob: g, Source: "label"})
	}
	return out
}

// ValidateGlob says whether g is a keep-list glob: absolute, and valid
// path.Match syntax in every component ("**" as the last component means
// everything below).
func ValidateGlob(g string) error {
	if !strings.HasPrefix(g, "/") {
		return fmt.Errorf("keep glob %q is not absolute; write it from the image's root, like /etc/app/**", g)
	}
	if len(g) > 4096 {
		return fmt.Errorf("keep glob is longer than 4096 bytes")
	}
	if _, err := path.Match(strings.TrimSuffix(g, "/**"), "/"); err != nil {
		return fmt.Errorf("keep glob %q is malformed: %v", g, err)
	}
	return nil
}

// matchGlob reports whether p is matched by g: path.Match on the whole path,
// or below a directory the glob names ("/a/**" and "/a" both keep /a/b/c).
func matchGlob(g, p string) bool {
	g = strings.TrimSuffix(g, "/**")
	g = path.Clean(g)
	if ok, _ := path.Match(g, p); ok {
		return true
	}
	// Match the glob against each ancestor of p.
	for d := path.Dir(p); ; d = path.Dir(d) {
		if ok, _ := path.Match(g, d); ok && d != "/" {
			return true
		}
		if d == "/" {
			return false
		}
	}
}

// keepSet is the set of paths kept, each with its reasons.
type keepSet struct {
	ix      *Index
	reasons map[string][]string
	todo    []string
	elf     map[string]*elfInfo
	pathEnv string
	ldPath  []string
	notes   []string
	// synthetic holds new contents for kept paths (the trimmed package
	// databases).
	synthetic map[string][]byte
	metaOn    bool
	// loader caches the loader's search directories per ELF class and
	// machine (they come from files of the image, read once).
	loader map[[2]int][]string
}

func newKeepSet(ix *Index, env []string) *keepSet {
	k := &keepSet{ix: ix, reasons: map[string][]string{}, elf: map[string]*elfInfo{}, synthetic: map[string][]byte{},
		pathEnv: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			k.pathEnv = v
		}
		if v, ok := strings.CutPrefix(kv, "LD_LIBRARY_PATH="); ok {
			k.ldPath = strings.Split(v, ":")
		}
	}
	return k
}

// add keeps p (clean, inside the image) for reason; paths that do not exist
// in the image are ignored. Reasons are deduplicated; a path is followed for
// its needs once.
func (k *keepSet) add(p, reason string) {
	p = CleanPath(p)
	if _, ok := k.ix.entries[p]; !ok {
		return
	}
	rs, seen := k.reasons[p]
	for _, r := range rs {
		if r == reason {
			return
		}
	}
	if len(rs) < 16 {
		k.reasons[p] = append(rs, reason)
	}
	if !seen {
		k.todo = append(k.todo, p)
	}
}

// addResolved keeps p after resolving every symlink on its way: the links,
// the target and the directories above them.
func (k *keepSet) addResolved(p, reason string) string {
	real, links := k.ix.Resolve(p, maxSymlinkHops)
	for _, l := range links {
		k.add(l, reason+" (symbolic link on the way)")
	}
	k.add(real, reason)
	return real
}

// close follows the needs of everything kept until nothing new is added.
func (k *keepSet) close() {
	for len(k.todo) > 0 {
		p := k.todo[0]
		k.todo = k.todo[1:]
		k.needs(p)
	}
}

func (k *keepSet) needs(p string) {
	e := k.ix.entries[p]
	// Directories on the way.
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		k.add(d, "directory on the way to "+p)
	}
	switch {
	case e.IsSymlink():
		t := e.Header.Linkname
		if !strings.HasPrefix(t, "/") {
			t = path.Join(path.Dir(p), t)
		}
		k.addResolved(t, "target of symbolic link "+p)
	case e.IsRegular():
		k.elfNeeds(p)
		if interp, arg, ok := k.ix.shebang(p); ok {
			ip := k.addResolved(interp, "script interpreter of "+p)
			if path.Base(interp) == "env" && arg != "" {
				if prog := envProgram(arg); prog != "" {
					if found := k.ix.lookPath(prog, k.pathEnv); found != "" {
						k.addResolved(found, "program "+ip+" runs for "+p)
					} else {
						k.notes = append(k.notes, fmt.Sprintf("%s runs %q through env, which is not on the image's PATH", p, prog))
					}
				}
			}
		}
	}
}

func (k *keepSet) elfInfo(p string) *elfInfo {
	if info, ok := k.elf[p]; ok {
		return info
	}
	info, err := k.ix.readELF(p)
	if err != nil {
		k.notes = append(k.notes, err.Error())
	}
	k.elf[p] = info
	return info
}

func (k *keepSet) elfNeeds(p string) {
	info := k.elfInfo(p)
	if info == nil {
		return
	}
	if info.interp != "" {
		k.addResolved(info.interp, "ELF interpreter of "+p)
	}
	if len(info.needed) == 0 {
		return
	}
	origin := path.Dir(p)
	var dirs []string
	if len(info.runpath) == 0 {
		for _, d := range info.rpath {
			dirs = append(dirs, expandOrigin(d, origin, info.class, info.machine))
		}
	}
	dirs = append(dirs, k.ldPath...)
	for _, d := range info.runpath {
		dirs = append(dirs, expandOrigin(d, origin, info.class, info.machine))
	}
	key := [2]int{int(info.class), int(info.machine)}
	if k.loader == nil {
		k.loader = map[[2]int][]string{}
	}
	ld, ok := k.loader[key]
	if !ok {
		ld = k.ix.loaderDirs(info.class, info.machine)
		k.loader[key] = ld
	}
	dirs = append(dirs, ld...)
	for _, name := range info.needed {
		if strings.Contains(name, "/") {
			k.addResolved(CleanPath(name), "library needed by "+p)
			continue
		}
		found := k.ix.findLibrary(name, dirs, info.class, info.machine)
		if found == "" {
			k.notes = append(k.notes, fmt.Sprintf("%s needs %s, which the loader would not find in the image", p, name))
			continue
		}
		k.addResolved(found, "library "+name+" needed by "+p)
	}
}

// fromProfile keeps everything the profile saw used.
func (k *keepSet) fromProfile(pr *profile.Profile) {
	for _, x := range pr.Executables {
		k.addResolved(x.Path, "executed")
	}
	for _, set := range []struct {
		paths  []profile.Path
		reason string
	}{{pr.Files.Read, "read"}, {pr.Files.Written, "written"}, {pr.Files.Chmod, "chmod"}, {pr.Files.Deleted, "deleted"}} {
		for _, f := range set.paths {
			if f.Pattern {
				k.addGlob(f.Path, set.reason+" (pattern "+f.Path+")")
				continue
			}
			k.addResolved(f.Path, set.reason)
		}
	}
	// A file that was created (or looked for and missing) needs the
	// directory it was created in.
	for _, set := range []struct {
		paths  []profile.Path
		reason string
	}{{pr.Files.Created, "created"}, {pr.Files.Missing, "looked for"}} {
		for _, f := range set.paths {
			if f.Pattern {
				continue
			}
			p := CleanPath(f.Path)
			if _, ok := k.ix.entries[p]; ok {
				k.addResolved(p, set.reason)
			}
			dir := path.Dir(p)
			k.addResolved(dir, "directory of a file "+set.reason+" ("+p+")")
		}
	}
}

// addGlob keeps every path g matches.
func (k *keepSet) addGlob(g, reason string) int {
	n := 0
	for p := range k.ix.entries {
		if matchGlob(g, p) {
			k.add(p, reason)
			n++
		}
	}
	return n
}

// sortedPaths returns the kept paths in order.
func (k *keepSet) sortedPaths() []string {
	out := make([]string, 0, len(k.reasons))
	for p := range k.reasons {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// readStanzas splits a dpkg status or apk installed database into
// blank-line separated stanzas.
func readStanzas(b []byte) [][]byte {
	var out [][]byte
	var cur bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			if cur.Len() > 0 {
				out = append(out, append([]byte(nil), cur.Bytes()...))
				cur.Reset()
			}
			continue
		}
		cur.Write(line)
		cur.WriteByte('\n')
	}
	if cur.Len() > 0 {
		out = append(out, append([]byte(nil), cur.Bytes()...))
	}
	return out
}

// field returns the value of the first "Key: value" (dpkg) or "K:value"
// (apk) line of a stanza.
func field(stanza []byte, key string) string {
	for _, line := range strings.Split(string(stanza), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
