package pin

import (
	"bytes"
	"path/filepath"
	"strings"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// Kubernetes finds container images in Kubernetes manifests of any kind:
// Pods, workload templates (Deployment, StatefulSet, DaemonSet, Job, CronJob
// jobTemplate…), containers, initContainers and ephemeralContainers, and
// custom resources that hold images in container-like lists. Multi-document
// files and Helm templates (read line by line, templated values left alone)
// are understood. Shell commands in command/args are checked for remote
// scripts.
type Kubernetes struct{}

// Name implements Finder.
func (Kubernetes) Name() string { return "kubernetes" }

// Match implements Finder: YAML or JSON with apiVersion and kind, and an
// image or a download to look at.
func (Kubernetes) Match(path string, content []byte) bool {
	return isYAMLPath(path, true) && hasAll(content, "apiVersion", "kind") && mayHold(content)
}

// mayHold is a cheap test that content can hold an image or a remote script.
func mayHold(content []byte) bool {
	return bytes.Contains(content, []byte("image")) || bytes.Contains(content, []byte("curl")) ||
		bytes.Contains(content, []byte("wget")) || containsFold(content, "iwr") ||
		containsFold(content, "invoke-") || containsFold(content, "webclient")
}

// containsFold reports whether b lower-cased contains word (lower-case
// ASCII), without copying b when it is ASCII. It may say yes where the
// words differ in punctuation; never no where they match.
func containsFold(b []byte, word string) bool {
	if word == "" {
		return true
	}
	for _, c := range b {
		if c >= utf8.RuneSelf {
			// non-ASCII letters can lower-case to ASCII ones (K, İ)
			return bytes.Contains(bytes.ToLower(b), []byte(word))
		}
	}
	first := word[0]
	for i := 0; i+len(word) <= len(b); i++ {
		if b[i]|0x20 != first {
			continue
		}
		j := 1
		for j < len(word) && b[i+j]|0x20 == word[j] {
			j++
		}
		if j == len(word) {
			return true
		}
	}
	return false
}

// Find implements Finder.
func (Kubernetes) Find(content []byte) ([]Ref, error) {
	f, err := parseYAML(content)
	return findYAML(content, f, err, Kubernetes{})
}

func (Kubernetes) notYAML(content []byte, err error) ([]Ref, error) {
	return templateOrError(content, err)
}

func (Kubernetes) findYAML(f *yamlFile) []Ref {
	return f.manifests(func(apiVersion string) bool { return !strings.HasPrefix(apiVersion, "tekton.dev/") })
}

// templateOrError reads a file that is not YAML as a template if it is one
// (a Helm chart's templates/), else reports the error.
func templateOrError(content []byte, err error) ([]Ref, error) {
	if isTemplate(content) {
		return spanned(templateImageLines(content)), nil
	}
	return nil, err
}

// manifests reads every document whose apiVersion want accepts.
func (f *yamlFile) manifests(want func(apiVersion string) bool) []Ref {
	var refs []Ref
	for _, doc := range f.docs {
		r := root(doc)
		api, kind := str(get(r, "apiVersion")), str(get(r, "kind"))
		if api == "" || kind == "" || !want(api) {
			continue
		}
		refs = append(refs, f.containerImages(r)...)
	}
	return refs
}

// containerImages finds `image:` scalars of container-like mappings (items
// of a list, or values of a key naming a container, step or sidecar), and
// remote scripts in command, args and script.
func (f *yamlFile) containerImages(r *yaml.Node) []Ref {
	var refs []Ref
	walkYAML(r, func(n *yaml.Node, c *yctx) {
		if c == nil || n.Kind != yaml.ScalarNode {
			return
		}
		switch c.Key {
		case "image":
			p := c.Parent
			if p == nil || !(p.InSeq || containerLike(p.Key)) {
				return
			}
			if ref, ok := f.valueRef(n, ""); ok {
				refs = append(refs, ref)
			}
		case "command", "args", "script":
			refs = append(refs, f.scriptRefs(n)...)
		}
	})
	return refs
}

func containerLike(key string) bool {
	k := strings.ToLower(key)
	return strings.Contains(k, "container") || strings.Contains(k, "sidecar") || k == "steptemplate" || k == "script" || k == "step"
}

// scriptRefs reports remote scripts in a shell text scalar.
func (f *yamlFile) scriptRefs(n *yaml.Node) []Ref {
	hits := findScripts(n.Value)
	if len(hits) == 0 {
		return nil
	}
	start, _, exact := f.scalarSpan(n)
	var refs []Ref
	for _, h := range hits {
		r := Ref{Kind: KindScript, Text: h.Text, Note: scriptNote(h)}
		if exact {
			r.Start = start + h.Offset
			r.Line, r.Col = f.pos(r.Start)
		} else {
			line := n.Line + strings.Count(n.Value[:h.Offset], "\n")
			if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
				line++
			}
			t := f.lineText(line)
			r.Line, r.Col = line, len([]rune(t))-len([]rune(strings.TrimLeft(t, " \t")))+1
			r.Start = max(f.offset(r.Line, r.Col), 0)
		}
		refs = append(refs, r)
	}
	return refs
}

func isYAMLPath(path string, json bool) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".yaml" || ext == ".yml" || (json && ext == ".json")
}

func hasAll(content []byte, words ...string) bool {
	for _, w := range words {
		if !bytes.Contains(content, []byte(w)) {
			return false
		}
	}
	return true
}

func isTemplate(content []byte) bool {
	return hasAll(content, "{{") || hasAll(content, "{%")
}
