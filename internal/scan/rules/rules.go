// Package rules holds Airlock's content rules as data — YAML files with an
// id, severity, description and match — and matches all of them against a
// file in one pass: literals through one Aho–Corasick automaton, regular
// expressions only on the lines a literal of their rule hit (or, for rules
// without literals, on small files). Users add their own with --rules DIR.
//
// The embedded miners/ and names/ folders are data derived from third-party
// sources; each keeps its NOTICE.md and licence.
package rules

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"go.yaml.in/yaml/v3"
)

// Builtin holds the rules and data shipped with Airlock.
//
//go:embed *.yaml miners names
var Builtin embed.FS

// Rule is one content rule.
type Rule struct {
	ID          string   `yaml:"id" json:"id"`
	Type        string   `yaml:"type" json:"type"` // malware, secret, misconfig
	Severity    string   `yaml:"severity" json:"severity"`
	Title       string   `yaml:"title" json:"title"`
	Description string   `yaml:"description" json:"description,omitempty"`
	Paths       []string `yaml:"paths" json:"paths,omitempty"`     // globs the file must match (default: every file)
	Exclude     []string `yaml:"exclude" json:"exclude,omitempty"` // globs that exempt a file
	ELF         bool     `yaml:"elf" json:"elf,omitempty"`         // only ELF executables
	Scripts     bool     `yaml:"scripts" json:"scripts,omitempty"` // never ELF executables (their string tables join unrelated words)
	Config      bool     `yaml:"config" json:"config,omitempty"`   // also match the image config (ENV, entrypoint, CMD, history)
	Redact      bool     `yaml:"redact" json:"redact,omitempty"`   // the evidence is a secret: never print it whole
	Match       Match    `yaml:"match" json:"match"`
	MaxSize     int64    `yaml:"maxSize" json:"maxSize,omitempty"` // files larger are skipped by a regex without literals (default 1 MiB)
	Source      string   `yaml:"-" json:"source,omitempty"`        // file the rule came from
}

// Match says what a rule looks for.
type Match struct {
	Any    []string `yaml:"any" json:"any,omitempty"`       // at least one of these literals
	All    []string `yaml:"all" json:"all,omitempty"`       // every one of these literals, anywhere in the file
	Regex  string   `yaml:"regex" json:"regex,omitempty"`   // RE2, per line; with Any, only on lines an Any literal hit
	NoCase bool     `yaml:"nocase" json:"nocase,omitempty"` // literals match case-insensitively
}

// File is the YAML document: a list of rules.
type File struct {
	Rules []Rule `yaml:"rules"`
}

