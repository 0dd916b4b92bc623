package pin

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// yamlFile is a parsed YAML stream kept next to its bytes: nodes say where
// references are, the bytes are what gets edited.
type yamlFile struct {
	*lines
	docs []*yaml.Node
	eol  string
}

var yamlErrLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML reads every document of content: the YAML manifests are mostly
// written in by fastYAML, the rest by yaml.v3. Malformed YAML is a
// ParseError naming the line.
func parseYAML(content []byte) (*yamlFile, error) {
	f := &yamlFile{lines: newLines(content), eol: eol(content)}
	if docs, ok := fastYAML(content); ok {
		f.docs = docs
		return f, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(content))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			msg := err.Error()
			if m := yamlErrLine.FindStringSubmatch(msg); m != nil {
				line, _ := strconv.Atoi(m[1])
				return nil, &ParseError{Line: problemLine(f.lines, line), Msg: "malformed YAML: " + m[2]}
			}
			return nil, &ParseError{Msg: "malformed YAML: " + strings.TrimPrefix(msg, "yaml: ")}
		}
		f.docs = append(f.docs, &n)
	}
	return f, nil
}

// problemLine narrows a YAML error to the line where the input stops being
// YAML: the parser names the line its enclosing block started on, so the
// shortest failing prefix from there on is the line to fix.
func problemLine(l *lines, from int) int {
	if len(l.content) > 1<<20 {
		return from
	}
	for k := from; k <= len(l.starts) && k < from+200; k++ {
		end := len(l.content)
		if k < len(l.starts) {
			end = l.starts[k]
		}
		if !validYAMLPrefix(l.content[:end]) {
			return k
		}
	}
	return from
}

func validYAMLPrefix(b []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return false
		}
	}
}

// yamlFinder is a Finder of a YAML format: the engine parses a file once
// for every such finder that wants it.
type yamlFinder interface {
	Finder
	findYAML(f *yamlFile) []Ref
	// notYAML is called when the content does not parse: refs read some
	// other way (a template), or the error to report.
	notYAML(content []byte, err error) ([]Ref, error)
}

// findYAML runs a YAML finder over a parse result.
func findYAML(content []byte, f *yamlFile, err error, fd yamlFinder) ([]Ref, error) {
	if err != nil {
		return fd.notYAML(content, err)
	}
	return spanned(fd.findYAML(f)), nil
}

// root returns a document's top node (a mapping for most formats), or nil.
func root(doc *yaml.Node) *yaml.Node {
	if doc == nil {
		return nil
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil
		}
		doc = doc.Content[0]
	}
	return deref(doc)
}

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// pair is one key and value of a mapping.
type pair struct{ key, value *yaml.Node }

// pairs returns a mapping's entries, with `<<` merge keys expanded (explicit
// keys win, as YAML says).
func pairs(m *yaml.Node) []pair {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	if !hasMerge(m) {
		out := make([]pair, 0, len(m.Content)/2)
		for i := 0; i+1 < len(m.Content); i += 2 {
			out = append(out, pair{m.Content[i], m.Content[i+1]})
		}
		return out
	}
	var out, merged []pair
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if isMergeKey(k) {
			v = deref(v)
			var srcs []*yaml.Node
			if v != nil && v.Kind == yaml.SequenceNode {
				srcs = v.Content
			} else {
				srcs = []*yaml.Node{v}
			}
			for _, s := range srcs {
				if s = deref(s); s != nil && s != m && s.Kind == yaml.MappingNode {
					for j := 0; j+1 < len(s.Content); j += 2 {
						if s.Content[j].Value != "<<" {
							merged = append(merged, pair{s.Content[j], s.Content[j+1]})
						}
					}
				}
			}
			continue
		}
		seen[k.Value] = true
		out = append(out, pair{k, v})
	}
	for _, p := range merged {
		if !seen[p.key.Value] {
			seen[p.key.Value] = true
			out = append(out, p)
		}
	}
	return out
}

