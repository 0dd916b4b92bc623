package pin

import (
	"regexp"
	"strings"
)

var imageLine = regexp.MustCompile(`(?m)^[ \t]*(?:-[ \t]+)?["']?image["']?[ \t]*:[ \t]*(.*?)[ \t]*(?:#.*)?\r?$`)

// templateImageLines reads a template that is not YAML until rendered (a
// Helm chart's templates/): `image:` lines holding a literal reference are
// found, templated ones are left alone with a note.
func templateImageLines(content []byte) []Ref {
	ls := newLines(content)
	var refs []Ref
	for _, m := range imageLine.FindAllSubmatchIndex(content, -1) {
		s, e := m[2], m[3]
		v := string(content[s:e])
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			s, e, v = s+1, e-1, v[1:len(v)-1]
		}
		if v == "" || v == "|" || v == ">" {
			continue
		}
		r := Ref{Kind: KindImage, Start: s, End: e, Text: v}
		r.Line, r.Col = ls.pos(s)
		switch {
		case templated(v) || strings.Contains(v, "{{"):
			r.Kind, r.Note = KindNote, "templated value left alone: "+v
		default:
			if _, ok := parseImage(v); !ok {
				continue
			}
			r.CommentTag = trailingCommentTag(content, e)
		}
		refs = append(refs, r)
	}
	return refs
}
