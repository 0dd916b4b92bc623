package pin

import (
	"bytes"
	"fmt"
	"strings"
)

// UnifiedDiff returns a unified diff (3 lines of context) from old to new,
// as `git apply` and `patch -p1` read it.
func UnifiedDiff(path string, old, new []byte) string {
	a, b := splitLines(old), splitLines(new)
	ops := diffLines(a, b)
	if len(ops) == 0 {
		return ""
	}
	p := strings.TrimPrefix(toSlash(path), "./")
	var out strings.Builder
	fmt.Fprintf(&out, "--- a/%s\n+++ b/%s\n", p, p)
	const ctx = 3
	// group edit ops into hunks
	type op struct {
		kind byte // ' ', '-', '+'
		line string
		ai   int // index in a of this line (or of the next a line for '+')
		bi   int
	}
	var all []op
	ai, bi := 0, 0
	for _, o := range ops {
		for ai < o.a {
			all = append(all, op{' ', a[ai], ai, bi})
			ai++
			bi++
		}
		for k := 0; k < o.del; k++ {
			all = append(all, op{'-', a[ai], ai, bi})
			ai++
		}
		for k := 0; k < o.ins; k++ {
			all = append(all, op{'+', b[bi], ai, bi})
			bi++
		}
	}
	for ai < len(a) {
		all = append(all, op{' ', a[ai], ai, bi})
		ai++
		bi++
	}
	for i := 0; i < len(all); {
		if all[i].kind == ' ' {
			i++
			continue
		}
		start := max(i-ctx, 0)
		end := i
		for {
			for end < len(all) && all[end].kind != ' ' {
				end++
			}
			j := end
			for j < len(all) && all[j].kind == ' ' && j-end < 2*ctx+1 {
				j++
			}
			if j < len(all) && all[j].kind != ' ' && j-end <= 2*ctx {
				end = j
				continue
			}
			break
		}
		stop := min(end+ctx, len(all))
		h := all[start:stop]
		na, nb := 0, 0
		for _, o := range h {
			if o.kind != '+' {
				na++
			}
			if o.kind != '-' {
				nb++
			}
		}
		as, bs := h[0].ai+1, h[0].bi+1
		if na == 0 {
			as--
		}
		if nb == 0 {
			bs--
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(as, na), hunkRange(bs, nb))
		for _, o := range h {
			out.WriteByte(o.kind)
			out.WriteString(o.line)
			if !strings.HasSuffix(o.line, "\n") {
				out.WriteString("\n\\ No newline at end of file\n")
			}
		}
		i = stop
	}
	return out.String()
}

func hunkRange(start, n int) string {
	if n == 1 {
		return fmt.Sprint(start)
	}
	return fmt.Sprintf("%d,%d", start, n)
}

func toSlash(p string) string { return strings.ReplaceAll(p, "\\", "/") }

// splitLines splits after each '\n', keeping it (and any '\r' before it).
func splitLines(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, string(b))
			break
		}
		out = append(out, string(b[:i+1]))
		b = b[i+1:]
	}
	return out
}

// diffOp deletes del lines of a at index a and inserts ins lines of b.
type diffOp struct{ a, del, ins int }

// diffLines is Myers' O(ND) diff over lines, returned as edit operations.
func diffLines(a, b []string) []diffOp {
	// trim common prefix and suffix: pin changes few lines
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	a2, b2 := a[pre:len(a)-suf], b[pre:len(b)-suf]
	n, m := len(a2), len(b2)
	if n == 0 && m == 0 {
		return nil
	}
	max := n + m
	off := max
	v := make([]int, 2*max+2)
	var trace [][]int
	found := false
	for d := 0; d <= max && !found; d++ {
		trace = append(trace, append([]int(nil), v...))
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1]
			} else {
				x = v[off+k-1] + 1
			}
			y := x - k
			for x < n && y < m && a2[x] == b2[y] {
				x++
				y++
			}
			v[off+k] = x
			if x >= n && y >= m {
				found = true
				break
			}
		}
	}
	// backtrack into a list of single-line steps
	type step struct {
		del bool
		x   int
	}
	var steps []step
	x, y := n, m
	for d := len(trace) - 1; d > 0; d-- {
		vv := trace[d]
		k := x - y
		var pk int
		if k == -d || (k != d && vv[off+k-1] < vv[off+k+1]) {
			pk = k + 1
		} else {
			pk = k - 1
		}
		px := vv[off+pk]
		py := px - pk
		for x > px && y > py {
			x--
			y--
		}
		if x == px {
			steps = append(steps, step{false, x}) // insert b[py] before a[x]
		} else {
			steps = append(steps, step{true, px}) // delete a[px]
		}
		x, y = px, py
	}
	var ops []diffOp
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i]
		ax := s.x + pre
		if len(ops) > 0 {
			last := &ops[len(ops)-1]
			if last.a+last.del == ax && (s.del && last.ins == 0 || !s.del) {
				if s.del {
					last.del++
				} else {
					last.ins++
				}
				continue
			}
		}
		if s.del {
			ops = append(ops, diffOp{ax, 1, 0})
		} else {
			ops = append(ops, diffOp{ax, 0, 1})
		}
	}
	return ops
}