// isMergeKey is a `<<` key that merges mappings into the one holding it.
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.Tag != "!!str"
}

// hasMerge reports whether mapping m has a merge key.
func hasMerge(m *yaml.Node) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if isMergeKey(m.Content[i]) {
			return true
		}
	}
	return false
}

// get returns the value of key in mapping m (after merges), dereferenced.
func get(m *yaml.Node, key string) *yaml.Node {
	if p, ok := getPair(m, key); ok {
		return deref(p.value)
	}
	return nil
}

// getPair returns the key node and value of key in m.
func getPair(m *yaml.Node, key string) (pair, bool) {
	if d := deref(m); d != nil && d.Kind == yaml.MappingNode && !hasMerge(d) {
		// no merge: the first key of that name, without listing the pairs
		for i := 0; i+1 < len(d.Content); i += 2 {
			if d.Content[i].Value == key {
				return pair{d.Content[i], d.Content[i+1]}, true
			}
		}
		return pair{}, false
	}
	for _, p := range pairs(m) {
		if p.key.Value == key {
			return p, true
		}
	}
	return pair{}, false
}

func isScalar(n *yaml.Node) bool { return n != nil && n.Kind == yaml.ScalarNode }

// str returns a scalar's string value, "" for anything else.
func str(n *yaml.Node) string {
	if isScalar(n) && n.Tag != "!!null" {
		return n.Value
	}
	return ""
}

// scalarSpan returns the bytes of a single-line scalar's value (inside its
// quotes) after verifying they say exactly what the parser read; ok is
// false for block scalars, multi-line or escaped values, whose text cannot
// be replaced safely.
func (f *yamlFile) scalarSpan(n *yaml.Node) (start, end int, ok bool) {
	if !isScalar(n) || n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return 0, 0, false
	}
	o := f.offset(n.Line, n.Column)
	if o < 0 {
		return 0, 0, false
	}
	c := f.content
	// skip node properties: &anchor and !tag
	for o < len(c) && (c[o] == '&' || c[o] == '!') {
		for o < len(c) && c[o] != ' ' && c[o] != '\t' && c[o] != '\n' && c[o] != '\r' {
			o++
		}
		for o < len(c) && (c[o] == ' ' || c[o] == '\t') {
			o++
		}
	}
	if o >= len(c) {
		return 0, 0, false
	}
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0:
		if c[o] != '"' {
			return 0, 0, false
		}
		e := o + 1
		for e < len(c) && c[e] != '"' && c[e] != '\\' && c[e] != '\n' && c[e] != '\r' {
			e++
		}
		if e >= len(c) || c[e] != '"' {
			return 0, 0, false
		}
		start, end = o+1, e
	case n.Style&yaml.SingleQuotedStyle != 0:
		if c[o] != '\'' {
			return 0, 0, false
		}
		e := o + 1
		for e < len(c) && c[e] != '\'' && c[e] != '\n' && c[e] != '\r' {
			e++
		}
		if e >= len(c) || (e+1 < len(c) && c[e+1] == '\'') {
			return 0, 0, false
		}
		start, end = o+1, e
	default:
		// a plain scalar ends at a comment or the line end, and in flow
		// context also at , ] or }: try the block rule, then the flow rule.
		for _, flow := range []bool{false, true} {
			e := o
			for e < len(c) && c[e] != '\n' && c[e] != '\r' && !(flow && (c[e] == ',' || c[e] == ']' || c[e] == '}')) {
				if c[e] == '#' && e > o && (c[e-1] == ' ' || c[e-1] == '\t') {
					break
				}
				e++
			}
			for e > o && (c[e-1] == ' ' || c[e-1] == '\t') {
				e--
			}
			if string(c[o:e]) == n.Value {
				return o, e, true
			}
		}
		return 0, 0, false
	}
	if string(c[start:end]) != n.Value {
		return 0, 0, false
	}
	return start, end, true
}

