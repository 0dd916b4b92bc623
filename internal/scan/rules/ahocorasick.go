package rules

// automaton is an Aho–Corasick matcher compiled to a full DFA over bytes:
// one table lookup per input byte, state carried across calls, so a file is
// matched in one pass with memory bounded by the patterns, not the input.
type automaton struct {
	next [][256]int32 // transitions, failure links folded in
	out  [][]int32    // pattern ids ending at each state (suffix outputs merged)
}

func newAutomaton(patterns [][]byte) *automaton {
	a := &automaton{next: make([][256]int32, 1), out: make([][]int32, 1)}
	for i := range a.next[0] {
		a.next[0][i] = -1
	}
	for id, p := range patterns {
		s := int32(0)
		for _, b := range p {
			if a.next[s][b] < 0 {
				var row [256]int32
				for i := range row {
					row[i] = -1
				}
				a.next = append(a.next, row)
				a.out = append(a.out, nil)
				a.next[s][b] = int32(len(a.next) - 1)
			}
			s = a.next[s][b]
		}
		a.out[s] = append(a.out[s], int32(id))
	}
	// Breadth-first: failure links, then fold them into the transitions.
	fail := make([]int32, len(a.next))
	queue := make([]int32, 0, len(a.next))
	for b := 0; b < 256; b++ {
		if t := a.next[0][b]; t < 0 {
			a.next[0][b] = 0
		} else {
			fail[t] = 0
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		a.out[s] = append(a.out[s], a.out[fail[s]]...)
		for b := 0; b < 256; b++ {
			t := a.next[s][b]
			if t < 0 {
				a.next[s][b] = a.next[fail[s]][b]
				continue
			}
			fail[t] = a.next[fail[s]][b]
			queue = append(queue, t)
		}
	}
	return a
}

// feed runs data from state s and calls hit(pattern, end offset) for every
// occurrence; it returns the state to continue from.
func (a *automaton) feed(s int32, data []byte, hit func(id int32, end int)) int32 {
	for i, b := range data {
		s = a.next[s][b]
		if o := a.out[s]; len(o) > 0 {
			for _, id := range o {
				hit(id, i+1)
			}
		}
	}
	return s
}