var severities = map[string]bool{"critical": true, "high": true, "medium": true, "low": true, "info": true}
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Parse reads one rules document and checks every rule.
func Parse(name string, data []byte) ([]Rule, error) {
	if len(data) > 4<<20 {
		return nil, fmt.Errorf("%s: rules file over 4 MiB", name)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for i := range f.Rules {
		r := &f.Rules[i]
		r.Source = name
		r.Severity = strings.ToLower(r.Severity)
		if err := r.check(); err != nil {
			return nil, fmt.Errorf("%s: rule %d (%s): %w", name, i+1, r.ID, err)
		}
	}
	return f.Rules, nil
}

func (r *Rule) check() error {
	if !idRE.MatchString(r.ID) {
		return errors.New("id must be 1-64 letters, digits, '.', '_' or '-'")
	}
	switch r.Type {
	case "malware", "secret", "misconfig":
	default:
		return fmt.Errorf("type %q: want malware, secret or misconfig", r.Type)
	}
	if !severities[r.Severity] {
		return fmt.Errorf("severity %q: want critical, high, medium, low or info", r.Severity)
	}
	if r.Title == "" {
		return errors.New("title is required")
	}
	if r.ELF && r.Scripts {
		return errors.New("elf and scripts exclude each other")
	}
	if len(r.Match.Any) == 0 && len(r.Match.All) == 0 && r.Match.Regex == "" {
		return errors.New("match needs any, all or regex")
	}
	for _, l := range append(append([]string{}, r.Match.Any...), r.Match.All...) {
		if len(l) < 3 || len(l) > 256 || strings.ContainsAny(l, "\n") {
			return fmt.Errorf("literal %q: 3-256 bytes, no newline", l)
		}
	}
	if len(r.Match.Any)+len(r.Match.All) > 10000 {
		return errors.New("more than 10000 literals")
	}
	if r.Match.Regex != "" {
		if len(r.Match.Regex) > 4096 {
			return errors.New("regex over 4096 bytes")
		}
		if _, err := regexp.Compile(r.Match.Regex); err != nil {
			return fmt.Errorf("regex: %w", err)
		}
	}
	for _, g := range append(append([]string{}, r.Paths...), r.Exclude...) {
		if _, err := path.Match(strings.ReplaceAll(g, "**", "*"), "/"); err != nil || !strings.HasPrefix(g, "/") && !strings.HasPrefix(g, "*") {
			return fmt.Errorf("glob %q: must be absolute (or start with *) and valid", g)
		}
	}
	return nil
}

// Load reads the builtin rules and every *.yaml file in dirs (later rules
// with the same id replace earlier ones, so a user can retune a builtin).
func Load(dirs ...string) ([]Rule, error) {
	byID := map[string]int{}
	var out []Rule
	add := func(rs []Rule) {
		for _, r := range rs {
			if i, ok := byID[r.ID]; ok {
				out[i] = r
				continue
			}
			byID[r.ID] = len(out)
			out = append(out, r)
		}
	}
	names, err := fs.Glob(Builtin, "*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := Builtin.ReadFile(n)
		if err != nil {
			return nil, err
		}
		rs, err := Parse("builtin:"+n, b)
		if err != nil {
			return nil, err
		}
		add(rs)
	}
	miner, err := MinerRules()
	if err != nil {
		return nil, err
	}
	add(miner)
	for _, d := range dirs {
		files, err := filepath.Glob(filepath.Join(d, "*.yaml"))
		if err != nil {
			return nil, err
		}
		more, _ := filepath.Glob(filepath.Join(d, "*.yml"))
		files = append(files, more...)
		if len(files) == 0 {
			if _, err := os.Stat(d); err != nil {
				return nil, fmt.Errorf("rules directory: %w", err)
			}
		}
		sort.Strings(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			rs, err := Parse(f, b)
			if err != nil {
				return nil, err
			}
			add(rs)
		}
	}
	return out, nil
}

// Set is a compiled rule set.
type Set struct {
	Rules []Rule
	ac    *automaton       // every literal, matched case-folded
	lits  []lit            // by pattern id
	re    []*regexp.Regexp // by rule
}

type lit struct {
	rule  int
	all   bool // an All literal (else Any)
	exact bool // case matters: checked against the original bytes on a hit
	text  string
}

// Compile builds the automata of rules.
func Compile(rs []Rule) (*Set, error) {
	s := &Set{Rules: rs, re: make([]*regexp.Regexp, len(rs))}
	var pats [][]byte
	for i, r := range rs {
		for _, group := range []struct {
			lits []string
			all  bool
		}{{r.Match.Any, false}, {r.Match.All, true}} {
			for _, l := range group.lits {
				pats = append(pats, bytes.ToLower([]byte(l)))
				s.lits = append(s.lits, lit{rule: i, all: group.all, exact: !r.Match.NoCase, text: l})
			}
		}
		if r.Match.Regex != "" {
			re, err := regexp.Compile(r.Match.Regex)
			if err != nil {
				return nil, fmt.Errorf("rule %s: %w", r.ID, err)
			}
			s.re[i] = re
		}
	}
	s.ac = newAutomaton(pats)
	return s, nil
}

// Hit is one rule that matched a file.
type Hit struct {
	Rule    *Rule
	Line    int    // 1-based line of the evidence
	Excerpt string // the matched text with some context, not yet redacted
	Match   string // the matched literal or regex text
}

// Applies reports whether rule r looks at a file at p (elf: the file is an ELF).
func (r *Rule) Applies(p string, elf bool) bool {
	if r.ELF && !elf || r.Scripts && elf {
		return false
	}
	if len(r.Paths) > 0 {
		ok := false
		for _, g := range r.Paths {
			if Glob(g, p) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, g := range r.Exclude {
		if Glob(g, p) {
			return false
		}
	}
	return true
}

// Glob matches p against g, where ** matches across directories and * and ?
// within one.
func Glob(g, p string) bool {
	if !strings.Contains(g, "**") {
		ok, _ := path.Match(g, p)
		return ok
	}
	return globRE(g).MatchString(p)
}

// globCache holds compiled ** globs; rules are matched from many goroutines.
var (
	globCache    sync.Map // string → *regexp.Regexp
	globCacheLen atomic.Int64
)

func globRE(g string) *regexp.Regexp {
	if re, ok := globCache.Load(g); ok {
		return re.(*regexp.Regexp)
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		switch c := g[i]; c {
		case '*':
			if i+1 < len(g) && g[i+1] == '*' {
				b.WriteString(".*")
				i++
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	re := regexp.MustCompile(b.String())
	if globCacheLen.Load() < 4096 {
		globCacheLen.Add(1)
		globCache.Store(g, re)
	}
	return re
}

const maxLine = 64 << 10

// Scan matches the rules that apply to the file at p (size bytes) against
// its content, reading at most limit bytes, in one pass.
func (s *Set) Scan(p string, size int64, r io.Reader, limit int64) ([]Hit, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, limit), maxLine)
	head, _ := br.Peek(4)
	elf := bytes.Equal(head, []byte("\x7fELF"))
	active := make([]bool, len(s.Rules))
	some := false
	for i := range s.Rules {
		r := &s.Rules[i]
		active[i] = r.Applies(p, elf)
		if active[i] && r.Match.Regex != "" && len(r.Match.Any) == 0 {
			max := r.MaxSize
			if max <= 0 {
				max = 1 << 20
			}
			active[i] = size <= max
		}
		some = some || active[i]
	}
	if !some {
		return nil, nil
	}
	st := newState(s, active)
	line := 0
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			line++
			st.line(chunk, line)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return st.hits(), nil
}

// ScanText matches the rules marked config: against one string of the
// image config (an ENV entry, the entrypoint, a history line).
func (s *Set) ScanText(name, text string) []Hit {
	active := make([]bool, len(s.Rules))
	for i := range s.Rules {
		active[i] = s.Rules[i].Config
	}
	st := newState(s, active)
	st.line([]byte(text), 1)
	return st.hits()
}

type state struct {
	s        *Set
	active   []bool
	as       int32
	anyHit   []*Hit         // first Any hit per rule
	allSeen  []map[int]bool // All literals seen per rule
	reHit    []*Hit         // regex hit per rule
	lineHits map[int]bool   // rules with an Any hit on the current line
	regexAll bool           // an active regex rule without literals reads every line
}

func newState(s *Set, active []bool) *state {
	st := &state{s: s, active: active,
		anyHit: make([]*Hit, len(s.Rules)), allSeen: make([]map[int]bool, len(s.Rules)),
		reHit: make([]*Hit, len(s.Rules)), lineHits: map[int]bool{}}
	for i, r := range s.Rules {
		if active[i] && r.Match.Regex != "" && len(r.Match.Any) == 0 {
			st.regexAll = true
		}
	}
	return st
}

func (st *state) line(chunk []byte, n int) {
	if len(st.lineHits) > 0 {
		clear(st.lineHits)
	}
	st.as = st.s.ac.feed(st.as, chunk, func(id int32, end int) {
		l := st.s.lits[id]
		if !st.active[l.rule] {
			return
		}
		start := end - len(l.text)
		if l.exact && (start < 0 || string(chunk[start:end]) != l.text) {
			// Case differs (or the match began in the previous chunk of an
			// over-long line, where the case cannot be checked: counted).
			if start >= 0 {
				return
			}
		}
		if l.all {
			if st.allSeen[l.rule] == nil {
				st.allSeen[l.rule] = map[int]bool{}
			}
			st.allSeen[l.rule][int(id)] = true
			return
		}
		st.lineHits[l.rule] = true
		if st.anyHit[l.rule] == nil {
			st.anyHit[l.rule] = &Hit{Rule: &st.s.Rules[l.rule], Line: n, Excerpt: excerpt(chunk, start, end), Match: l.text}
		}
	})
	if len(st.lineHits) == 0 && !st.regexAll {
		return
	}
	for i, re := range st.s.re {
		if re == nil || !st.active[i] || st.reHit[i] != nil {
			continue
		}
		r := &st.s.Rules[i]
		if len(r.Match.Any) > 0 && !st.lineHits[i] {
			continue
		}
		if loc := re.FindIndex(chunk); loc != nil {
			st.reHit[i] = &Hit{Rule: r, Line: n, Excerpt: excerpt(chunk, loc[0], loc[1]), Match: string(chunk[loc[0]:loc[1]])}
		}
	}
}

func (st *state) hits() []Hit {
	var out []Hit
	for i := range st.s.Rules {
		if !st.active[i] {
			continue
		}
		r := &st.s.Rules[i]
		if len(r.Match.All) > 0 && len(st.allSeen[i]) < countDistinct(r.Match.All) {
			continue
		}
		var h *Hit
		switch {
		case r.Match.Regex != "":
			h = st.reHit[i]
		case len(r.Match.Any) > 0:
			h = st.anyHit[i]
		default:
			h = &Hit{Rule: r, Line: 0, Match: strings.Join(r.Match.All, " + ")}
		}
		if h != nil {
			out = append(out, *h)
		}
	}
	return out
}

func countDistinct(xs []string) int {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return len(m)
}

// excerpt is the match with up to 40 bytes of context each side, printable.
func excerpt(b []byte, start, end int) string {
	if start < 0 {
		start = 0
	}
	if end > len(b) {
		end = len(b)
	}
	from, to := max(0, start-40), min(len(b), end+40)
	return printable(b[from:to])
}

func printable(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		switch {
		case c == '\t' || c == ' ':
			sb.WriteByte(' ')
		case c >= 0x21 && c < 0x7f:
			sb.WriteByte(c)
		case c == '\n' || c == '\r':
		default:
			sb.WriteByte('.')
		}
	}
	return strings.TrimSpace(sb.String())
}
