package pin

import (
	"path/filepath"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// GitLabCI finds `image:` and `services:` (as strings or `name:` maps) at
// the top level, in `default:` and in every job (hidden .templates too) of
// GitLab CI files, and remote scripts in script, before_script and
// after_script.
type GitLabCI struct{}

// Name implements Finder.
func (GitLabCI) Name() string { return "gitlab-ci" }

// Match implements Finder: .gitlab-ci.yml, *.gitlab-ci.yml and files under .gitlab/ci/.
func (GitLabCI) Match(path string, _ []byte) bool {
	p := filepath.ToSlash(path)
	b := filepath.Base(p)
	return b == ".gitlab-ci.yml" || b == ".gitlab-ci.yaml" || strings.HasSuffix(b, ".gitlab-ci.yml") ||
		(strings.Contains(p, ".gitlab/ci/") && isYAMLPath(p, false))
}

var gitlabReserved = map[string]bool{"stages": true, "variables": true, "include": true, "workflow": true, "cache": true, "spec": true}

// Find implements Finder.
func (GitLabCI) Find(content []byte) ([]Ref, error) {
	f, err := parseYAML(content)
	return findYAML(content, f, err, GitLabCI{})
}

func (GitLabCI) notYAML(_ []byte, err error) ([]Ref, error) { return nil, err }

func (GitLabCI) findYAML(f *yamlFile) []Ref {
	var refs []Ref
	image := func(n *yaml.Node) {
		n = deref(n)
		if n != nil && n.Kind == yaml.MappingNode {
			n = get(n, "name")
		}
		if r, ok := f.valueRef(n, ""); ok {
			refs = append(refs, r)
		}
	}
	var scripts func(n *yaml.Node, depth int)
	scripts = func(n *yaml.Node, depth int) {
		n = deref(n)
		if n == nil || depth > 10 {
			return
		}
		if n.Kind == yaml.ScalarNode {
			refs = append(refs, f.scriptRefs(n)...)
			return
		}
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				scripts(c, depth+1)
			}
		}
	}
	job := func(j *yaml.Node) {
		if p, ok := getPair(j, "image"); ok {
			image(p.value)
		}
		if s := get(j, "services"); s != nil && s.Kind == yaml.SequenceNode {
			for _, it := range s.Content {
				image(it)
			}
		}
		for _, k := range []string{"before_script", "script", "after_script"} {
			scripts(get(j, k), 0)
		}
	}
	for _, doc := range f.docs {
		r := root(doc)
		job(r)
		for _, p := range pairs(r) {
			if gitlabReserved[p.key.Value] {
				continue
			}
			if v := deref(p.value); v != nil && v.Kind == yaml.MappingNode {
				job(v)
			}
		}
	}
	return refs
}
