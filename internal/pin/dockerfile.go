package pin

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Dockerfile finds base images (FROM, with --platform, ARG defaults and
// stages), COPY/ADD --from images, RUN --mount from= images and the
// `# syntax=` frontend in Dockerfiles and Containerfiles, and remote scripts
// run by RUN (heredocs included) or fetched by ADD without --checksum.
type Dockerfile struct{}

// Name implements Finder.
func (Dockerfile) Name() string { return "dockerfile" }

var dockerfileSkipSuffixes = []string{".j2", ".jinja", ".tmpl", ".tpl", ".template", ".in", ".erb", ".orig", ".bak", ".rej", ".swp", ".md", ".txt", ".dockerignore", ".sh", ".yaml", ".yml", ".json"}

// Match implements Finder: Dockerfile, Containerfile, Dockerfile.*, *.Dockerfile.
func (Dockerfile) Match(path string, _ []byte) bool {
	b := strings.ToLower(filepath.Base(path))
	for _, s := range dockerfileSkipSuffixes {
		if strings.HasSuffix(b, s) {
			return false
		}
	}
	for _, n := range []string{"dockerfile", "containerfile"} {
		if b == n || strings.HasPrefix(b, n+".") || strings.HasPrefix(b, n+"-") || strings.HasSuffix(b, "."+n) {
			return true
		}
	}
	return false
}

var dockerInstructions = map[string]bool{
	"FROM": true, "RUN": true, "CMD": true, "LABEL": true, "MAINTAINER": true, "EXPOSE": true, "ENV": true,
	"ADD": true, "COPY": true, "ENTRYPOINT": true, "VOLUME": true, "USER": true, "WORKDIR": true, "ARG": true,
	"ONBUILD": true, "STOPSIGNAL": true, "HEALTHCHECK": true, "SHELL": true,
}

var (
	directivePattern = regexp.MustCompile(`^#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(\S*)\s*$`)
	heredocPattern   = regexp.MustCompile(`(?:^|\s)<<(-?)(["']?)([A-Za-z_][A-Za-z0-9_]*)(["']?)`)
)

// logical is one instruction with its continuation lines joined; at[i] is
// the file offset of byte i.
type logical struct {
	text string
	at   []int
	line int // first line
}

// span maps text[i:j] to file offsets; ok is false if it crosses a
// continuation.
func (l logical) span(i, j int) (start, end int, ok bool) {
	if i >= j || j > len(l.at) {
		return 0, 0, false
	}
	start, end = l.at[i], l.at[j-1]+1
	return start, end, end-start == j-i
}

type dfArg struct {
	value      string
	start, end int // span of the default value in the file, -1 if none
}

// Find implements Finder.
func (Dockerfile) Find(content []byte) ([]Ref, error) {
	ls := newLines(content)
	// physical lines without line endings
	type phys struct{ start, end int }
	var pl []phys
	for i, s := range ls.starts {
		if s == len(content) && i > 0 {
			break
		}
		pl = append(pl, phys{s, ls.lineEnd(s)})
	}
	// one copy of the file as a string: lines and words are slices of it
	cs := string(content)
	if len(pl) > 0 && strings.HasPrefix(cs, "\xef\xbb\xbf") {
		pl[0].start += 3
	}
	text := func(i int) string { return cs[pl[i].start:pl[i].end] }
	var refs []Ref
	templatedFile := strings.Contains(cs, "{{") || strings.Contains(cs, "{%")
	escape := byte('\\')

	i := 0
	// parser directives: only at the very top
	for ; i < len(pl); i++ {
		m := directivePattern.FindStringSubmatch(strings.TrimSpace(text(i)))
		if m == nil {
			break
		}
		switch strings.ToLower(m[1]) {
		case "escape":
			if m[2] == "`" {
				escape = '`'
			}
		case "syntax":
			t := text(i)
			k := strings.LastIndex(t, m[2])
			if m[2] != "" && k >= 0 {
				r := Ref{Kind: KindImage, Text: m[2], Start: pl[i].start + k, End: pl[i].start + k + len(m[2]), Via: "# syntax"}
				r.Line, r.Col = ls.pos(r.Start)
				refs = append(refs, imageOrNote(r))
			}
		}
	}

	args := map[string]dfArg{}
	var stages []string
	seenFrom := false
	for i < len(pl) {
		t := strings.TrimLeft(text(i), " \t")
		if t == "" || strings.HasPrefix(t, "#") {
			i++
			continue
		}
		// join continuation lines
		var l logical
		l.line = i + 1
		for {
			s, e := pl[i].start, pl[i].end
			if l.text == "" {
				s += len(text(i)) - len(strings.TrimLeft(text(i), " \t"))
			}
			seg := cs[s:e]
			trimmed := strings.TrimRight(seg, " \t")
			cont := len(trimmed) > 0 && trimmed[len(trimmed)-1] == escape
			if cont {
				seg = trimmed[:len(trimmed)-1]
			}
			l.at = slices.Grow(l.at, len(seg))
			for k := 0; k < len(seg); k++ {
				l.at = append(l.at, s+k)
			}
			l.text += seg
			i++
			if !cont {
				break
			}
			// comment and empty lines inside a continuation are skipped
			for i < len(pl) {
				nt := strings.TrimLeft(text(i), " \t")
				if nt == "" || strings.HasPrefix(nt, "#") {
					i++
					continue
				}
				break
			}
			if i >= len(pl) {
				break
			}
		}
		kw, restAt := splitWord(l.text, 0)
		upper := strings.ToUpper(kw)
		if !dockerInstructions[upper] {
			if templatedFile {
				continue
			}
			return nil, &ParseError{Line: l.line, Msg: "unknown instruction " + kw + " (expected FROM, RUN, COPY, …)"}
		}
		// heredocs (RUN <<EOF … EOF): their bodies are not instructions
		var bodies []logical
		if (upper == "RUN" || upper == "COPY" || upper == "ADD") && strings.Contains(l.text, "<<") {
			for _, m := range heredocPattern.FindAllStringSubmatch(l.text, -1) {
				if m[2] != m[4] {
					continue
				}
				word, strip := m[3], m[1] == "-"
				var body logical
				body.line = i + 1
				found := false
				for i < len(pl) {
					bt := text(i)
					cmp := bt
					if strip {
						cmp = strings.TrimLeft(bt, "\t")
					}
					i++
					if cmp == word {
						found = true
						break
					}
					for k := 0; k < len(bt); k++ {
						body.at = append(body.at, pl[i-1].start+k)
					}
					body.text += bt
					body.at = append(body.at, pl[i-1].end)
					body.text += "\n"
				}
				if !found {
					return nil, &ParseError{Line: l.line, Msg: "heredoc <<" + word + " is never terminated"}
				}
				if upper == "RUN" {
					bodies = append(bodies, body)
				}
			}
		}
		flags, words := dfArgs(l.text, restAt)
		switch upper {
		case "ARG":
			for _, w := range words {
				nm, val, hasVal := strings.Cut(w.text, "=")
				a := dfArg{start: -1, end: -1}
				if hasVal {
					vs := w.start + len(nm) + 1
					ve := w.end
					if len(val) >= 2 && (val[0] == '"' || val[0] == '\'') && val[len(val)-1] == val[0] {
						val = val[1 : len(val)-1]
						vs++
						ve--
					}
					a.value = val
					if s, e, ok := l.span(vs, ve); ok && val != "" {
						a.start, a.end = s, e
					}
				}
				if !seenFrom {
					args[nm] = a
				}
			}
		case "FROM":
			seenFrom = true
			if len(words) != 1 && !(len(words) == 3 && strings.EqualFold(words[1].text, "AS")) {
				if templatedFile {
					continue
				}
				return nil, &ParseError{Line: l.line, Msg: "FROM needs an image, optionally followed by AS NAME: " + strings.TrimSpace(l.text)}
			}
			platform := ""
			for _, f := range flags {
				if v, ok := strings.CutPrefix(f.text, "--platform="); ok && !strings.Contains(v, "$") {
					platform = v
				}
			}
			img := words[0]
			if r, ok := dfImage(ls, l, img, platform, args, stages); ok {
				refs = append(refs, r)
			}
			if len(words) == 3 {
				stages = append(stages, strings.ToLower(words[2].text))
			} else {
				stages = append(stages, "")
			}
		case "COPY", "ADD":
			hasChecksum := false
			for _, f := range flags {
				if v, ok := strings.CutPrefix(f.text, "--from="); ok {
					w := word{text: v, start: f.start + len("--from="), end: f.end}
					if r, ok := dfImage(ls, l, w, "", args, stages); ok {
						r.Via = "--from"
						refs = append(refs, r)
					}
				}
				if strings.HasPrefix(f.text, "--checksum=") {
					hasChecksum = true
				}
			}
			if upper == "ADD" && !hasChecksum && len(words) > 1 {
				for _, w := range words[:len(words)-1] {
					if strings.HasPrefix(w.text, "http://") || strings.HasPrefix(w.text, "https://") {
						r := Ref{Kind: KindScript, Text: "ADD " + w.text, Start: l.at[w.start]}
						r.Line, r.Col = ls.pos(r.Start)
						r.Note = w.text + " is added without --checksum=sha256:…: pin its content with ADD --checksum"
						refs = append(refs, r)
					}
				}
			}
		case "RUN":
			for _, f := range flags {
				v, ok := strings.CutPrefix(f.text, "--mount=")
				if !ok {
					continue
				}
				off := f.start + len("--mount=")
				for _, kv := range strings.Split(v, ",") {
					if from, ok := strings.CutPrefix(kv, "from="); ok {
						w := word{text: from, start: off + len("from="), end: off + len(kv)}
						if r, ok := dfImage(ls, l, w, "", args, stages); ok {
							r.Via = "--mount"
							refs = append(refs, r)
						}
					}
					off += len(kv) + 1
				}
			}
			cmdStart := restAt
			if len(flags) > 0 {
				cmdStart = flags[len(flags)-1].end
			}
			bodies = append(bodies, logical{text: l.text[cmdStart:], at: l.at[cmdStart:]})
			for _, b := range bodies {
				for _, h := range findScripts(b.text) {
					r := Ref{Kind: KindScript, Text: h.Text, Start: b.at[h.Offset], Note: scriptNote(h)}
					r.Line, r.Col = ls.pos(r.Start)
					refs = append(refs, r)
				}
			}
		}
	}
	return spanned(refs), nil
}

// dfImage makes a Ref of an image named in a FROM or --from: earlier stages
// and scratch are not images; ARG-substituted names resolve from the ARG
// defaults declared before the first FROM.
func dfImage(ls *lines, l logical, w word, platform string, args map[string]dfArg, stages []string) (Ref, bool) {
	v := w.text
	lower := strings.ToLower(v)
	if v == "" || lower == "scratch" {
		return Ref{}, false
	}
	for _, s := range stages {
		if s != "" && s == lower {
			return Ref{}, false
		}
	}
	if isNumber(v) {
		return Ref{}, false // COPY --from=0: a stage by index
	}
	r := Ref{Kind: KindImage, Text: v, Platform: platform}
	s, e, ok := l.span(w.start, w.end)
	if ok {
		r.Start, r.End = s, e
	} else {
		r.Start, r.End = l.at[w.start], l.at[w.start]
		r.Manual = "the reference is split across continuation lines"
	}
	r.Line, r.Col = ls.pos(r.Start)
	if strings.Contains(v, "$") {
		vars := map[string]string{}
		for k, a := range args {
			vars[k] = a.value
		}
		if name, _, _, sole := soleVar(v); sole {
			if a, found := args[name]; found && a.start >= 0 && !strings.Contains(a.value, "$") {
				// FROM ${BASE} with ARG BASE=nginx:1.27: the ARG default is edited.
				r.Start, r.End, r.Text, r.Manual = a.start, a.end, a.value, ""
				r.Line, r.Col = ls.pos(r.Start)
				r.Via = "ARG " + name
				return imageOrNote(r), true
			}
		}
		expanded, full := expandVars(v, vars)
		if !full || expanded == "" {
			r.Kind = KindNote
			r.Note = v + " has no ARG default before the first FROM: left alone"
			return r, true
		}
		for _, s := range stages {
			if s != "" && s == strings.ToLower(expanded) {
				return Ref{}, false
			}
		}
		if strings.ToLower(expanded) == "scratch" {
			return Ref{}, false
		}
		r.Text = expanded
		r.Via = v
		r.Manual = "composed from ARG values (" + v + "): pin the ARG defaults or write the pinned reference"
	}
	return imageOrNote(r), true
}

// imageOrNote turns a Ref whose text is no image reference into a note.
func imageOrNote(r Ref) Ref {
	if _, ok := parseImage(r.Text); !ok {
		r.Kind = KindNote
		r.Note = "not an image reference: " + r.Text
	}
	return r
}

func isNumber(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

type word struct {
	text       string
	start, end int // in the logical text
}

// splitWord returns the first word of s[from:] and the offset after it.
func splitWord(s string, from int) (string, int) {
	i := from
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	j := i
	for j < len(s) && s[j] != ' ' && s[j] != '\t' {
		j++
	}
	return s[i:j], j
}

// dfArgs splits an instruction's arguments into leading --flags and words.
func dfArgs(s string, from int) (flags, words []word) {
	i := from
	inFlags := true
	for i < len(s) {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) {
			break
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '\t' {
			j++
		}
		w := word{text: s[i:j], start: i, end: j}
		if inFlags && strings.HasPrefix(w.text, "--") {
			flags = append(flags, w)
		} else {
			inFlags = false
			words = append(words, w)
		}
		i = j
	}
	return flags, words
}
