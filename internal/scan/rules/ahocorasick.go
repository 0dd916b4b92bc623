package rules

// automaton is an Aho–Corasick matcher compiled to a full DFA over bytes in
// one flat table: one lookup per input byte, state carried across calls, so
// a file is matched in one pass with memory bounded by the patterns, not the
// input. States with outputs are marked by the table's high bit so the hot
// loop needs no second lookup.
type automaton struct {
	next []int32   // state<<8 | byte → next state, outMark set if it has outputs
	out  [][]int32 // pattern ids ending at each state (suffix outputs merged)
	lens []int     // pattern lengths
}

const outMark = int32(-1 << 31)

func newAutomaton(patterns [][]byte) *automaton {
	goto_ := [][256]int32{{}}
	out := [][]int32{nil}
	for i := range goto_[0] {
		goto_[0][i] = -1
	}
	a := &automaton{}
	for id, p := range patterns {
		a.lens = append(a.lens, len(p))
		s := int32(0)
		for _, b := range p {
			if goto_[s][b] < 0 {
				var row [256]int32
				for i := range row {
					row[i] = -1
				}
				goto_ = append(goto_, row)
				out = append(out, nil)
				goto_[s][b] = int32(len(goto_) - 1)
			}
			s = goto_[s][b]
		}
		out[s] = append(out[s], int32(id))
	}
	// Breadth-first: failure links, then fold them into the transitions.
	fail := make([]int32, len(goto_))
	queue := make([]int32, 0, len(goto_))
	for b := 0; b < 256; b++ {
		if t := goto_[0][b]; t < 0 {
			goto_[0][b] = 0
		} else {
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		out[s] = append(out[s], out[fail[s]]...)
		for b := 0; b < 256; b++ {
			t := goto_[s][b]
			if t < 0 {
				goto_[s][b] = goto_[fail[s]][b]
				continue
			}
			fail[t] = goto_[fail[s]][b]
			queue = append(queue, t)
		}
	}
	a.out = out
	a.next = make([]int32, len(goto_)*256)
	for s, row := range goto_ {
		for b, t := range row {
			v := t
			if len(out[t]) > 0 {
				v |= outMark
			}
			a.next[s<<8|b] = v
		}
	}
	return a
}

// lower folds ASCII letters: the automaton runs over lower-cased bytes.
var lower = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if 'A' <= i && i <= 'Z' {
			t[i] = byte(i + 32)
		}
	}
	return t
}()

// feed runs data from state s (case-folded) and calls hit(pattern, end
// offset) for every occurrence; it returns the state to continue from.
func (a *automaton) feed(s int32, data []byte, hit func(id int32, end int)) int32 {
	next := a.next
	for i, b := range data {
		s = next[int(s)<<8|int(lower[b])]
		if s < 0 {
			s &^= outMark
			for _, id := range a.out[s] {
				hit(id, i+1)
			}
		}
	}
	return s
}
