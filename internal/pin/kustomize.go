package pin

import (
	"path/filepath"

	yaml "go.yaml.in/yaml/v3"
)

// Kustomize finds the `images:` overrides of a kustomization (name, newName,
// newTag, digest) and pins them by setting newName to the private copy and
// digest to the approved digest (adding the keys when absent).
type Kustomize struct{}

// Name implements Finder.
func (Kustomize) Name() string { return "kustomize" }

// Match implements Finder.
func (Kustomize) Match(path string, _ []byte) bool {
	b := filepath.Base(path)
	return b == "kustomization.yaml" || b == "kustomization.yml" || b == "Kustomization"
}

// Find implements Finder.
func (Kustomize) Find(content []byte) ([]Ref, error) {
	f, err := parseYAML(content)
	return findYAML(content, f, err, Kustomize{})
}

func (Kustomize) notYAML(_ []byte, err error) ([]Ref, error) { return nil, err }

func (Kustomize) findYAML(f *yamlFile) []Ref {
	var refs []Ref
	for _, doc := range f.docs {
		imgs := get(root(doc), "images")
		if imgs == nil || imgs.Kind != yaml.SequenceNode {
			continue
		}
		for _, it := range imgs.Content {
			it = deref(it)
			if it == nil || it.Kind != yaml.MappingNode {
				continue
			}
			if r, ok := f.kustomizeImage(it); ok {
				refs = append(refs, r)
			}
		}
	}
	return refs
}

func (f *yamlFile) kustomizeImage(m *yaml.Node) (Ref, bool) {
	nm, newName, tag, dig := str(get(m, "name")), str(get(m, "newName")), str(get(m, "newTag")), str(get(m, "digest"))
	if nm == "" {
		return Ref{}, false
	}
	np, _ := getPair(m, "name")
	r := Ref{Kind: KindSplit, Line: np.value.Line, Col: np.value.Column}
	r.Start = max(f.offset(np.value.Line, np.value.Column), 0)
	text := nm
	if newName != "" {
		text = newName
	}
	if tag != "" {
		text += ":" + tag
	}
	if dig != "" {
		text += "@" + dig
	}
	r.Text = text
	if templated(text) {
		r.Kind, r.Note = KindNote, "templated value left alone: "+text
		return r, true
	}
	if _, ok := parseImage(text); !ok {
		r.Kind, r.Note = KindNote, "not an image reference: "+text
		return r, true
	}
	sp := &Split{Style: SplitKustomize}
	var ok [4]bool
	sp.Name, ok[0] = f.field(m, "name")
	sp.Repository, ok[1] = f.field(m, "newName")
	sp.Tag, ok[2] = f.field(m, "newTag")
	sp.Digest, ok[3] = f.field(m, "digest")
	for _, o := range ok {
		if !o {
			r.Manual = "a field of the images entry is not a plain single-line scalar"
		}
	}
	if (!sp.Repository.Present && sp.Repository.Insert < 0) || (!sp.Digest.Present && sp.Digest.Insert < 0) {
		r.Manual = "newName and digest cannot be added to a flow-style entry; write them"
	}
	r.Split = sp
	return r, true
}