// valueRef makes a Ref of a scalar that should hold an image reference. A
// prefix (docker://) is skipped. Templated values become notes; values that
// cannot be edited in place are Manual.
func (f *yamlFile) valueRef(n *yaml.Node, prefix string) (Ref, bool) {
	n = deref(n)
	if !isScalar(n) || n.Tag == "!!null" || strings.TrimSpace(n.Value) == "" {
		return Ref{}, false
	}
	v := n.Value
	if prefix != "" {
		if !strings.HasPrefix(v, prefix) {
			return Ref{}, false
		}
		v = v[len(prefix):]
	}
	r := Ref{Kind: KindImage, Text: v, Line: n.Line, Col: n.Column}
	start, end, ok := f.scalarSpan(n)
	if ok {
		start += len(prefix)
		r.Start, r.End = start, end
		r.Line, r.Col = f.pos(start)
	} else {
		r.Start = f.offset(n.Line, n.Column)
		if r.Start < 0 {
			r.Start = 0
		}
		r.End = r.Start
	}
	if templated(v) {
		name, def, defStart, sole := soleVar(v)
		if !sole || defStart < 0 || !ok || def == "" || templated(def) {
			r.Kind = KindNote
			r.Note = "templated value left alone: " + v
			return r, true
		}
		// ${IMAGE:-nginx:1.27}: the default is the reference, edited in place.
		r.Start += defStart
		r.End = r.Start + len(def)
		r.Text = def
		r.Via = "${" + name + "}"
		r.Line, r.Col = f.pos(r.Start)
	}
	if _, isRef := parseImage(r.Text); !isRef {
		r.Kind = KindNote
		r.Note = "not an image reference: " + strconv.Quote(r.Text)
		return r, true
	}
	if !ok {
		r.Manual = "the value is not a plain single-line scalar"
	}
	r.CommentTag = f.commentTag(r)
	return r, true
}

// commentTag reads `# tag` after a digest-only reference.
func (f *yamlFile) commentTag(r Ref) string {
	if r.Kind != KindImage || r.End <= r.Start {
		return ""
	}
	img, ok := parseImage(r.Text)
	if !ok || img.Digest == "" || img.Tag != "" {
		return ""
	}
	return trailingCommentTag(f.content, r.End)
}

// field describes key of mapping m as a Field of a split reference.
func (f *yamlFile) field(m *yaml.Node, key string) (Field, bool) {
	fl := Field{Key: key, Insert: -1, EOL: f.eol}
	p, found := getPair(m, key)
	if !found {
		fl.Insert, fl.Indent = f.insertPoint(m)
		return fl, true
	}
	v := deref(p.value)
	if v == nil || v.Kind != yaml.ScalarNode {
		return fl, false
	}
	fl.Present = true
	fl.Value = str(v)
	if v.Tag == "!!null" {
		// `digest:` or `digest: ~`: the null text (if any) is replaced.
		ko := f.offset(p.key.Line, p.key.Column)
		if ko < 0 {
			return fl, false
		}
		e := f.lineEnd(ko)
		line := string(f.content[ko:e])
		colon := strings.Index(line, ":")
		if colon < 0 {
			return fl, false
		}
		rest := line[colon+1:]
		trimmed := strings.TrimLeft(rest, " \t")
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			fl.Start = ko + colon + 1
			fl.End = fl.Start
			fl.Value = ""
			fl.Pad = " "
		case strings.HasPrefix(trimmed, "~") || strings.HasPrefix(trimmed, "null") || strings.HasPrefix(trimmed, "Null") || strings.HasPrefix(trimmed, "NULL"):
			w := 1
			if trimmed[0] != '~' {
				w = 4
			}
			fl.Start = ko + colon + 1 + (len(rest) - len(trimmed))
			fl.End = fl.Start + w
			fl.Value = ""
		default:
			return fl, false
		}
		return fl, true
	}
	s, e, ok := f.scalarSpan(v)
	if !ok {
		return fl, false
	}
	fl.Start, fl.End = s, e
	return fl, true
}

