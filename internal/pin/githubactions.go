package pin

import (
	"path/filepath"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// GitHubActions finds job containers (`container: node:22` or
// `container: {image: …}`), service containers, `uses: docker://…` steps
// and Docker actions' `runs.image` in workflows and action.yml, and remote
// scripts in `run:` steps.
type GitHubActions struct{}

// Name implements Finder.
func (GitHubActions) Name() string { return "github-actions" }

// Match implements Finder.
func (GitHubActions) Match(path string, _ []byte) bool {
	p := filepath.ToSlash(path)
	b := filepath.Base(p)
	return (strings.Contains(p, ".github/workflows/") && isYAMLPath(p, false)) || b == "action.yml" || b == "action.yaml"
}

// Find implements Finder.
func (GitHubActions) Find(content []byte) ([]Ref, error) {
	f, err := parseYAML(content)
	return findYAML(content, f, err, GitHubActions{})
}

func (GitHubActions) notYAML(_ []byte, err error) ([]Ref, error) { return nil, err }

func (GitHubActions) findYAML(f *yamlFile) []Ref {
	var refs []Ref
	add := func(r Ref, ok bool) {
		if ok {
			refs = append(refs, r)
		}
	}
	steps := func(s *yaml.Node) {
		if s == nil || s.Kind != yaml.SequenceNode {
			return
		}
		for _, st := range s.Content {
			add(f.valueRef(get(st, "uses"), "docker://"))
			if run := get(st, "run"); isScalar(run) {
				refs = append(refs, f.scriptRefs(run)...)
			}
		}
	}
	for _, doc := range f.docs {
		r := root(doc)
		for _, job := range pairs(get(r, "jobs")) {
			j := deref(job.value)
			if c := get(j, "container"); c != nil {
				if c.Kind == yaml.ScalarNode {
					add(f.valueRef(c, ""))
				} else {
					add(f.valueRef(get(c, "image"), ""))
				}
			}
			for _, svc := range pairs(get(j, "services")) {
				s := deref(svc.value)
				if isScalar(s) {
					add(f.valueRef(s, ""))
				} else {
					add(f.valueRef(get(s, "image"), ""))
				}
			}
			steps(get(j, "steps"))
		}
		if runs := get(r, "runs"); runs != nil {
			add(f.valueRef(get(runs, "image"), "docker://"))
			steps(get(runs, "steps"))
		}
	}
	return refs
}
