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
	return isYAMLPath(path, true) && hasAll(content, "tekton.dev/")
}

// Find implements Finder.
func (Tekton) Find(content []byte) ([]Ref, error) {
	return findManifests(content, func(apiVersion string) bool { return strings.HasPrefix(apiVersion, "tekton.dev/") })
}
