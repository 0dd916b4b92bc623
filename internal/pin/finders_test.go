package pin

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type wantRef struct {
	text     string
	kind     Kind
	line     int
	platform string
	manual   bool
}

func checkRefs(t *testing.T, f Finder, src string, want []wantRef) {
	t.Helper()
	refs, err := f.Find([]byte(src))
	if err != nil {
		t.Fatalf("%s: %v", f.Name(), err)
	}
	var got []wantRef
	for _, r := range refs {
		got = append(got, wantRef{r.Text, r.Kind, r.Line, r.Platform, r.Manual != ""})
		if r.Kind == KindImage && r.Manual == "" && src[r.Start:r.End] != r.Text {
			t.Errorf("span %d:%d is %q, text %q", r.Start, r.End, src[r.Start:r.End], r.Text)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: got %d refs %+v, want %+v", f.Name(), len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s ref %d: got %+v, want %+v", f.Name(), i, got[i], want[i])
		}
	}
}

func TestDockerfileFinder(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []wantRef
	}{
		{"stages, platform and index", "FROM --platform=linux/amd64 golang:1.22 AS Build\nFROM build\nCOPY --from=BUILD /a /b\nCOPY --from=0 /a /b\nFROM scratch\n",
			[]wantRef{{"golang:1.22", KindImage, 1, "linux/amd64", false}}},
		{"lower-case instructions and CRLF", "from alpine:3.20 as base\r\nrun echo hi\r\n",
			[]wantRef{{"alpine:3.20", KindImage, 1, "", false}}},
		{"escape directive", "# escape=`\nFROM alpine:3.20\nRUN echo a `\n    && curl -s https://x.example/i.sh | sh\n",
			[]wantRef{{"alpine:3.20", KindImage, 2, "", false}, {"curl -s https://x.example/i.sh | sh", KindScript, 4, "", false}}},
		{"heredoc hides instructions", "FROM alpine:3.20\nRUN <<EOF\nFROM nginx:1.27\nEOF\nCOPY <<-END /x\n\tFROM y\n\tEND\n",
			[]wantRef{{"alpine:3.20", KindImage, 1, "", false}}},
		{"ARG default quoted and used twice", "ARG BASE='nginx:1.27'\nFROM $BASE AS a\nFROM ${BASE}\n",
			[]wantRef{{"nginx:1.27", KindImage, 1, "", false}, {"nginx:1.27", KindImage, 1, "", false}}},
		{"ARG after FROM does not count", "FROM alpine:3.20\nARG LATE=nginx:1.27\nFROM ${LATE}\n",
			[]wantRef{{"alpine:3.20", KindImage, 1, "", false}, {"${LATE}", KindNote, 3, "", false}}},
		{"comment inside continuation", "FROM alpine:3.20\nRUN echo a \\\n# a comment\n    && wget -O- https://x.example/s | bash\n",
			[]wantRef{{"alpine:3.20", KindImage, 1, "", false}, {"wget -O- https://x.example/s | bash", KindScript, 4, "", false}}},
		{"reference split across lines", "FROM \\\nalpine:3.20\n",
			[]wantRef{{"alpine:3.20", KindImage, 2, "", false}}},
		{"syntax directive and mount", "# syntax = docker/dockerfile:1\nFROM alpine:3.20\nRUN --mount=type=bind,from=busybox:1.36,target=/b true\n",
			[]wantRef{{"docker/dockerfile:1", KindImage, 1, "", false}, {"alpine:3.20", KindImage, 2, "", false}, {"busybox:1.36", KindImage, 3, "", false}}},
		{"BOM", "\xef\xbb\xbfFROM alpine:3.20\n", []wantRef{{"alpine:3.20", KindImage, 1, "", false}}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkRefs(t, Dockerfile{}, tc.src, tc.want) })
	}
}

