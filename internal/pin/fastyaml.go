package pin

import (
	"strconv"

	yaml "go.yaml.in/yaml/v3"
)

// fastYAML parses the YAML most manifests are written in into the same
// nodes yaml.v3 makes, about ten times faster: block mappings and
// sequences, plain and quoted one-line scalars, one-line flow collections,
// comments, documents, LF or CRLF, printable ASCII. ok is false for
// anything else (anchors, aliases, tags, block and multi-line scalars,
// escapes, tabs, non-ASCII, anything malformed): the caller then parses
// the file with yaml.v3, which also names the line of an error.
// FuzzFastYAML holds every tree it makes equal to yaml.v3's.
func fastYAML(content []byte) (docs []*yaml.Node, ok bool) {
	p := &fastParser{c: content}
	if !p.split() {
		return nil, false
	}
	defer func() {
		if recover() != nil { // a slip past the bounds: let yaml.v3 decide
			docs, ok = nil, false
		}
	}()
	for {
		p.skip()
		if p.eof() {
			break
		}
		doc := p.node0(yaml.DocumentNode, "")
		if p.docStart() {
			doc.Line, doc.Column = p.line+1, 1
			p.line++
			p.skip()
			if p.eof() || p.docStart() {
				return nil, false // an empty document
			}
		} else {
			doc.Line, doc.Column = p.line+1, p.indent(p.line)+1
		}
		root := p.node(-1)
		if root == nil {
			return nil, false
		}
		p.skip()
		if !p.eof() && !p.docStart() {
			return nil, false
		}
		doc.Content = []*yaml.Node{root}
		docs = append(docs, doc)
	}
	return docs, len(docs) > 0
}

type fastParser struct {
	c      []byte
	starts []int // first byte of each line
	ends   []int // end of each line's text, before "\r\n" or "\n"
	line   int   // current line
	depth  int
	nodes  []yaml.Node // allocated in chunks: one allocation for most files
}

// node0 returns a new node of kind with tag.
func (p *fastParser) node0(kind yaml.Kind, tag string) *yaml.Node {
	if len(p.nodes) == cap(p.nodes) {
		p.nodes = make([]yaml.Node, 0, max(len(p.starts)+8, 32))
	}
	p.nodes = p.nodes[:len(p.nodes)+1]
	n := &p.nodes[len(p.nodes)-1]
	n.Kind, n.Tag = kind, tag
	return n
}

// maxFastDepth bounds nesting; deeper documents go to yaml.v3, which
// bounds them too.
const maxFastDepth = 100

// split finds the lines, refusing bytes outside the subset.
func (p *fastParser) split() bool {
	c := p.c
	start := 0
	for i := 0; i < len(c); i++ {
		b := c[i]
		switch {
		case b == '\n':
			end := i
			if end > start && c[end-1] == '\r' {
				end--
			}
			p.starts, p.ends = append(p.starts, start), append(p.ends, end)
			start = i + 1
		case b == '\r':
			if i+1 >= len(c) || c[i+1] != '\n' {
				return false
			}
		case b < ' ' || b > '~':
			return false
		}
	}
	if start < len(c) {
		p.starts, p.ends = append(p.starts, start), append(p.ends, len(c))
	}
	return true
}

func (p *fastParser) eof() bool { return p.line >= len(p.starts) }

func (p *fastParser) indent(l int) int {
	i := p.starts[l]
	for i < p.ends[l] && p.c[i] == ' ' {
		i++
	}
	return i - p.starts[l]
}

// blank reports whether line l holds nothing but spaces and a comment.
func (p *fastParser) blank(l int) bool {
	i := p.starts[l] + p.indent(l)
	return i >= p.ends[l] || p.c[i] == '#'
}

// skip moves to the next line with content.
func (p *fastParser) skip() {
	for !p.eof() && p.blank(p.line) {
		p.line++
	}
}

// docStart reports whether the current line is `---`, alone or with a
// comment. Other lines starting with --- or ... are refused (by node).
func (p *fastParser) docStart() bool {
	s, e := p.starts[p.line], p.ends[p.line]
	if e-s < 3 || string(p.c[s:s+3]) != "---" {
		return false
	}
	i := s + 3
	if i == e {
		return true
	}
	if p.c[i] != ' ' {
		return false
	}
	for i < e && p.c[i] == ' ' {
		i++
	}
	return i == e || p.c[i] == '#'
}

