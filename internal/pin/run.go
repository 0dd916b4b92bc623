package pin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/server"
)

// Mode is what a run does with what it finds.
type Mode string

const (
	// ModePreview shows the diff --write would make and every finding; nothing is written.
	ModePreview Mode = "preview"
	// ModeDiff prints only the unified diff.
	ModeDiff Mode = "diff"
	// ModeWrite rewrites the files (and updates the lock file).
	ModeWrite Mode = "write"
	// ModeCheck lists every reference that is not a private, approved,
	// digest-pinned image, and remote scripts run unverified.
	ModeCheck Mode = "check"
)

// Status is the verdict on one reference.
type Status string

const (
	StatusPinned     Status = "pinned"        // a private, approved, digest-pinned image
	StatusUnpinned   Status = "unpinned"      // an approved digest exists; Suggestion is the pinned form
	StatusRewritten  Status = "rewritten"     // rewritten to Suggestion by this run
	StatusManual     Status = "manual"        // approved, but cannot be rewritten in place: write Suggestion
	StatusUnapproved Status = "unapproved"    // nothing approved to pin to: Message says why
	StatusScript     Status = "remote-script" // a remote script run unverified
	StatusNote       Status = "note"          // left alone on purpose (templated…)
	StatusIgnored    Status = "ignored"       // marked airlock:ignore
)

// failing reports whether a status fails --check (and --write, if it remains).
func (s Status) failing() bool {
	return s == StatusUnpinned || s == StatusManual || s == StatusUnapproved || s == StatusScript
}

// Finding is the verdict on one reference in one file.
type Finding struct {
	Path       string `json:"path"`
	Line       int    `json:"line"`
	Col        int    `json:"col"`
	Format     string `json:"format"`
	Kind       Kind   `json:"kind"`
	Reference  string `json:"reference"`
	Platform   string `json:"platform,omitempty"`
	Via        string `json:"via,omitempty"`
	Status     Status `json:"status"`
	Suggestion string `json:"suggestion,omitempty"`
	Digest     string `json:"digest,omitempty"`
	State      string `json:"state,omitempty"`
	Message    string `json:"message,omitempty"`
}

