package pin

import (
	"bytes"
	"sort"
	"strings"
	"unicode/utf8"
)

// lines maps byte offsets to 1-based lines and character columns. Lines end
// at '\n'; a '\r' before it belongs to the line ending.
type lines struct {
	content []byte
	starts  []int
}

func newLines(content []byte) *lines {
	starts := []int{0}
	for i, c := range content {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return &lines{content: content, starts: starts}
}

// pos returns the line and character column of offset.
func (l *lines) pos(offset int) (line, col int) {
	if offset < 0 {
		offset = 0
	}
	if offset > len(l.content) {
		offset = len(l.content)
	}
	i := sort.Search(len(l.starts), func(i int) bool { return l.starts[i] > offset }) - 1
	return i + 1, utf8.RuneCount(l.content[l.starts[i]:offset]) + 1
}

// offset returns the byte offset of a 1-based line and character column, or
// -1 if there is no such place.
func (l *lines) offset(line, col int) int {
	if line < 1 || line > len(l.starts) || col < 1 {
		return -1
	}
	o := l.starts[line-1]
	for c := 1; c < col; c++ {
		if o >= len(l.content) || l.content[o] == '\n' {
			return -1
		}
		_, n := utf8.DecodeRune(l.content[o:])
		o += n
	}
	return o
}

// lineEnd returns the offset of the end of the line holding offset (before
// "\r\n" or "\n"), and the line's text.
func (l *lines) lineEnd(offset int) int {
	e := bytes.IndexByte(l.content[offset:], '\n')
	if e < 0 {
		e = len(l.content)
	} else {
		e += offset
	}
	if e > offset && l.content[e-1] == '\r' {
		e--
	}
	return e
}

// lineText returns the text of 1-based line n without its line ending.
func (l *lines) lineText(n int) string {
	if n < 1 || n > len(l.starts) {
		return ""
	}
	s := l.starts[n-1]
	return string(l.content[s:l.lineEnd(s)])
}

// eol is the file's line ending: "\r\n" if its first line ends so.
func eol(content []byte) string {
	i := bytes.IndexByte(content, '\n')
	if i > 0 && content[i-1] == '\r' {
		return "\r\n"
	}
	return "\n"
}

// templated reports whether s holds a template or variable expansion that
// only a later tool can fill in.
func templated(s string) bool {
	return strings.Contains(s, "{{") || strings.Contains(s, "$") || strings.Contains(s, "{%") || strings.Contains(s, "<%")
}

// imageName is a written reference split into its parts.
type imageName struct {
	Name   string // registry/repository as written
	Tag    string
	Digest string
}

// parseImage splits and validates a written reference; ok is false for
// anything that is not an image reference.
func parseImage(s string) (imageName, bool) {
	var r imageName
	if s == "" || strings.ContainsAny(s, " \t\r\n\"'`,;|&<>(){}[]\\") {
		return r, false
	}
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		r.Digest = rest[i+1:]
		rest = rest[:i]
		if !isDigest(r.Digest) {
			return r, false
		}
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i+1:], "/") {
		r.Tag = rest[i+1:]
		rest = rest[:i]
	}
	r.Name = rest
	check := rest
	if r.Tag != "" {
		check += ":" + r.Tag
	}
	if !validReference(check) {
		return r, false
	}
	return r, true
}

func isDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for _, c := range hex {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// trailingCommentTag returns the tag a `# tag` comment right after end names
// (`image: repo@sha256:… # 1.27`; also ratchet's `# ratchet:repo:1.27`).
func trailingCommentTag(content []byte, end int) string {
	i := end
	for i < len(content) && (content[i] == ' ' || content[i] == '\t' || content[i] == '"' || content[i] == '\'') {
		i++
	}
	if i >= len(content) || content[i] != '#' {
		return ""
	}
	j := bytes.IndexByte(content[i:], '\n')
	if j < 0 {
		j = len(content) - i
	}
	c := strings.TrimSpace(string(content[i+1 : i+j]))
	if f := strings.Fields(c); len(f) > 0 {
		c = f[0]
	}
	if r, ok := strings.CutPrefix(c, "ratchet:"); ok {
		if k := strings.LastIndexByte(r, ':'); k >= 0 && !strings.Contains(r[k+1:], "/") {
			c = r[k+1:]
		}
	}
	c = strings.TrimPrefix(c, "tag=")
	c = strings.TrimPrefix(c, "tag:")
	if c == "" || len(c) > 128 {
		return ""
	}
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return ""
		}
	}
	return c
}

// expandVars expands $VAR, ${VAR}, ${VAR:-default} and ${VAR-default} with
// vars; ok is false if a variable has neither a value nor a default.
func expandVars(s string, vars map[string]string) (string, bool) {
	var b strings.Builder
	ok := true
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			i++
			continue
		}
		if s[i+1] == '{' {
			j := strings.IndexByte(s[i:], '}')
			if j < 0 {
				return "", false
			}
			expr := s[i+2 : i+j]
			i += j + 1
			name, def, hasDef := expr, "", false
			for _, sep := range []string{":-", "-"} {
				if k := strings.Index(expr, sep); k >= 0 {
					name, def, hasDef = expr[:k], expr[k+len(sep):], true
					break
				}
			}
			if v, found := vars[name]; found && v != "" {
				b.WriteString(v)
			} else if hasDef {
				b.WriteString(def)
			} else {
				ok = false
			}
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		if j == i+1 {
			b.WriteByte(c)
			i++
			continue
		}
		if v, found := vars[s[i+1:j]]; found && v != "" {
			b.WriteString(v)
		} else {
			ok = false
		}
		i = j
	}
	return b.String(), ok
}

// soleVar returns the variable name and default of a value that is exactly
// one variable: `$X`, `${X}`, `${X:-def}`; defStart is the default's offset
// in s (-1 without a default).
func soleVar(s string) (name, def string, defStart int, ok bool) {
	if strings.HasPrefix(s, "${") && strings.HasSuffix(s, "}") && strings.Count(s, "$") == 1 && strings.Count(s, "}") == 1 {
		expr := s[2 : len(s)-1]
		for _, sep := range []string{":-", "-"} {
			if k := strings.Index(expr, sep); k >= 0 {
				return expr[:k], expr[k+len(sep):], 2 + k + len(sep), validVarName(expr[:k])
			}
		}
		return expr, "", -1, validVarName(expr)
	}
	if strings.HasPrefix(s, "$") && validVarName(s[1:]) {
		return s[1:], "", -1, true
	}
	return "", "", -1, false
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
