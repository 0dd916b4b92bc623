package pin

import (
	"path/filepath"
	"regexp"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Compose finds service images in docker-compose / compose files (shared
// through x- anchors and merge keys too) and build args that name images
// (BASE_IMAGE=…); `${IMAGE:-nginx:1.27}` defaults are pinned in place,
// other variables are left alone with a note.
type Compose struct{}

// Name implements Finder.
func (Compose) Name() string { return "compose" }

var composeName = regexp.MustCompile(`^(?:docker-)?compose(?:[._-][^/]*)?\.ya?ml$`)

// Match implements Finder.
func (Compose) Match(path string, _ []byte) bool {
	b := strings.ToLower(filepath.Base(path))
	return strings.Contains(b, "compose") && composeName.MatchString(b)
}

// Find implements Finder.
func (Compose) Find(content []byte) ([]Ref, error) {
	f, err := parseYAML(content)
	return findYAML(content, f, err, Compose{})
}

func (Compose) notYAML(_ []byte, err error) ([]Ref, error) { return nil, err }

func (Compose) findYAML(f *yamlFile) []Ref {
	var refs []Ref
	for _, doc := range f.docs {
		for _, svc := range pairs(get(root(doc), "services")) {
			s := deref(svc.value)
			if r, ok := f.valueRef(get(s, "image"), ""); ok {
				refs = append(refs, r)
			}
			args := get(get(s, "build"), "args")
			if args == nil {
				continue
			}
			switch args.Kind {
			case yaml.MappingNode:
				for _, a := range pairs(args) {
					if imageArg(a.key.Value) {
						if r, ok := f.valueRef(a.value, ""); ok {
							r.Via = "build arg " + a.key.Value
							refs = append(refs, r)
						}
					}
				}
			case yaml.SequenceNode:
				for _, it := range args.Content {
					it = deref(it)
					k, v, found := strings.Cut(str(it), "=")
					if !found || !imageArg(k) {
						continue
					}
					if r, ok := f.valueRef(it, k+"="); ok {
						r.Via = "build arg " + k
						if r.Text == v || r.Kind == KindNote {
							refs = append(refs, r)
						}
					}
				}
			}
		}
	}
	return refs
}

func imageArg(k string) bool {
	k = strings.ToUpper(k)
	return strings.Contains(k, "IMAGE") || strings.Contains(k, "BASE") || strings.HasSuffix(k, "_FROM")
}