// markerLine is a line at column 0 starting with --- or ... that is no
// plain document start: refused.
func (p *fastParser) markerLine(l int) bool {
	s, e := p.starts[l], p.ends[l]
	if e-s < 3 {
		return false
	}
	m := string(p.c[s : s+3])
	return m == "---" || m == "..."
}

func (p *fastParser) pos(at int) (line, col int) {
	return p.line + 1, at - p.starts[p.line] + 1
}

// node parses the block node starting on the current line, which must be
// indented more than parent.
func (p *fastParser) node(parent int) *yaml.Node {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxFastDepth || p.eof() {
		return nil
	}
	n := p.indent(p.line)
	if n <= parent || p.markerLine(p.line) || p.c[p.starts[p.line]] == '%' {
		return nil
	}
	at := p.starts[p.line] + n
	switch {
	case p.dash(at):
		return p.sequence(n)
	case p.c[at] == '[' || p.c[at] == '{':
		v, end := p.flow(at)
		if v == nil || !p.lineRestEmpty(end) {
			return nil
		}
		p.line++
		p.skip()
		if !p.eof() && !p.docStart() && p.indent(p.line) > parent {
			return nil // a continuation: a multi-line collection or an error
		}
		return v
	}
	if _, _, ok := p.key(at); ok {
		return p.mapping(n, at)
	}
	return nil // a bare scalar may go on over lines: yaml.v3 reads it
}

// sequence parses a block sequence whose dashes are at column n.
func (p *fastParser) sequence(n int) *yaml.Node {
	s := p.node0(yaml.SequenceNode, "!!seq")
	s.Line, s.Column = p.pos(p.starts[p.line] + n)
	for {
		v := p.value(n, p.starts[p.line]+n, false)
		if v == nil {
			return nil
		}
		s.Content = append(s.Content, v)
		if p.eof() || p.docStart() {
			return s
		}
		ind := p.indent(p.line)
		if ind < n {
			return s
		}
		if ind > n || p.markerLine(p.line) {
			return nil
		}
		if !p.dash(p.starts[p.line] + n) {
			return s // the next key of the mapping this sequence is the value of
		}
	}
}

// dash reports whether a block sequence entry starts at at.
func (p *fastParser) dash(at int) bool {
	e := p.ends[p.line]
	return p.c[at] == '-' && (at+1 == e || p.c[at+1] == ' ')
}

// lineRestEmpty reports whether the current line holds only spaces and a
// comment from at on.
func (p *fastParser) lineRestEmpty(at int) bool {
	e := p.ends[p.line]
	if at < e && p.c[at] != ' ' {
		return false
	}
	for at < e && p.c[at] == ' ' {
		at++
	}
	return at == e || p.c[at] == '#'
}

// key reads a plain key at at: its text up to `: ` or a colon ending the
// line, and where its colon is.
func (p *fastParser) key(at int) (text string, colon int, ok bool) {
	e := p.ends[p.line]
	if at >= e || indicator(p.c[at]) || p.c[at] == '"' || p.c[at] == '\'' {
		return "", 0, false
	}
	for i := at; i < e && i-at < 1000; i++ {
		switch p.c[i] {
		case ':':
			if i+1 == e || p.c[i+1] == ' ' {
				if p.c[i-1] == ' ' {
					return "", 0, false
				}
				return string(p.c[at:i]), i, true
			}
		case '#':
			if p.c[i-1] == ' ' {
				return "", 0, false
			}
		}
	}
	return "", 0, false
}

