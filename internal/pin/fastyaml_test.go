package pin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// yamlV3 parses every document with yaml.v3 alone.
func yamlV3(content []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(content))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, &n)
	}
}

// sameNodes compares what finders read of two trees: kind, style, tag,
// value, anchor, alias, position and children (comments aside).
func sameNodes(a, b *yaml.Node, path string) error {
	if a == nil || b == nil {
		if a != b {
			return fmt.Errorf("%s: one node is nil", path)
		}
		return nil
	}
	if a.Kind != b.Kind || a.Style != b.Style || a.Tag != b.Tag || a.Value != b.Value || a.Anchor != b.Anchor ||
		a.Line != b.Line || a.Column != b.Column || len(a.Content) != len(b.Content) || (a.Alias == nil) != (b.Alias == nil) {
		return fmt.Errorf("%s: fast %+v, yaml.v3 %+v", path, *a, *b)
	}
	for i := range a.Content {
		if err := sameNodes(a.Content[i], b.Content[i], fmt.Sprintf("%s/%d", path, i)); err != nil {
			return err
		}
	}
	return nil
}

func checkFastYAML(t *testing.T, src []byte) bool {
	t.Helper()
	fast, ok := fastYAML(src)
	if !ok {
		return false
	}
	slow, err := yamlV3(src)
	if err != nil {
		t.Fatalf("fast parser accepted what yaml.v3 refuses (%v):\n%s", err, src)
	}
	if len(fast) != len(slow) {
		t.Fatalf("fast parser read %d documents, yaml.v3 %d:\n%s", len(fast), len(slow), src)
	}
	for i := range fast {
		if err := sameNodes(fast[i], slow[i], fmt.Sprintf("doc %d", i)); err != nil {
			t.Fatalf("%v\n%s", err, src)
		}
	}
	return true
}

// fastYAMLShapes are the shapes manifests are written in: the fast parser
// must take them (else it is dead code) and agree with yaml.v3.
var fastYAMLShapes = []string{
	"# app 1\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-1\n  labels: {app: app-1}\nspec:\n  replicas: 2\n  template:\n    spec:\n      initContainers:\n        - name: init\n          image: \"127.0.0.1:5000/library/app-01:1.1\"\n      containers:\n        - name: app\n          image: 127.0.0.1:5000/library/app-04:1.4 # main\n          ports:\n            - containerPort: 8080\n        - name: sidecar\n          image: 'nginx:1.27'\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: app-1\nspec:\n  ports: [{port: 80, targetPort: 8080}]\n",
	"services:\n  web:\n    image: nginx:1.27\n    ports: [\"8080:80\"]\n  cache:\n    image: \"redis:7\"\n    depends_on: [cache]\n",
	"name: wf\non: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n    container:\n      image: node:22\n    steps:\n      - uses: actions/checkout@v4\n      - run: make test\n  lint:\n    container: node:22\n",
	"build:\n  image: a:1\n  services:\n    - name: b:2\n  script:\n    - make build\ntest:\n  image:\n    name: c:3\n  script: [make test]\n",
	"replicaCount: 1\nimage:\n  repository: nginx\n  tag: \"1.27\"\n  digest:\n  pullPolicy: IfNotPresent\n",
	"resources:\n  - ../base\nimages:\n- name: nginx\n  newTag: \"1.27\"\n- name: redis\n  newName: r.example/redis\n",
	"a: 1\r\nb:\r\n- x\r\n- y # c\r\n\r\nc: ~\r\n",
	"---\na: true\n---\n- 1\n- 1.5\n- 1.2.3\n-\n- {}\n- []\n",
}

func TestFastYAMLShapes(t *testing.T) {
	for _, s := range fastYAMLShapes {
		if !checkFastYAML(t, []byte(s)) {
			t.Errorf("the fast parser refused a common shape:\n%s", s)
		}
	}
	// the test corpus: whatever the fast parser takes, it reads as yaml.v3 does
	taken, files := 0, 0
	_ = filepath.WalkDir("testdata/corpus", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isYAMLPath(p, true) {
			return nil
		}
		b, _ := os.ReadFile(p)
		files++
		if checkFastYAML(t, b) {
			taken++
		}
		return nil
	})
	t.Logf("fast parser took %d of %d corpus files", taken, files)
}

// FuzzFastYAML: every tree the fast parser makes is yaml.v3's.
func FuzzFastYAML(f *testing.F) {
	for _, s := range fastYAMLShapes {
		f.Add(s)
	}
	for _, s := range []string{"a: b: c", "a:\n  b\n", "- - a", "a: [b, ]", "a: 'b''c'", "a: \"b\\n\"", "a: &x b\nc: *x",
		"a: |\n  b\n", "a:b: c", "? a\n: b", "a: {b: c", "key: 0x1F\nd: 2001-12-14\nf: 1e3\n", "a:\n- b\n- c\nd: e\n",
		"a: 1\n  b: 2\n", "[a, {b: c}]", "%YAML 1.2\n---\na: b", "a: b\n...\n", "a: -1\nb: +1\nc: .5\nd: 012\n",
		"a: b #c\nd: 'e' #f\n", "a:\n\n  # c\n  b: 1\n", "a: \"x\"y\n", "- a: 1\n  b: 2\n- c\n", "a: b\n\t- c\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 1<<16 {
			return
		}
		checkFastYAML(t, []byte(s))
	})
}
