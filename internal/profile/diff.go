package profile

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Diff is what changed in an image's behaviour from an old profile to a
// new one: the seed's "reference behaviour the anomalous version deviates
// from". Each Change lists keys (stable across runs: paths, names rather
// than per-run sinkhole addresses, note codes with their messages) added
// in the new profile and gone from the old one.
type Diff struct {
	Old          Image  `json:"old"`
	New          Image  `json:"new"`
	Executables  Change `json:"executables"`
	Destinations Change `json:"destinations"`
	DNS          Change `json:"dns"`
	Listening    Change `json:"listening"`
	Written      Change `json:"written"` // written or created paths
	Deleted      Change `json:"deleted"`
	Notes        Change `json:"notes"`
}

// Change is the difference of one set.
type Change struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
}

// Empty reports whether nothing changed.
func (d Diff) Empty() bool {
	for _, c := range d.changes() {
		if len(c.c.Added)+len(c.c.Removed) > 0 {
			return false
		}
	}
	return true
}

type namedChange struct {
	name string
	c    Change
}

func (d Diff) changes() []namedChange {
	return []namedChange{{"executable", d.Executables}, {"destination", d.Destinations}, {"dns", d.DNS},
		{"listening", d.Listening}, {"written", d.Written}, {"deleted", d.Deleted}, {"note", d.Notes}}
}

// Compare diffs two profiles (of two versions of one image, or two runs of one).
func Compare(old, new Profile) Diff {
	return Diff{
		Old: old.Image, New: new.Image,
		Executables:  change(execKeys(old), execKeys(new)),
		Destinations: change(destKeys(old), destKeys(new)),
		DNS:          change(dnsKeys(old), dnsKeys(new)),
		Listening:    change(listenKeys(old), listenKeys(new)),
		Written:      change(pathKeys(old.Files.Written, old.Files.Created), pathKeys(new.Files.Written, new.Files.Created)),
		Deleted:      change(pathKeys(old.Files.Deleted), pathKeys(new.Files.Deleted)),
		Notes:        change(noteKeys(old), noteKeys(new)),
	}
}

func change(old, new map[string]bool) Change {
	c := Change{Added: []string{}, Removed: []string{}}
	for k := range new {
		if !old[k] {
			c.Added = append(c.Added, k)
		}
	}
	for k := range old {
		if !new[k] {
			c.Removed = append(c.Removed, k)
		}
	}
	sort.Strings(c.Added)
	sort.Strings(c.Removed)
	return c
}

func execKeys(p Profile) map[string]bool {
	m := map[string]bool{}
	for _, e := range p.Executables {
		m[e.Path] = true
	}
	return m
}

// destKeys name destinations as Destination.Key does: "tcp pool.example:3333 stratum".
func destKeys(p Profile) map[string]bool {
	m := map[string]bool{}
	for _, d := range p.Network.Destinations {
		m[d.Key()] = true
	}
	return m
}

func dnsKeys(p Profile) map[string]bool {
	m := map[string]bool{}
	for _, q := range p.Network.DNS {
		m[q.Name+" "+q.Type] = true
	}
	return m
}

func listenKeys(p Profile) map[string]bool {
	m := map[string]bool{}
	for _, l := range p.Network.Listening {
		m[l.Proto+" "+strconv.Itoa(l.Port)] = true
	}
	return m
}

func pathKeys(lists ...[]Path) map[string]bool {
	m := map[string]bool{}
	for _, l := range lists {
		for _, f := range l {
			m[f.Path] = true
		}
	}
	return m
}

func noteKeys(p Profile) map[string]bool {
	m := map[string]bool{}
	for _, n := range Normalize(Profile{Notes: p.Notes}).Notes {
		m[n.Code+": "+n.Message] = true
	}
	return m
}

// WriteText renders d for people: one line per change, "+" for what the
// new profile adds, "-" for what it no longer does.
func (d Diff) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "profile diff %s → %s\n", orNone(d.Old.Digest), orNone(d.New.Digest))
	if d.Empty() {
		b.WriteString("no change in behaviour\n")
	}
	for _, nc := range d.changes() {
		for _, k := range nc.c.Added {
			fmt.Fprintf(&b, "+ %-11s %s\n", nc.name, k)
		}
		for _, k := range nc.c.Removed {
			fmt.Fprintf(&b, "- %-11s %s\n", nc.name, k)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON renders d as indented JSON.
func (d Diff) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

func orNone(s string) string {
	if s == "" {
		return "(no digest)"
	}
	return s
}