func TestYAMLFinders(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Finder
		src  string
		want []wantRef
	}{
		{"k8s CRLF, quotes, flow", Kubernetes{}, "apiVersion: v1\r\nkind: Pod\r\nspec:\r\n  containers: [{name: a, image: nginx:1.27}, {name: b, image: \"redis:7\"}]\r\n",
			[]wantRef{{"nginx:1.27", KindImage, 4, "", false}, {"redis:7", KindImage, 4, "", false}}},
		{"k8s block scalar is manual", Kubernetes{}, "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: >-\n      nginx:1.27\n",
			[]wantRef{{"nginx:1.27", KindImage, 5, "", true}}},
		{"k8s tag and anchor", Kubernetes{}, "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: &i !!str nginx:1.27\n  - image: *i\n",
			[]wantRef{{"nginx:1.27", KindImage, 5, "", false}, {"nginx:1.27", KindImage, 5, "", false}}},
		{"k8s ignores non-container images", Kubernetes{}, "apiVersion: v1\nkind: ConfigMap\ndata:\n  image: nginx:1.27\n", nil},
		{"k8s skips documents without kind", Kubernetes{}, "a: 1\n---\napiVersion: v1\nkind: Pod\nspec: {containers: [{image: nginx}]}\n",
			[]wantRef{{"nginx", KindImage, 5, "", false}}},
		{"helm digest null", Helm{}, "image:\n  repository: nginx\n  tag: \"1.27\"\n  digest:\n", []wantRef{{"nginx:1.27", KindSplit, 2, "", false}}},
		{"compose list args and default", Compose{}, "services:\n  a:\n    image: ${IMG:-nginx:1.27}\n    build:\n      args: [\"BASE_IMAGE=alpine:3.20\"]\n",
			[]wantRef{{"nginx:1.27", KindImage, 3, "", false}, {"alpine:3.20", KindImage, 5, "", false}}},
		{"gha container string and docker uses", GitHubActions{}, "jobs:\n  a:\n    container: node:22\n    steps:\n      - uses: docker://alpine:3.20\n      - uses: actions/checkout@v4\n",
			[]wantRef{{"node:22", KindImage, 3, "", false}, {"alpine:3.20", KindImage, 5, "", false}}},
		{"gitlab services and nested script lists", GitLabCI{}, "job:\n  image: {name: alpine:3.20}\n  services: [redis:7]\n  script:\n    - - curl https://x.example/a | sh\n",
			[]wantRef{{"alpine:3.20", KindImage, 2, "", false}, {"redis:7", KindImage, 3, "", false}, {"curl https://x.example/a | sh", KindScript, 5, "", false}}},
		{"tekton only", Tekton{}, "apiVersion: tekton.dev/v1\nkind: Task\nspec:\n  steps:\n  - image: alpine:3.20\n---\napiVersion: v1\nkind: Pod\nspec: {containers: [{image: nginx}]}\n",
			[]wantRef{{"alpine:3.20", KindImage, 5, "", false}}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkRefs(t, tc.f, tc.src, tc.want) })
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		path string
		want string
	}{
		{"Dockerfile", "dockerfile"}, {"build/Dockerfile.prod", "dockerfile"}, {"api.Dockerfile", "dockerfile"}, {"Containerfile", "dockerfile"},
		{"Dockerfile.j2", ""}, {"Dockerfile.dockerignore", ""}, {"dockerfile-notes.md", ""},
		{"charts/x/values.yaml", "helm"}, {"values-prod.yml", "helm"}, {"ci/staging.values.yaml", "helm"}, {"myvalues.yaml", ""},
		{"kustomization.yaml", "kustomize"}, {"docker-compose.override.yml", "compose"}, {"compose.yaml", "compose"},
		{".github/workflows/ci.yml", "github-actions"}, {"action.yml", "github-actions"}, {".gitlab-ci.yml", "gitlab-ci"},
		{".gitlab/ci/build.yml", "gitlab-ci"}, {"README.md", ""},
	} {
		var got []string
		for _, f := range Finders() {
			if f.Match(tc.path, nil) {
				got = append(got, f.Name())
			}
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%s: matched %v, want %q", tc.path, got, tc.want)
		}
	}
}

func TestScripts(t *testing.T) {
	for _, tc := range []struct {
		s    string
		hits int
	}{
		{"curl -fsSL https://a.example/i.sh | sh", 1},
		{"curl -fsSL https://a.example/i.sh | sudo -E bash -s -- -y", 1},
		{"wget -qO - https://a.example/i | python3", 1},
		{"sh -c \"$(curl -fsSL https://a.example/i)\"", 1},
		{"bash <(curl -s https://codecov.io/bash)", 1},
		{"iwr https://a.example/i.ps1 | iex", 1},
		{"curl -o x https://a.example/x && echo 'abc  x' | sha256sum -c && sh x", 0},
		{"curl https://a.example/x | shasum -a 256", 0},
		{"curl -s https://a.example/x \\\n  | bash", 1},
		{"echo curl is great", 0},
	} {
		if got := len(findScripts(tc.s)); got != tc.hits {
			t.Errorf("%q: %d hits, want %d", tc.s, got, tc.hits)
		}
	}
}

func TestUnifiedDiff(t *testing.T) {
	old := "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n"
	new := strings.Replace(strings.Replace(old, "b\n", "B\n", 1), "j\n", "J\nJ2\n", 1)
	got := UnifiedDiff("./x.txt", []byte(old), []byte(new))
	want := "--- a/x.txt\n+++ b/x.txt\n@@ -1,5 +1,5 @@\n a\n-b\n+B\n c\n d\n e\n@@ -7,5 +7,6 @@\n g\n h\n i\n-j\n+J\n+J2\n k\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if d := UnifiedDiff("x", []byte("a"), []byte("b")); d != "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n\\ No newline at end of file\n" {
		t.Errorf("no final newline:\n%s", d)
	}
}

