package harden

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"path"
	"strings"
)

// elfInfo is what the loader needs from one ELF object.
type elfInfo struct {
	class   elf.Class
	machine elf.Machine
	interp  string
	needed  []string
	rpath   []string
	runpath []string
}

// maxELFBytes bounds the ELF objects whose dependencies are read; bigger
// files are kept but not followed (no real shared object is this large).
const maxELFBytes = 1 << 30

// readELF parses the dynamic section of the regular file at p. It returns
// nil for files that are not ELF. debug/elf is not hardened against every
// malformed input, so a panic while parsing is an error, not a crash.
func (ix *Index) readELF(p string) (info *elfInfo, err error) {
	e, ok := ix.entries[p]
	if !ok || !e.IsRegular() || e.Size() < 64 || e.Size() > maxELFBytes {
		return nil, nil
	}
	f, err := ix.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var magic [4]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil || string(magic[:]) != elf.ELFMAG {
		return nil, nil
	}
	defer func() {
		if r := recover(); r != nil {
			info, err = nil, fmt.Errorf("%s is a malformed ELF file: %v", p, r)
		}
	}()
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s is a malformed ELF file: %w", p, err)
	}
	defer ef.Close()
	info = &elfInfo{class: ef.Class, machine: ef.Machine}
	for _, prog := range ef.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		if prog.Filesz > 4096 {
			return nil, fmt.Errorf("%s names an interpreter longer than 4096 bytes", p)
		}
		b := make([]byte, prog.Filesz)
		if _, err := prog.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("%s: read PT_INTERP: %w", p, err)
		}
		info.interp = string(bytes.TrimRight(b, "\x00"))
	}
	if ef.Section(".dynamic") == nil && !hasDynamic(ef) {
		return info, nil
	}
	// A static binary has no dynamic section; errors here mean there is
	// none to read.
	info.needed, _ = ef.DynString(elf.DT_NEEDED)
	for _, tag := range []elf.DynTag{elf.DT_RPATH, elf.DT_RUNPATH} {
		vals, _ := ef.DynString(tag)
		var dirs []string
		for _, v := range vals {
			dirs = append(dirs, strings.Split(v, ":")...)
		}
		if tag == elf.DT_RPATH {
			info.rpath = dirs
		} else {
			info.runpath = dirs
		}
	}
	if len(info.needed) > 4096 {
		return nil, fmt.Errorf("%s names more than 4096 libraries", p)
	}
	return info, nil
}

func hasDynamic(ef *elf.File) bool {
	for _, p := range ef.Progs {
		if p.Type == elf.PT_DYNAMIC {
			return true
		}
	}
	return false
}

// expandOrigin substitutes the dynamic string tokens ld.so knows in one
// RPATH/RUNPATH entry: $ORIGIN (the directory of the object), $LIB and
// $PLATFORM.
func expandOrigin(dir, origin string, class elf.Class, machine elf.Machine) string {
	lib := "lib"
	if class == elf.ELFCLASS64 && machine != elf.EM_AARCH64 {
		lib = "lib64"
	}
	r := strings.NewReplacer("${ORIGIN}", origin, "$ORIGIN", origin, "${LIB}", lib, "$LIB", lib,
		"${PLATFORM}", platformOf(machine), "$PLATFORM", platformOf(machine))
	return r.Replace(dir)
}

func platformOf(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "x86_64"
	case elf.EM_AARCH64:
		return "aarch64"
	case elf.EM_386:
		return "i686"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_RISCV:
		return "riscv64"
	case elf.EM_PPC64:
		return "ppc64le"
	case elf.EM_S390:
		return "s390x"
	}
	return "unknown"
}

// multiarch is the Debian multiarch triplet of a machine.
func multiarch(m elf.Machine, class elf.Class) string {
	switch m {
	case elf.EM_X86_64:
		return "x86_64-linux-gnu"
	case elf.EM_AARCH64:
		return "aarch64-linux-gnu"
	case elf.EM_386:
		return "i386-linux-gnu"
	case elf.EM_ARM:
		return "arm-linux-gnueabihf"
	case elf.EM_RISCV:
		return "riscv64-linux-gnu"
	case elf.EM_PPC64:
		return "powerpc64le-linux-gnu"
	case elf.EM_S390:
		return "s390x-linux-gnu"
	}
	return ""
}

