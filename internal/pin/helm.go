package pin

import (
	"path/filepath"
	"regexp"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Helm finds images in Helm values files: the split form
// `image: {registry, repository, tag, digest}` under any key naming an image
// (image, initImage, sidecar.image…), and plain `image: nginx:1.27` strings.
// A split image is pinned by setting its digest (or, without a digest key,
// `tag: 1.27@sha256:…`) and pointing registry/repository to the private copy.
type Helm struct{}

// Name implements Finder.
func (Helm) Name() string { return "helm" }

var helmValuesName = regexp.MustCompile(`^(?:.*[._-])?values(?:[._-].*)?\.ya?ml$`)

// Match implements Finder: values.yaml, values-prod.yaml, ci/staging.values.yml.
func (Helm) Match(path string, _ []byte) bool {
	b := strings.ToLower(filepath.Base(path))
	return strings.Contains(b, "values") && helmValuesName.MatchString(b)
}

func imageKey(k string) bool {
	k = strings.ToLower(k)
	return k == "image" || (strings.HasSuffix(k, "image") && !strings.Contains(k, "pull"))
}

// Find implements Finder.
func (Helm) Find(content []byte) ([]Ref, error) {
	f, err := parseYAML(content)
	return findYAML(content, f, err, Helm{})
}

func (Helm) notYAML(_ []byte, err error) ([]Ref, error) { return nil, err }

func (Helm) findYAML(f *yamlFile) []Ref {
	var refs []Ref
	for _, doc := range f.docs {
		walkYAML(root(doc), func(n *yaml.Node, c *yctx) {
			if c == nil || !imageKey(c.Key) {
				return
			}
			switch n.Kind {
			case yaml.ScalarNode:
				if r, ok := f.valueRef(n, ""); ok && (r.Kind == KindImage || strings.HasPrefix(r.Note, "templated")) {
					refs = append(refs, r)
				}
			case yaml.MappingNode:
				if get(n, "repository") != nil {
					if r, ok := f.helmImage(n); ok {
						refs = append(refs, r)
					}
				}
			}
		})
	}
	return refs
}

func (f *yamlFile) helmImage(m *yaml.Node) (Ref, bool) {
	reg, repo, tag, dig := str(get(m, "registry")), str(get(m, "repository")), str(get(m, "tag")), str(get(m, "digest"))
	rp, _ := getPair(m, "repository")
	r := Ref{Kind: KindSplit, Line: rp.value.Line, Col: rp.value.Column}
	r.Start = max(f.offset(rp.value.Line, rp.value.Column), 0)
	text := repo
	if reg != "" {
		text = reg + "/" + repo
	}
	if tag != "" {
		text += ":" + tag
	}
	if dig != "" && !strings.Contains(tag, "@") {
		text += "@" + dig
	}
	r.Text = text
	if repo == "" {
		return r, false
	}
	if templated(text) {
		r.Kind, r.Note = KindNote, "templated value left alone: "+text
		return r, true
	}
	if tag == "" && dig == "" {
		r.Kind, r.Note = KindNote, text+" has no tag: the chart's appVersion applies; set the tag to pin it"
		return r, true
	}
	if _, ok := parseImage(text); !ok {
		r.Kind, r.Note = KindNote, "not an image reference: "+text
		return r, true
	}
	sp := &Split{Style: SplitHelm}
	var ok [4]bool
	sp.Registry, ok[0] = f.field(m, "registry")
	sp.Repository, ok[1] = f.field(m, "repository")
	sp.Tag, ok[2] = f.field(m, "tag")
	sp.Digest, ok[3] = f.field(m, "digest")
	for _, o := range ok {
		if !o {
			r.Manual = "a field of the image map is not a plain single-line scalar"
		}
	}
	if !sp.Digest.Present && !sp.Tag.Present {
		r.Manual = "neither a tag nor a digest key to write the digest to"
	}
	r.Split = sp
	return r, true
}
