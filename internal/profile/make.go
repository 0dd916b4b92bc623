package profile

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/sandbox"
)

// Sandbox is the engine a profile is made in: the sandbox piece's Unpack
// and Run (see LocalSandbox).
type Sandbox struct {
	Unpack func(ctx context.Context, img v1.Image, dir string) error
	Run    func(ctx context.Context, spec sandbox.Spec) (*sandbox.Result, error)
}

// Options are the parameters of one profiling run.
type Options struct {
	Reference  string        // what the user called the image, recorded as is
	Duration   time.Duration // time limit of the run (default DefaultDuration)
	HTTPProbes []sandbox.HTTPProbe
	ProbeCmds  [][]string
	Limits     sandbox.Limits
	TempDir    string // where the image is unpacked (default os.TempDir())
	Version    string // airlock version, recorded in the profile
	Now        func() time.Time
}

// DefaultDuration is how long an image runs when nothing else is asked.
const DefaultDuration = 30 * time.Second

// ErrNotRunnable marks an image with nothing to run (no entrypoint and no
// cmd: a base layer, an artifact; or a program the image does not hold).
// It has no behaviour to profile.
var ErrNotRunnable = errors.New("the image has no entrypoint or cmd to run")

// Make unpacks img into a fresh directory, runs it in sb with o's
// parameters and builds its profile. The directory is removed afterwards.
func Make(ctx context.Context, img v1.Image, sb Sandbox, o Options) (Profile, error) {
	d, err := img.Digest()
	if err != nil {
		return Profile{}, fmt.Errorf("image digest: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Profile{}, fmt.Errorf("image config: %w", err)
	}
	c := cf.Config
	if len(c.Entrypoint)+len(c.Cmd) == 0 {
		return Profile{}, fmt.Errorf("%s: %w", d, ErrNotRunnable)
	}
	if o.Duration <= 0 {
		o.Duration = DefaultDuration
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if err := os.MkdirAll(o.TempDir, 0o700); err != nil {
		return Profile{}, fmt.Errorf("temporary directory: %w", err)
	}
	dir, err := os.MkdirTemp(o.TempDir, "airlock-profile-")
	if err != nil {
		return Profile{}, fmt.Errorf("temporary directory: %w", err)
	}
	defer removeAll(dir)
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return Profile{}, err
	}
	if err := sb.Unpack(ctx, img, rootfs); err != nil {
		return Profile{}, fmt.Errorf("unpack %s: %w", d, err)
	}
	argv := append(append([]string{}, c.Entrypoint...), c.Cmd...)
	if why := startable(rootfs, argv[0], c.WorkingDir, c.Env); why != "" {
		return Profile{}, fmt.Errorf("%s: %w: %s", d, ErrNotRunnable, why)
	}
	spec := sandbox.Spec{
		Rootfs: rootfs, Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User,
		Duration: o.Duration, HTTPProbes: o.HTTPProbes, ProbeCmds: o.ProbeCmds, Limits: o.Limits, Trace: true,
	}
	started := o.Now().UTC()
	res, err := sb.Run(ctx, spec)
	if err != nil {
		return Profile{}, fmt.Errorf("run %s in the sandbox: %w", d, err)
	}
	platform := cf.OS + "/" + cf.Architecture
	if cf.Variant != "" {
		platform += "/" + cf.Variant
	}
	run := Run{
		Entrypoint: nonNil(c.Entrypoint), Cmd: nonNil(c.Cmd), EnvNames: envNames(c.Env), WorkingDir: c.WorkingDir, User: c.User,
		Duration: o.Duration.String(), Mode: res.Mode, Sandbox: o.Version, StartedAt: started.Format(time.RFC3339),
	}
	for _, p := range o.HTTPProbes {
		run.HTTPProbes = append(run.HTTPProbes, FormatHTTPProbe(p))
	}
	for _, pc := range o.ProbeCmds {
		run.ProbeCmds = append(run.ProbeCmds, strings.Join(pc, " "))
	}
	return Build(res, Image{Reference: o.Reference, Digest: d.String(), Platform: platform}, run), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// envNames keeps the names of the image's environment: values may be secrets.
func envNames(env []string) []string {
	out := []string{}
	for _, e := range env {
		k, _, _ := strings.Cut(e, "=")
		out = append(out, k)
	}
	return out
}

// removeAll removes a directory an image was unpacked into, making
// read-only directories writable first (an image may ship them).
func removeAll(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

// ParseHTTPProbe reads "PORT/PATH" (e.g. "8080/healthz"; PATH may be empty).
func ParseHTTPProbe(s string) (sandbox.HTTPProbe, error) {
	port, path, _ := strings.Cut(s, "/")
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return sandbox.HTTPProbe{}, fmt.Errorf("HTTP probe %q: want PORT/PATH with a port from 1 to 65535, e.g. 8080/healthz", s)
	}
	for _, c := range path {
		if c <= ' ' || c == 0x7f {
			return sandbox.HTTPProbe{}, fmt.Errorf("HTTP probe %q: the path may not contain spaces or control characters", s)
		}
	}
	return sandbox.HTTPProbe{Port: n, Path: "/" + path}, nil
}

// FormatHTTPProbe writes a probe as ParseHTTPProbe reads it.
func FormatHTTPProbe(p sandbox.HTTPProbe) string {
	return strconv.Itoa(p.Port) + "/" + strings.TrimPrefix(p.Path, "/")
}

// SplitCommand splits a probe command line into argv the way a shell
// splits words: blanks separate, single and double quotes group, a
// backslash escapes the next character. No expansion happens.
func SplitCommand(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, c := range s {
		switch {
		case escaped:
			cur.WriteRune(c)
			escaped = false
		case c == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, fmt.Errorf("probe command %q: unterminated quote or escape", s)
	}
	if inWord {
		out = append(out, cur.String())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("probe command is empty")
	}
	return out, nil
}

// startable explains why argv0 cannot start in the unpacked image on this
// host, or returns "": it must name a regular file (looked up the way the
// sandbox starts it: relative to the working directory when it has a
// slash, else along the image's PATH) that is an ELF executable for this
// machine or a script whose interpreter is one.
func startable(rootfs, argv0, workdir string, env []string) string {
	return startableDepth(rootfs, argv0, workdir, env, 0)
}

func startableDepth(rootfs, argv0, workdir string, env []string, depth int) string {
	name := printable(argv0, 256)
	if argv0 == "" {
		return "its program name is empty"
	}
	var file string
	if strings.Contains(argv0, "/") {
		if !path.IsAbs(argv0) {
			argv0 = path.Join("/", workdir, argv0)
		}
		file = resolveInRoot(rootfs, argv0)
	} else {
		pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		for _, e := range env {
			if v, ok := strings.CutPrefix(e, "PATH="); ok {
				pathEnv = v
			}
		}
		for _, dir := range strings.Split(pathEnv, ":") {
			if dir == "" {
				continue
			}
			if file = resolveInRoot(rootfs, path.Join("/", dir, argv0)); file != "" {
				break
			}
		}
	}
	if file == "" {
		return fmt.Sprintf("its program %q is not a file in the image", name)
	}
	f, err := os.Open(filepath.Join(rootfs, filepath.FromSlash(file)))
	if err != nil {
		return fmt.Sprintf("its program %q cannot be read: %v", name, err)
	}
	head := make([]byte, 256)
	n, _ := io.ReadFull(f, head)
	f.Close()
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		if m, ok := elfMachine(head); ok && m != hostMachine() && hostMachine() != 0 {
			return fmt.Sprintf("its program %q is built for another machine (ELF machine %d) than this host's %s", name, m, runtime.GOARCH)
		}
		if interp := elfInterpreter(filepath.Join(rootfs, filepath.FromSlash(file))); interp != "" && resolveInRoot(rootfs, interp) == "" {
			return fmt.Sprintf("its program %q needs the dynamic loader %s, which is not in the image", name, printable(interp, 256))
		}
		return ""
	case bytes.HasPrefix(head, []byte("#!")):
		if depth > 2 {
			return fmt.Sprintf("its program %q is a script run by a script run by a script", name)
		}
		line := head[2:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(string(line))
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "/") {
			return fmt.Sprintf("its program %q is a script with no interpreter", name)
		}
		if why := startableDepth(rootfs, fields[0], "/", env, depth+1); why != "" {
			return fmt.Sprintf("its program %q is a script whose interpreter cannot start: %s", name, why)
		}
		return ""
	}
	return fmt.Sprintf("its program %q is neither an ELF executable nor a script", name)
}

// elfInterpreter returns the PT_INTERP path of an ELF file ("" for a
// static one, or one debug/elf cannot read: the sandbox will say).
func elfInterpreter(file string) (interp string) {
	defer func() {
		if recover() != nil { // debug/elf on a hostile file
			interp = ""
		}
	}()
	f, err := elf.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP || p.Filesz == 0 || p.Filesz > 4096 {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return ""
		}
		return strings.TrimRight(string(b), "\x00")
	}
	return ""
}

// elfMachine reads e_machine from an ELF header.
func elfMachine(h []byte) (uint16, bool) {
	if len(h) < 20 {
		return 0, false
	}
	if h[5] == 2 { // big endian
		return binary.BigEndian.Uint16(h[18:20]), true
	}
	return binary.LittleEndian.Uint16(h[18:20]), true
}

// hostMachine is this host's ELF machine (0 when not known: not checked).
func hostMachine() uint16 {
	switch runtime.GOARCH {
	case "amd64":
		return 62
	case "arm64":
		return 183
	case "386":
		return 3
	case "arm":
		return 40
	case "riscv64":
		return 243
	case "ppc64le", "ppc64":
		return 21
	case "s390x":
		return 22
	}
	return 0
}

// resolveInRoot resolves p inside root, following symbolic links as the
// image sees them (an absolute target starts again at root; ".." stops at
// root), and returns the path inside root of the regular file it ends at,
// or "". Nothing outside root is ever looked at.
func resolveInRoot(root, p string) string {
	parts := splitPath(p)
	cur, links := "/", 0
	for i := 0; i < len(parts); i++ {
		next := path.Join(cur, parts[i])
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(next)))
		if err != nil {
			return ""
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if links++; links > 40 {
				return ""
			}
			t, err := os.Readlink(filepath.Join(root, filepath.FromSlash(next)))
			if err != nil {
				return ""
			}
			if !path.IsAbs(t) {
				t = path.Join(cur, t)
			}
			parts = append(splitPath(t), parts[i+1:]...)
			cur, i = "/", -1
			continue
		}
		if i == len(parts)-1 {
			if fi.Mode().IsRegular() {
				return next
			}
			return ""
		}
		if !fi.IsDir() {
			return ""
		}
		cur = next
	}
	return ""
}

func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(path.Clean("/"+p), "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