// fuzzFinder checks, for any input, that a finder never panics, that its
// spans and edits stay inside the file, and that editing valid YAML yields
// valid YAML.
func fuzzFinder(f *testing.F, fd Finder, isYAML bool, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	_ = filepath.WalkDir("testdata/corpus", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := os.ReadFile(p); err == nil && fd.Match(p, b) {
				f.Add(b)
			}
		}
		return nil
	})
	tg := target{host: "registry.example.com", repo: "library/x", tag: "1.0", digest: "sha256:" + strings.Repeat("a", 64)}
	f.Fuzz(func(t *testing.T, b []byte) {
		refs, err := fd.Find(b)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error is not a ParseError: %v", err)
			}
			return
		}
		var es []Edit
		for _, r := range refs {
			if r.Start < 0 || r.End < r.Start || r.End > len(b) || r.Line < 1 || r.Col < 1 {
				t.Fatalf("ref out of the file: %+v (len %d)", r, len(b))
			}
			if r.Kind == KindImage && r.Manual == "" && string(b[r.Start:r.End]) != r.Text {
				t.Fatalf("span %q is not the text %q", b[r.Start:r.End], r.Text)
			}
			if r.Kind != KindImage && r.Kind != KindSplit {
				continue
			}
			e, err := edits(r, tg)
			if err != nil {
				continue
			}
			for _, x := range e {
				if x.Start < 0 || x.End < x.Start || x.End > len(b) {
					t.Fatalf("edit out of the file: %+v", x)
				}
			}
			es = append(es, e...)
		}
		out, err := apply(b, dedupeEdits(es))
		if err != nil {
			t.Fatalf("edits overlap: %v", err)
		}
		if isYAML && validYAML(b) && !validYAML(out) {
			t.Fatalf("valid YAML became invalid:\n%s\n---\n%s", b, out)
		}
		// pinning is idempotent: the edited file pins to itself
		refs2, err := fd.Find(out)
		if err != nil {
			t.Fatalf("edited file no longer parses: %v\n%s", err, out)
		}
		for _, r := range refs2 {
			if r.Kind != KindImage && r.Kind != KindSplit {
				continue
			}
			if img, ok := parseImage(r.Text); ok && strings.HasPrefix(img.Name, tg.host+"/") && img.Digest == tg.digest {
				if e, err := edits(r, tg); err == nil && len(e) != 0 && r.CommentTag == "" {
					t.Fatalf("second pin edits again: %+v %+v", r, e)
				}
			}
		}
	})
}

func validYAML(b []byte) bool { return validYAMLPrefix(b) }

func FuzzDockerfile(f *testing.F) {
	fuzzFinder(f, Dockerfile{}, false, "FROM a:1 AS b\nCOPY --from=c:2 . .\n", "ARG X=y:1\nFROM ${X}\n", "# escape=`\nFROM a `\n:1\n", "RUN <<A\nA\n")
}

func FuzzKubernetes(f *testing.F) {
	fuzzFinder(f, Kubernetes{}, true, "apiVersion: v1\nkind: Pod\nspec: {containers: [{image: a}]}\n", "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: \"a:1\" # c\n")
}

func FuzzTekton(f *testing.F) {
	fuzzFinder(f, Tekton{}, true, "apiVersion: tekton.dev/v1\nkind: Task\nspec:\n  steps:\n  - image: a\n    script: curl x | sh\n")
}

func FuzzHelm(f *testing.F) {
	fuzzFinder(f, Helm{}, true, "image:\n  registry: r\n  repository: a\n  tag: 1\n  digest:\n", "x: &a\n  image: {repository: a, tag: '1'}\ny: *a\n")
}

func FuzzKustomize(f *testing.F) {
	fuzzFinder(f, Kustomize{}, true, "images:\n- name: a\n  newTag: \"1\"\n", "images:\n  - name: a\n    newName: b # c\n\n# end\n", "images: [{name: a}]\n")
}

func FuzzCompose(f *testing.F) {
	fuzzFinder(f, Compose{}, true, "services:\n  a:\n    image: ${A:-b:1}\n    build: {args: [X_IMAGE=c]}\n")
}

func FuzzGitHubActions(f *testing.F) {
	fuzzFinder(f, GitHubActions{}, true, "jobs:\n  a:\n    container: {image: b}\n    services: {c: {image: d}}\n    steps: [{uses: 'docker://e'}]\n")
}

func FuzzGitLabCI(f *testing.F) {
	fuzzFinder(f, GitLabCI{}, true, "image: a\nj:\n  services: [{name: b}]\n  script: [curl x | sh]\n")
}