// indicator is a character that cannot start a plain scalar here (the
// ones that can when followed by a non-space, - ? :, are refused too).
func indicator(b byte) bool {
	switch b {
	case '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '%', '@', '`':
		return true
	}
	return false
}

// mapping parses a block mapping whose keys are at column n; the first key
// starts at first on the current line.
func (p *fastParser) mapping(n, first int) *yaml.Node {
	m := p.node0(yaml.MappingNode, "!!map")
	m.Line, m.Column = p.pos(first)
	at := first
	for {
		text, colon, ok := p.key(at)
		if !ok {
			return nil
		}
		tag := plainTag(text)
		if tag == "" {
			return nil
		}
		k := p.node0(yaml.ScalarNode, tag)
		k.Value = text
		k.Line, k.Column = p.pos(at)
		v := p.value(n, colon, true)
		if v == nil {
			return nil
		}
		m.Content = append(m.Content, k, v)
		// p.line is now the next line with content, or the end
		if p.eof() || p.docStart() {
			return m
		}
		ind := p.indent(p.line)
		if ind < n {
			return m
		}
		if ind > n {
			return nil
		}
		at = p.starts[p.line] + n
		if p.dash(at) || p.markerLine(p.line) {
			return nil
		}
	}
}

// value parses what follows a mapping's colon (inMap) or a sequence's dash
// at mark on the current line, for a collection at column n, and leaves
// the parser on the next line with content.
func (p *fastParser) value(n, mark int, inMap bool) *yaml.Node {
	e := p.ends[p.line]
	at := mark + 1
	for at < e && p.c[at] == ' ' {
		at++
	}
	if at == e || p.c[at] == '#' {
		// the value is on the lines below, or empty
		line, col := p.pos(mark + 1)
		p.line++
		p.skip()
		if !p.eof() && !p.docStart() {
			ind := p.indent(p.line)
			if ind > n {
				return p.node(n)
			}
			if inMap && ind == n && p.dash(p.starts[p.line]+n) {
				return p.sequence(n)
			}
		}
		v := p.node0(yaml.ScalarNode, "!!null")
		v.Line, v.Column = line, col
		return v
	}
	if !inMap {
		if p.dash(at) {
			return nil // a sequence in a sequence entry
		}
		if _, _, ok := p.key(at); ok {
			return p.mapping(at-p.starts[p.line], at)
		}
	}
	var v *yaml.Node
	var end int
	switch p.c[at] {
	case '[', '{':
		v, end = p.flow(at)
	default:
		v, end = p.scalar(at, false)
	}
	if v == nil || !p.lineRestEmpty(end) {
		return nil
	}
	p.line++
	p.skip()
	if !p.eof() && !p.docStart() && p.indent(p.line) > n {
		return nil // a continuation: a multi-line scalar or an error
	}
	return v
}

// scalar reads a one-line scalar at at, in block or flow context, and
// returns where it ends.
func (p *fastParser) scalar(at int, flow bool) (*yaml.Node, int) {
	e := p.ends[p.line]
	c := p.c
	n := p.node0(yaml.ScalarNode, "")
	n.Line, n.Column = p.pos(at)
	switch c[at] {
	case '"', '\'':
		q := c[at]
		i := at + 1
		for i < e && c[i] != q && c[i] != '\\' {
			i++
		}
		if i >= e || c[i] != q || (q == '\'' && i+1 < e && c[i+1] == '\'') {
			return nil, 0
		}
		n.Tag, n.Value = "!!str", string(c[at+1:i])
		if q == '"' {
			n.Style = yaml.DoubleQuotedStyle
		} else {
			n.Style = yaml.SingleQuotedStyle
		}
		return n, i + 1
	}
	if indicator(c[at]) {
		return nil, 0
	}
	i := at
	for i < e {
		b := c[i]
		if b == '#' && c[i-1] == ' ' {
			break
		}
		if b == ':' && (flow || i+1 == e || c[i+1] == ' ') {
			return nil, 0 // a key where a value should be
		}
		if flow && (b == ',' || b == ']' || b == '}') {
			break
		}
		if flow && (b == '[' || b == '{') {
			return nil, 0
		}
		i++
	}
	end := i
	for end > at && c[end-1] == ' ' {
		end--
	}
	n.Value = string(c[at:end])
	if n.Tag = plainTag(n.Value); n.Tag == "" {
		return nil, 0
	}
	return n, end
}

// flow reads a one-line flow sequence or mapping at at.
func (p *fastParser) flow(at int) (*yaml.Node, int) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxFastDepth {
		return nil, 0
	}
	e := p.ends[p.line]
	c := p.c
	n := p.node0(0, "")
	n.Style = yaml.FlowStyle
	n.Line, n.Column = p.pos(at)
	closer := byte(']')
	if c[at] == '{' {
		n.Kind, n.Tag, closer = yaml.MappingNode, "!!map", '}'
	} else {
		n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
	}
	i := at + 1
	spaces := func() {
		for i < e && c[i] == ' ' {
			i++
		}
	}
	item := func() *yaml.Node {
		if i >= e {
			return nil
		}
		var v *yaml.Node
		switch c[i] {
		case '[', '{':
			v, i = p.flow(i)
		default:
			v, i = p.scalar(i, true)
		}
		return v
	}
	spaces()
	if i < e && c[i] == closer {
		return n, i + 1
	}
	for {
		spaces()
		if n.Kind == yaml.MappingNode {
			k := p.flowKey(i)
			if k == nil {
				return nil, 0
			}
			i += len(k.Value) + 1 // the key and its colon
			spaces()
			v := item()
			if v == nil {
				return nil, 0
			}
			n.Content = append(n.Content, k, v)
		} else {
			v := item()
			if v == nil {
				return nil, 0
			}
			n.Content = append(n.Content, v)
		}
		spaces()
		if i >= e {
			return nil, 0
		}
		switch c[i] {
		case closer:
			return n, i + 1
		case ',':
			i++
			spaces()
			if i >= e || c[i] == closer {
				return nil, 0 // a trailing comma: yaml.v3 decides
			}
		default:
			return nil, 0
		}
	}
}

// flowKey reads a plain key of a flow mapping at at, followed by `: `.
func (p *fastParser) flowKey(at int) *yaml.Node {
	e := p.ends[p.line]
	c := p.c
	if at >= e || indicator(c[at]) || c[at] == '"' || c[at] == '\'' {
		return nil
	}
	i := at
	for i < e && i-at < 1000 {
		switch c[i] {
		case ':':
			if i+1 < e && c[i+1] == ' ' && c[i-1] != ' ' {
				k := p.node0(yaml.ScalarNode, "")
				k.Value = string(c[at:i])
				k.Line, k.Column = p.pos(at)
				if k.Tag = plainTag(k.Value); k.Tag == "" {
					return nil
				}
				return k
			}
			return nil
		case ',', '[', ']', '{', '}', '#':
			return nil
		}
		i++
	}
	return nil
}

// plainTag is the tag yaml.v3 resolves a plain scalar to, or "" where this
// parser does not know it for sure (the file then goes to yaml.v3).
func plainTag(s string) string {
	switch s {
	case "true", "True", "TRUE", "false", "False", "FALSE":
		return "!!bool"
	case "", "~", "null", "Null", "NULL":
		return "!!null"
	case ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF":
		return "!!float"
	case "<<":
		return "!!merge"
	}
	if c := s[0]; c != '.' && c != '+' && c != '-' && (c < '0' || c > '9') {
		return "!!str"
	}
	// a digit, a sign or a dot first: an integer, a float, a timestamp or a string
	digits, dots, other := 0, 0, false
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b >= '0' && b <= '9':
			digits++
		case b == '.':
			dots++
		case numberish(b):
			other = true
		default:
			return "!!str" // a character no number or timestamp holds
		}
	}
	switch {
	case other || s[0] < '0' || s[0] > '9':
		return "" // signs, hex, octal, binary, exponents, timestamps
	case dots == 0 && len(s) <= 18 && (s[0] != '0' || len(s) == 1):
		return "!!int"
	case dots == 1 && s[len(s)-1] != '.' && len(s) <= 20:
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			return "!!float"
		}
		return ""
	case dots >= 2 && s[len(s)-1] != '.':
		return "!!str" // a version: 1.27.3
	}
	return ""
}

// numberish are the characters other than digits and dots that a YAML
// number or timestamp can hold (0x1F, 1e3, 0o17, 0b1, 1_000, -Inf, NaN,
// 2001-12-14t21:59:43.10Z…).
func numberish(b byte) bool {
	switch b {
	case 'a', 'b', 'c', 'd', 'e', 'f', 'A', 'B', 'C', 'D', 'E', 'F', 'x', 'X', 'o', 'O', '_', '+', '-', ':', ' ',
		't', 'T', 'z', 'Z', 'i', 'I', 'n', 'N', 'y', 'Y', 'p', 'P':
		return true
	}
	return false
}