// FileError is a file that could not be read or parsed; it is left unchanged.
type FileError struct {
	Path    string `json:"path"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

func (e FileError) String() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Message)
	}
	return e.Path + ": " + e.Message
}

// Change is a file whose content a run changes (or would change).
type Change struct {
	Path     string
	Old, New []byte
}

// Report is what a run found and did.
type Report struct {
	Mode     Mode        `json:"mode"`
	Server   string      `json:"server,omitempty"`
	Offline  bool        `json:"offline"` // resolved from the lock file alone
	Lock     string      `json:"lock,omitempty"`
	Files    int         `json:"files"` // files some finder read
	Changed  []string    `json:"changed"`
	Findings []Finding   `json:"findings"`
	Errors   []FileError `json:"errors"`
	Warnings []string    `json:"warnings,omitempty"`
	Changes  []Change    `json:"-"`
}

// Failed reports whether any finding remains that is not a private,
// approved, digest-pinned image (notes and ignored references aside).
func (r *Report) Failed() bool {
	for _, f := range r.Findings {
		if f.Status.failing() {
			return true
		}
	}
	return false
}

// Count returns how many findings have status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, f := range r.Findings {
		if f.Status == s {
			n++
		}
	}
	return n
}

// Options configure a run.
type Options struct {
	Paths    []string // files and directories (default ".")
	Mode     Mode
	Resolver Resolver // the server; nil with Offline
	Server   string   // recorded in the lock file
	LockPath string   // lock file to read (offline) and update (--write)
	Offline  bool     // never ask the server: the lock file alone
	Finders  []Finder // default Finders()
	Now      func() time.Time
}

// maxFileSize bounds what is read: manifests and Dockerfiles are small.
const maxFileSize = 16 << 20

// ErrUnreachable is returned when the server cannot be reached and there
// is no lock file to fall back to.
var ErrUnreachable = errors.New("airlock server unreachable")

type scanned struct {
	path    string
	content []byte
	refs    []Ref
	formats []string // finder of each ref
	read    bool     // a finder wanted the file
	err     *FileError
}

// Run finds, resolves and (in ModeWrite) rewrites every image reference
// under opts.Paths. Malformed files are reported in Report.Errors and left
// unchanged; the error return is for the resolver failing as a whole.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if len(opts.Paths) == 0 {
		opts.Paths = []string{"."}
	}
	if opts.Finders == nil {
		opts.Finders = Finders()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Mode == "" {
		opts.Mode = ModePreview
	}
	rep := &Report{Mode: opts.Mode, Server: opts.Server, Lock: opts.LockPath, Changed: []string{}, Findings: []Finding{}, Errors: []FileError{}}
	files, walkNotes, walkErrs := collect(opts.Paths)
	rep.Findings = append(rep.Findings, walkNotes...)
	rep.Errors = append(rep.Errors, walkErrs...)

	results := scanAll(files, opts.Finders)
	nrefs := 0
	for _, s := range results {
		nrefs += len(s.refs)
	}
	rep.Findings = slices.Grow(rep.Findings, nrefs)
	// one batch of unique references for the whole run
	var items []server.ResolveItem
	seen := map[string]bool{}
	for _, s := range results {
		if s.read || s.err != nil {
			rep.Files++
		}
		if s.err != nil {
			rep.Errors = append(rep.Errors, *s.err)
			continue
		}
		for _, r := range s.refs {
			if r.Kind != KindImage && r.Kind != KindSplit {
				continue
			}
			k := lockKey(r.Text, r.Platform)
			if !seen[k] {
				seen[k] = true
				items = append(items, server.ResolveItem{Reference: r.Text, Platform: r.Platform})
			}
		}
	}
	resolved, err := resolveAll(ctx, opts, rep, items)
	if err != nil {
		return rep, err
	}

	current := map[string]bool{}
	var writes []write
	for _, s := range results {
		if s.err != nil {
			continue
		}
		var es []Edit
		type pending struct {
			finding int
			edits   []Edit
		}
		var fixes []pending
		ls := newLines(s.content)
		for i, r := range s.refs {
			f := Finding{Path: s.path, Line: r.Line, Col: r.Col, Format: s.formats[i], Kind: r.Kind, Reference: r.Text,
				Platform: r.Platform, Via: r.Via}
			var fe []Edit
			switch {
			case ignored(ls, r.Line):
				f.Status, f.Message = StatusIgnored, "marked airlock:ignore"
			case r.Kind == KindNote:
				f.Status, f.Message = StatusNote, r.Note
			case r.Kind == KindScript:
				f.Status, f.Message = StatusScript, r.Note
			default:
				res := resolved[lockKey(r.Text, r.Platform)]
				f.State = string(res.State)
				t, ok := targetFor(r.Text, res)
				if !ok {
					f.Status = StatusUnapproved
					f.Message = res.Error
					if f.Message == "" {
						f.Message = "no approved digest"
					}
					current[r.Text] = true
					break
				}
				f.Digest = t.digest
				f.Suggestion = t.String()
				e, err := edits(r, t)
				switch {
				case err != nil:
					f.Status, f.Message = StatusManual, err.Error()
					current[r.Text] = true
				case len(e) == 0:
					f.Status = StatusPinned
					current[r.Text] = true
				default:
					f.Status = StatusUnpinned
					fe = e
					current[f.Suggestion] = true
				}
			}
			rep.Findings = append(rep.Findings, f)
			if len(fe) > 0 {
				fixes = append(fixes, pending{len(rep.Findings) - 1, fe})
				es = append(es, fe...)
			}
		}
		if len(es) == 0 {
			continue
		}
		next, err := apply(s.content, dedupeEdits(es))
		if err != nil {
			rep.Errors = append(rep.Errors, FileError{Path: s.path, Message: "not rewritten: " + err.Error()})
			continue
		}
		if bytes.Equal(next, s.content) {
			continue
		}
		rep.Changes = append(rep.Changes, Change{Path: s.path, Old: s.content, New: next})
		rep.Changed = append(rep.Changed, s.path)
		if opts.Mode == ModeWrite {
			var idx []int
			for _, p := range fixes {
				idx = append(idx, p.finding)
			}
			writes = append(writes, write{path: s.path, old: s.content, data: next, findings: idx})
		}
	}
	for i, err := range writeAll(writes) {
		if err != nil {
			rep.Errors = append(rep.Errors, FileError{Path: writes[i].path, Message: "cannot write: " + err.Error()})
			continue
		}
		for _, f := range writes[i].findings {
			rep.Findings[f].Status = StatusRewritten
		}
	}
	sort.SliceStable(rep.Findings, func(i, j int) bool {
		a, b := rep.Findings[i], rep.Findings[j]
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	sort.Slice(rep.Errors, func(i, j int) bool { return rep.Errors[i].Path < rep.Errors[j].Path })
	if opts.Mode == ModeWrite && opts.LockPath != "" && !rep.Offline {
		lock, err := ReadLock(opts.LockPath)
		if err != nil {
			return rep, err
		}
		var list []server.Resolution
		for _, it := range items {
			list = append(list, resolved[lockKey(it.Reference, it.Platform)])
		}
		lock.update(list, opts.Server, opts.Now(), current)
		if err := lock.Write(opts.LockPath); err != nil {
			return rep, fmt.Errorf("write lock file: %w", err)
		}
	}
	return rep, nil
}

// dedupeEdits drops repeated identical edits (one anchor used twice).
func dedupeEdits(es []Edit) []Edit {
	seen := map[Edit]bool{}
	out := es[:0]
	for _, e := range es {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

func ignored(ls *lines, line int) bool {
	if strings.Contains(ls.lineText(line), "airlock:ignore") {
		return true
	}
	prev := strings.TrimSpace(ls.lineText(line - 1))
	return strings.HasPrefix(prev, "#") && strings.Contains(prev, "airlock:ignore")
}

// resolveAll asks the server (or the lock file) about every reference.
func resolveAll(ctx context.Context, opts Options, rep *Report, items []server.ResolveItem) (map[string]server.Resolution, error) {
	out := make(map[string]server.Resolution, len(items))
	if len(items) == 0 {
		return out, nil
	}
	var lock *Lock
	if opts.LockPath != "" {
		l, err := ReadLock(opts.LockPath)
		if err != nil {
			return nil, err
		}
		lock = l
	}
	var r Resolver = lock
	online := !opts.Offline && opts.Resolver != nil
	if online {
		r = opts.Resolver
	} else if lock == nil {
		return nil, fmt.Errorf("offline without a lock file: give --lock FILE")
	} else {
		rep.Offline = true
	}
	res, err := resolveChunks(ctx, r, items)
	var ue *url.Error
	if err != nil && errors.As(err, &ue) && online {
		if lock == nil {
			return nil, fmt.Errorf("%w: %v (give --lock FILE to work offline)", ErrUnreachable, err)
		}
		rep.Offline = true
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("server unreachable (%v): using the lock file %s alone", err, opts.LockPath))
		res, err = lock.Resolve(ctx, items)
	}
	if err != nil {
		return nil, err
	}
	for _, x := range res {
		out[lockKey(x.Reference, x.Platform)] = x
	}
	return out, nil
}

// maxBatch matches the server's limit per resolve request.
const maxBatch = 10000

func resolveChunks(ctx context.Context, r Resolver, items []server.ResolveItem) ([]server.Resolution, error) {
	var out []server.Resolution
	for len(items) > 0 {
		n := min(len(items), maxBatch)
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		res, err := r.Resolve(ctx, items[:n])
		cancel()
		if err != nil {
			return nil, err
		}
		if len(res) != n {
			return nil, fmt.Errorf("the server answered %d resolutions for %d references", len(res), n)
		}
		out = append(out, res...)
		items = items[n:]
	}
	return out, nil
}

// write is a file to rewrite and the findings it fixes.
type write struct {
	path     string
	old      []byte
	data     []byte
	findings []int
}

// writeAll rewrites files on every core.
func writeAll(ws []write) []error {
	errs := make([]error, len(ws))
	parallel(len(ws), func(int) func(i int) {
		return func(i int) { errs[i] = rewriteFile(ws[i].path, ws[i].old, ws[i].data) }
	})
	return errs
}

// parallel calls the function work(w) returns for worker w with every index
// below n, on as many workers as there are cores; workers take the next
// index from a shared counter, so no goroutine waits on another.
func parallel(n int, work func(w int) func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		do := work(w)
		run := func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				do(i)
			}
		}
		if w == workers-1 {
			run() // the calling goroutine is a worker too
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			run()
		}()
	}
	wg.Wait()
}

// readScratch is the per-worker buffer a file is first read into: most
// manifests fit, so most files take one read.
const readScratch = 64 << 10

// tooLargeError is a file above maxFileSize.
type tooLargeError struct {
	size  int64
	limit int
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("%d bytes, larger than the %d MiB pin reads: left unchanged", e.size, e.limit>>20)
}

// scanAll reads and parses files on every core, keeping their order.
func scanAll(files []string, finders []Finder) []scanned {
	out := make([]scanned, len(files))
	parallel(len(files), func(int) func(i int) {
		scratch := make([]byte, readScratch)
		return func(i int) { out[i] = scanFile(files[i], finders, scratch) }
	})
	return out
}

func scanFile(path string, finders []Finder, scratch []byte) (s scanned) {
	s.path = path
	defer func() {
		if p := recover(); p != nil {
			s.refs, s.formats = nil, nil
			s.err = &FileError{Path: path, Message: fmt.Sprintf("internal error reading this file (left unchanged): %v", p)}
		}
	}()
	var matched []Finder
	for _, f := range finders {
		if f.Match(path, nil) || (needsContent(f) && isYAMLPath(path, true)) {
			matched = append(matched, f)
		}
	}
	if len(matched) == 0 {
		return s
	}
	content, binary, err := readFile(path, scratch, maxFileSize)
	if err != nil {
		s.err = &FileError{Path: path, Message: err.Error()}
		return s
	}
	if binary {
		return s
	}
	s.content = content
	s.read = true
	type span struct {
		start, end int
		kind       Kind
	}
	seen := map[span]bool{}
	var parsedFile *yamlFile
	var parseErr error
	parsed := false
	for _, f := range matched {
		if !f.Match(path, content) {
			continue
		}
		var refs []Ref
		var err error
		if yf, ok := f.(yamlFinder); ok {
			if !parsed {
				parsedFile, parseErr = parseYAML(content)
				parsed = true
			}
			refs, err = findYAML(content, parsedFile, parseErr, yf)
		} else {
			refs, err = f.Find(content)
		}
		if err != nil {
			var pe *ParseError
			fe := &FileError{Path: path, Message: err.Error()}
			if errors.As(err, &pe) {
				fe.Line, fe.Message = pe.Line, pe.Msg
			}
			s.err, s.refs, s.formats = fe, nil, nil
			return s
		}
		s.refs, s.formats = slices.Grow(s.refs, len(refs)), slices.Grow(s.formats, len(refs))
		for _, r := range refs {
			k := span{r.Start, r.End, r.Kind}
			if r.Kind == KindScript || r.Kind == KindNote || r.Kind == KindSplit {
				k.end = r.Line // a script or note is one per place
			}
			if seen[k] {
				continue
			}
			seen[k] = true
			s.refs = append(s.refs, r)
			s.formats = append(s.formats, f.Name())
		}
	}
	return s
}

// needsContent is true for finders that look at content, not only names.
func needsContent(f Finder) bool {
	switch f.(type) {
	case Kubernetes, Tekton:
		return true
	}
	return false
}

var skipDirs = map[string]bool{".git": true, "vendor": true, "node_modules": true, ".hg": true, ".svn": true}

// collect lists the files under paths: directories are walked without
// .git, vendor and node_modules; symbolic links are not followed (one that
// leads out of the tree is noted).
func collect(paths []string) (files []string, notes []Finding, errs []FileError) {
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			files = append(files, p)
		}
	}
	for _, root := range paths {
		st, err := os.Stat(root)
		if err != nil {
			errs = append(errs, FileError{Path: root, Message: err.Error()})
			continue
		}
		if !st.IsDir() {
			add(root)
			continue
		}
		realRoot, err := filepath.EvalSymlinks(root)
		if err != nil {
			realRoot = root
		}
		realRoot, _ = filepath.Abs(realRoot)
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				errs = append(errs, FileError{Path: p, Message: err.Error()})
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				if p != root && skipDirs[d.Name()] {
					return fs.SkipDir
				}
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				target, err := filepath.EvalSymlinks(p)
				if err == nil {
					target, _ = filepath.Abs(target)
				}
				if err != nil || !strings.HasPrefix(target, realRoot+string(filepath.Separator)) {
					notes = append(notes, Finding{Path: p, Kind: KindNote, Status: StatusNote, Format: "walk",
						Message: "symbolic link out of the tree (or dangling): not followed"})
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			add(p)
			return nil
		})
	}
	sort.Strings(files)
	return files, notes, errs
}
