package version

import "strings"

// maven orders Maven versions as maven-artifact's ComparableVersion does
// (3.8 line, plus the POM reference's rule that a trimmed release qualifier
// before a hyphen leaves no trace: 1-ga-1 == 1-1): items split at ".", "-" and digit/letter transitions, "-" and
// transitions opening a sub-list; qualifiers alpha < beta < milestone < rc
// (cr) < snapshot < release ("", ga, final) < sp < any other word (in
// alphabetical order); trailing zeros and release qualifiers dropped.
type maven struct{}

type mavenKind int

const (
	mavenInt mavenKind = iota
	mavenWord
	mavenList
)

type mavenItem struct {
	kind  mavenKind
	num   string      // mavenInt: digits without leading zeros
	qual  string      // mavenString: comparable qualifier
	items []mavenItem // mavenList
}

var mavenQualifiers = map[string]string{
	"alpha": "0", "beta": "1", "milestone": "2", "rc": "3", "cr": "3",
	"snapshot": "4", "": "5", "ga": "5", "final": "5", "release": "5", "sp": "6",
}

const mavenRelease = "5"

func mavenString(s string, followedByDigit bool) mavenItem {
	if followedByDigit && len(s) == 1 {
		switch s {
		case "a":
			s = "alpha"
		case "b":
			s = "beta"
		case "m":
			s = "milestone"
		}
	}
	q, ok := mavenQualifiers[s]
	if !ok {
		q = "7-" + s
	}
	return mavenItem{kind: mavenWord, qual: q}
}

func mavenParseItem(isDigit bool, s string) mavenItem {
	if isDigit {
		return mavenItem{kind: mavenInt, num: strings.TrimLeft(s, "0")}
	}
	return mavenString(s, false)
}

func (it mavenItem) isNull() bool {
	switch it.kind {
	case mavenInt:
		return it.num == ""
	case mavenWord:
		return it.qual == mavenRelease
	}
	return len(it.items) == 0
}

// parseMaven builds the item tree. Lists are kept as indexes into a slice so
// that the "list currently being filled" can be re-pointed like Maven's stack.
func parseMaven(v string) (mavenItem, error) {
	if err := checkLen("Maven", v); err != nil {
		return mavenItem{}, err
	}
	v = strings.ToLower(v)
	type node struct {
		items    []mavenItem
		children []int // index in nodes of each list item, -1 for non-lists
	}
	nodes := []*node{{}}
	cur := 0
	stack := []int{0}
	add := func(it mavenItem) {
		nodes[cur].items = append(nodes[cur].items, it)
		nodes[cur].children = append(nodes[cur].children, -1)
	}
	push := func() {
		nodes = append(nodes, &node{})
		idx := len(nodes) - 1
		nodes[cur].items = append(nodes[cur].items, mavenItem{kind: mavenList})
		nodes[cur].children = append(nodes[cur].children, idx)
		cur = idx
		stack = append(stack, idx)
	}
	digit := false
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '.':
			if i == start {
				add(mavenItem{kind: mavenInt})
			} else {
				add(mavenParseItem(digit, v[start:i]))
			}
			start = i + 1
		case c == '-':
			if i == start {
				add(mavenItem{kind: mavenInt})
			} else {
				add(mavenParseItem(digit, v[start:i]))
			}
			start = i + 1
			push()
		case isDigit(c):
			if !digit && i > start {
				add(mavenString(v[start:i], true))
				start = i
				push()
			}
			digit = true
		default:
			if digit && i > start {
				add(mavenParseItem(true, v[start:i]))
				start = i
				push()
			}
			digit = false
		}
	}
	if len(v) > start {
		add(mavenParseItem(digit, v[start:]))
	}
	// Normalise innermost lists first, as Maven pops its stack.
	for k := len(stack) - 1; k >= 0; k-- {
		n := nodes[stack[k]]
		for i := len(n.items) - 1; i >= 0; i-- {
			it := n.items[i]
			if n.children[i] >= 0 {
				it.items = nodes[n.children[i]].items
			}
			if it.isNull() {
				n.items = append(n.items[:i], n.items[i+1:]...)
				n.children = append(n.children[:i], n.children[i+1:]...)
			} else if it.kind != mavenList {
				break
			}
		}
		// A list left holding only a sub-list is that sub-list: once the
		// release qualifier before a hyphen is trimmed, 1-ga-1 reads as
		// 1-1, as the POM reference's version order requires.
		if k > 0 && len(n.items) == 1 && n.children[0] >= 0 {
			c := nodes[n.children[0]]
			n.items, n.children = c.items, c.children
		}
	}
	// Materialise the tree.
	var build func(idx int) mavenItem
	build = func(idx int) mavenItem {
		n := nodes[idx]
		out := mavenItem{kind: mavenList, items: make([]mavenItem, len(n.items))}
		for i, it := range n.items {
			if n.children[i] >= 0 {
				it = build(n.children[i])
			}
			out.items[i] = it
		}
		return out
	}
	return build(0), nil
}

// cmp compares it with other; other == nil stands for "nothing left".
func (it mavenItem) cmp(other *mavenItem) int {
	switch it.kind {
	case mavenInt:
		if other == nil {
			if it.num == "" {
				return 0
			}
			return 1
		}
		switch other.kind {
		case mavenInt:
			return cmpDigits(it.num, other.num)
		default:
			return 1
		}
	case mavenWord:
		if other == nil {
			return sign(strings.Compare(it.qual, mavenRelease))
		}
		switch other.kind {
		case mavenWord:
			return sign(strings.Compare(it.qual, other.qual))
		default:
			return -1
		}
	}
	if other == nil {
		if len(it.items) == 0 {
			return 0
		}
		return it.items[0].cmp(nil)
	}
	switch other.kind {
	case mavenInt:
		return -1
	case mavenWord:
		return 1
	}
	for i := 0; i < len(it.items) || i < len(other.items); i++ {
		var l, r *mavenItem
		if i < len(it.items) {
			l = &it.items[i]
		}
		if i < len(other.items) {
			r = &other.items[i]
		}
		var c int
		switch {
		case l == nil && r == nil:
		case l == nil:
			c = -r.cmp(nil)
		default:
			c = l.cmp(r)
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

func (maven) Compare(a, b string) (int, error) {
	va, err := parseMaven(a)
	if err != nil {
		return 0, err
	}
	vb, err := parseMaven(b)
	if err != nil {
		return 0, err
	}
	return va.cmp(&vb), nil
}
