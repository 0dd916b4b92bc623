package pin

import "strings"

// Tekton finds step, sidecar and stepTemplate images of Tekton Tasks,
// Pipelines (inline taskSpec), TaskRuns and PipelineRuns, and remote
// scripts in steps' script and args.
type Tekton struct{}

// Name implements Finder.
func (Tekton) Name() string { return "tekton" }

// Match implements Finder.
func (Tekton) Match(path string, content []byte) bool {
	return isYAMLPath(path, true) && hasAll(content, "tekton.dev/") && mayHold(content)
}

// Find implements Finder.
func (Tekton) Find(content []byte) ([]Ref, error) {
	f, err := parseYAML(content)
	return findYAML(content, f, err, Tekton{})
}

func (Tekton) notYAML(content []byte, err error) ([]Ref, error) { return templateOrError(content, err) }

func (Tekton) findYAML(f *yamlFile) []Ref {
	return f.manifests(func(apiVersion string) bool { return strings.HasPrefix(apiVersion, "tekton.dev/") })
}