// insertPoint returns where a new key line goes in block mapping m (the end
// of its last line) and the keys' indentation; -1 for flow mappings or
// mappings ending in a block scalar.
func (f *yamlFile) insertPoint(m *yaml.Node) (int, string) {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode || m.Style&yaml.FlowStyle != 0 || len(m.Content) < 2 {
		return -1, ""
	}
	first := m.Content[0]
	indent := first.Column - 1
	last := 0
	var visit func(n *yaml.Node, depth int) bool
	visit = func(n *yaml.Node, depth int) bool {
		if n == nil || depth > 50 {
			return false
		}
		if n.Kind == yaml.ScalarNode && (n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 || strings.Contains(n.Value, "\n")) {
			return false
		}
		if n.Kind == yaml.AliasNode {
			if n.Line > last {
				last = n.Line
			}
			return true
		}
		if n.Line > last {
			last = n.Line
		}
		for _, c := range n.Content {
			if !visit(c, depth+1) {
				return false
			}
		}
		return true
	}
	for _, c := range m.Content {
		if !visit(c, 0) {
			return -1, ""
		}
	}
	ko := f.offset(first.Line, 1)
	if ko < 0 {
		return -1, ""
	}
	// The key must be the first thing on its line but for "- " sequence
	// dashes, so that the new line's indentation matches it.
	prefix := string(f.content[ko:f.offset(first.Line, first.Column)])
	if strings.Trim(prefix, " -") != "" || strings.Contains(prefix, "\t") {
		return -1, ""
	}
	lo := f.offset(last, 1)
	if lo < 0 {
		return -1, ""
	}
	e := f.lineEnd(lo)
	// a following line that is more indented than the keys (a continuation,
	// a comment of a nested value) would end up after the new key: only
	// comments and blank lines may follow at deeper indentation.
	return e, strings.Repeat(" ", indent)
}

// yctx is where a node sits: the key it is the value of (for sequence
// items, the sequence's key), whether it is a sequence item, and the context
// of the mapping holding it.
type yctx struct {
	Key    string
	InSeq  bool
	Parent *yctx
}

// parentKey is the key of the mapping holding the node.
func (c *yctx) parentKey() string {
	if c == nil || c.Parent == nil {
		return ""
	}
	return c.Parent.Key
}

// maxVisits bounds a walk: aliases can make a small file a huge tree.
const maxVisits = 1 << 20

// walkYAML calls visit for every node under n with its context. Aliases are
// followed (a merged or aliased mapping is seen in every place it is used)
// but never into a cycle, and the number of visits is bounded.
func walkYAML(n *yaml.Node, visit func(n *yaml.Node, c *yctx)) {
	visits := 0
	onPath := map[*yaml.Node]bool{}
	var walk func(n *yaml.Node, c *yctx, depth int)
	walk = func(n *yaml.Node, c *yctx, depth int) {
		n = deref(n)
		if n == nil || depth > 200 || onPath[n] || visits > maxVisits {
			return
		}
		visits++
		visit(n, c)
		onPath[n] = true
		defer delete(onPath, n)
		switch n.Kind {
		case yaml.DocumentNode:
			for _, ch := range n.Content {
				walk(ch, c, depth+1)
			}
		case yaml.MappingNode:
			for _, p := range pairs(n) {
				walk(p.value, &yctx{Key: p.key.Value, Parent: c}, depth+1)
			}
		case yaml.SequenceNode:
			key := ""
			if c != nil {
				key = c.Key
			}
			for _, ch := range n.Content {
				walk(ch, &yctx{Key: key, InSeq: true, Parent: c}, depth+1)
			}
		}
	}
	walk(n, nil, 0)
}
