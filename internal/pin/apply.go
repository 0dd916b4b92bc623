package pin

import (
	"fmt"
	"sort"
	"strings"

	"github.com/airlock-dev/airlock/internal/server"
)

// Edit replaces content[Start:End] with New.
type Edit struct {
	Start, End int
	New        string
}

// target is what a reference should become: the private copy at the
// approved digest, with the tag kept for humans.
type target struct {
	host, repo, tag, digest string
}

func (t target) String() string {
	s := t.host + "/" + t.repo
	if t.tag != "" {
		s += ":" + t.tag
	}
	return s + "@" + t.digest
}

// targetFor works out the target of a reference from its resolution; ok is
// false when nothing is approved.
func targetFor(text string, res server.Resolution) (target, bool) {
	if res.Digest == "" || res.Pinned == "" || res.Repository == "" {
		return target{}, false
	}
	img, ok := parseImage(text)
	if !ok {
		return target{}, false
	}
	t := target{host: registryHost(res.Pinned), repo: res.Repository, tag: img.Tag, digest: res.Digest}
	if img.Digest != "" {
		// a digest the file pins stays (the server checked it is approved)
		t.digest = img.Digest
	} else if t.tag == "" {
		t.tag = res.Tag
	}
	return t, t.host != ""
}

// edits returns the edits that make r name t; an error says why r cannot be
// rewritten in place.
func edits(r Ref, t target) ([]Edit, error) {
	if r.Manual != "" {
		if r.Kind == KindImage && r.Text == t.String() {
			return nil, nil
		}
		return nil, fmt.Errorf("%s", r.Manual)
	}
	switch r.Kind {
	case KindImage:
		want := t.String()
		if r.CommentTag != "" {
			// `repo@sha256:… # tag` keeps its form: the tag stays in the comment
			img, _ := parseImage(r.Text)
			if img.Tag == "" {
				want = t.host + "/" + t.repo + "@" + t.digest
			}
		}
		if r.Text == want {
			return nil, nil
		}
		return []Edit{{r.Start, r.End, want}}, nil
	case KindSplit:
		return splitEdits(r, t)
	}
	return nil, nil
}

func splitEdits(r Ref, t target) ([]Edit, error) {
	sp := r.Split
	var out []Edit
	set := func(f Field, val string) error {
		if f.Present {
			if f.Value != val {
				out = append(out, Edit{f.Start, f.End, f.Pad + val})
			}
			return nil
		}
		if f.Insert < 0 {
			return fmt.Errorf("cannot add %s: to this mapping", f.Key)
		}
		out = append(out, Edit{f.Insert, f.Insert, f.EOL + f.Indent + f.Key + ": " + val})
		return nil
	}
	switch sp.Style {
	case SplitHelm:
		if sp.Registry.Present && sp.Registry.Value != "" {
			if err := set(sp.Registry, t.host); err != nil {
				return nil, err
			}
			if err := set(sp.Repository, t.repo); err != nil {
				return nil, err
			}
		} else if err := set(sp.Repository, t.host+"/"+t.repo); err != nil {
			return nil, err
		}
		tag, _, _ := strings.Cut(sp.Tag.Value, "@")
		switch {
		case sp.Digest.Present:
			if err := set(sp.Digest, t.digest); err != nil {
				return nil, err
			}
			if sp.Tag.Present && tag != sp.Tag.Value {
				if err := set(sp.Tag, tag); err != nil {
					return nil, err
				}
			}
		case sp.Tag.Present:
			if err := set(sp.Tag, tag+"@"+t.digest); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("neither a tag nor a digest key to write the digest to")
		}
	case SplitKustomize:
		if err := set(sp.Repository, t.host+"/"+t.repo); err != nil {
			return nil, err
		}
		if err := set(sp.Digest, t.digest); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// apply applies non-overlapping edits (in order of Start; inserts at one
// place keep their order) and returns the new content; overlapping edits
// are an error.
func apply(content []byte, es []Edit) ([]byte, error) {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Start < es[j].Start })
	size := len(content)
	for _, e := range es {
		size += len(e.New) - max(e.End-e.Start, 0)
	}
	b := make([]byte, 0, max(size, 0))
	last := 0
	for _, e := range es {
		if e.Start < last || e.End < e.Start || e.End > len(content) {
			return nil, fmt.Errorf("overlapping or out-of-range edit at byte %d", e.Start)
		}
		b = append(b, content[last:e.Start]...)
		b = append(b, e.New...)
		last = e.End
	}
	return append(b, content[last:]...), nil
}