// loaderDirs returns the directories ld.so searches after RUNPATH:
// /etc/ld.so.conf (with its includes), musl's /etc/ld-musl-ARCH.path, and
// the default directories including the multiarch ones.
func (ix *Index) loaderDirs(class elf.Class, machine elf.Machine) []string {
	var dirs []string
	seen := map[string]bool{}
	var readConf func(p string, depth int)
	readConf = func(p string, depth int) {
		if depth > 8 || seen["conf:"+p] {
			return
		}
		seen["conf:"+p] = true
		b, err := ix.ReadFile(ix.resolve(p, maxSymlinkHops), 1<<20)
		if err != nil {
			return
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line := sc.Text()
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			if rest, ok := strings.CutPrefix(line, "include"); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "\t")) {
				for _, pat := range strings.Fields(rest) {
					if !strings.HasPrefix(pat, "/") {
						pat = path.Join(path.Dir(p), pat)
					}
					for _, m := range ix.glob(pat, 256) {
						readConf(m, depth+1)
					}
				}
				continue
			}
			for _, d := range strings.FieldsFunc(line, func(r rune) bool { return r == ':' || r == ',' || r == ' ' || r == '\t' }) {
				if strings.HasPrefix(d, "/") {
					dirs = append(dirs, d)
				}
			}
		}
	}
	readConf("/etc/ld.so.conf", 0)
	if b, err := ix.ReadFile(ix.resolve("/etc/ld-musl-"+platformOf(machine)+".path", maxSymlinkHops), 1<<20); err == nil {
		for _, d := range strings.FieldsFunc(string(b), func(r rune) bool { return r == ':' || r == '\n' }) {
			if d = strings.TrimSpace(d); strings.HasPrefix(d, "/") {
				dirs = append(dirs, d)
			}
		}
	}
	if t := multiarch(machine, class); t != "" {
		dirs = append(dirs, "/lib/"+t, "/usr/lib/"+t)
	}
	if class == elf.ELFCLASS64 {
		dirs = append(dirs, "/lib64", "/usr/lib64")
	}
	dirs = append(dirs, "/lib", "/usr/lib", "/usr/local/lib")
	return dirs
}

// glob matches pat (path.Match syntax per component) against the final file
// set, at most max results, sorted.
func (ix *Index) glob(pat string, max int) []string {
	pat = CleanPath(pat)
	var out []string
	for _, p := range ix.Paths() {
		if ok, _ := path.Match(pat, p); ok {
			out = append(out, p)
			if len(out) >= max {
				break
			}
		}
	}
	return out
}

// findLibrary searches dirs for a compatible ELF object named name, the
// way ld.so does: the first file that exists and matches the requesting
// object's class and machine wins. It returns the path as found (symlinks
// not yet resolved) or "".
func (ix *Index) findLibrary(name string, dirs []string, class elf.Class, machine elf.Machine) string {
	for _, d := range dirs {
		if d == "" {
			continue
		}
		cand := CleanPath(path.Join(d, name))
		real := ix.resolve(cand, maxSymlinkHops)
		info, err := ix.readELF(real)
		if err != nil || info == nil {
			continue
		}
		if info.class == class && info.machine == machine {
			return cand
		}
	}
	return ""
}

// shebang returns the interpreter and its optional argument named by a
// "#!" line at the start of the regular file at p.
func (ix *Index) shebang(p string) (interp, arg string, ok bool) {
	b, err := ix.ReadFile(p, 256)
	if err != nil || !bytes.HasPrefix(b, []byte("#!")) {
		return "", "", false
	}
	line := string(b[2:])
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", "", false
	}
	fs := strings.Fields(line)
	interp = fs[0]
	if len(fs) > 1 {
		// The kernel passes the rest of the line as one argument.
		arg = strings.TrimSpace(strings.TrimPrefix(line, interp))
	}
	return interp, arg, true
}

// lookPath finds name on the directories of PATH inside the image: the
// first regular file (after symlinks) with an execute bit wins.
func (ix *Index) lookPath(name, pathEnv string) string {
	if strings.Contains(name, "/") {
		return CleanPath(name)
	}
	for _, d := range strings.Split(pathEnv, ":") {
		if !strings.HasPrefix(d, "/") {
			continue
		}
		cand := CleanPath(path.Join(d, name))
		real := ix.resolve(cand, maxSymlinkHops)
		if e, ok := ix.entries[real]; ok && e.IsRegular() && e.Header.Mode&0o111 != 0 {
			return cand
		}
	}
	return ""
}

// envProgram returns the program /usr/bin/env would run for a shebang
// argument like "python3" or "-S python3 -u".
func envProgram(arg string) string {
	fs := strings.Fields(arg)
	for i := 0; i < len(fs); i++ {
		f := fs[i]
		switch {
		case f == "-S" || f == "--split-string" || f == "-i" || f == "--ignore-environment" || f == "-" || f == "-0":
			continue
		case f == "-u" || f == "--unset" || f == "-C" || f == "--chdir":
			i++
			continue
		case strings.HasPrefix(f, "-"):
			continue
		case strings.Contains(f, "="):
			continue
		}
		return f
	}
	return ""
}
