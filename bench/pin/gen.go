package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// format is one kind of generated file; peers says whether frizbee reads it
// (frizbee rewrites `image:` lines of YAML files and FROM lines of Dockerfiles).
type format struct {
	name   string
	share  int // files per 1,000
	frizbe bool
	path   func(i int) string
	body   func(i int, ref func(k int) string) string
}

var formats = []format{
	{"dockerfile", 250, true, func(i int) string { return fmt.Sprintf("services/svc-%03d/Dockerfile", i) },
		func(i int, ref func(int) string) string {
			return fmt.Sprintf("# syntax=docker/dockerfile:1\n# service %d\nARG BASE=%s\nFROM %s AS build\nWORKDIR /src\nCOPY . .\nRUN make build \\\n    && make test\n\nFROM ${BASE}\nCOPY --from=build /src/out /app\nCOPY --from=%s /etc/ssl/certs /etc/ssl/certs\nENTRYPOINT [\"/app\"]\n",
				i, ref(i+1), ref(i), ref(i+2))
		}},
	{"kubernetes", 250, true, func(i int) string { return fmt.Sprintf("deploy/app-%03d/deployment.yaml", i) },
		func(i int, ref func(int) string) string {
			return fmt.Sprintf(`# app %d
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%d
  labels: {app: app-%d}
spec:
  replicas: 2
  selector:
    matchLabels: {app: app-%d}
  template:
    metadata:
      labels: {app: app-%d}
    spec:
      initContainers:
        - name: init
          image: "%s"
      containers:
        - name: app
          image: %s # main
          ports:
            - containerPort: 8080
        - name: sidecar
          image: '%s'
---
apiVersion: v1
kind: Service
metadata:
  name: app-%d
spec:
  ports: [{port: 80, targetPort: 8080}]
`, i, i, i, i, i, ref(i), ref(i+3), ref(i+5), i)
		}},
	{"compose", 100, true, func(i int) string { return fmt.Sprintf("stacks/stack-%03d/docker-compose.yml", i) },
		func(i int, ref func(int) string) string {
			return fmt.Sprintf("services:\n  web:\n    image: %s\n    ports: [\"8080:80\"]\n  cache:\n    image: \"%s\"\n  worker:\n    image: %s\n    depends_on: [cache]\n", ref(i), ref(i+7), ref(i+11))
		}},
	{"github-actions", 100, true, func(i int) string { return fmt.Sprintf(".github/workflows/wf-%03d.yml", i) },
		func(i int, ref func(int) string) string {
			return fmt.Sprintf("name: wf-%d\non: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n    container:\n      image: %s\n    services:\n      db:\n        image: %s\n    steps:\n      - uses: actions/checkout@v4\n      - run: make test\n  lint:\n    runs-on: ubuntu-latest\n    container: %s\n    steps:\n      - run: make lint\n", i, ref(i), ref(i+13), ref(i+2))
		}},
	{"gitlab-ci", 100, true, func(i int) string { return fmt.Sprintf(".gitlab/ci/job-%03d.yml", i) },
		func(i int, ref func(int) string) string {
			return fmt.Sprintf("build-%d:\n  image: %s\n  services:\n    - name: %s\n  script:\n    - make build\ntest-%d:\n  image:\n    name: %s\n  script: [make test]\n", i, ref(i), ref(i+17), i, ref(i+4))
		}},
	{"tekton", 50, true, func(i int) string { return fmt.Sprintf("tekton/task-%03d.yaml", i) },
		func(i int, ref func(int) string) string {
			return fmt.Sprintf("apiVersion: tekton.dev/v1\nkind: Task\nmetadata:\n  name: task-%d\nspec:\n  steps:\n    - name: build\n      image: %s\n      script: make\n    - name: test\n      image: %s\n", i, ref(i), ref(i+19))
		}},
	{"helm", 100, false, func(i int) string { return fmt.Sprintf("charts/chart-%03d/values.yaml", i) },
		func(i int, ref func(int) string) string {
			r := ref(i)
			repo, tag, _ := strings.Cut(r, ":1.")
			return fmt.Sprintf("replicaCount: 1\nimage:\n  repository: %s\n  tag: \"1.%s\"\n  pullPolicy: IfNotPresent\nservice:\n  port: 80\n", repo, tag)
		}},
	{"kustomize", 50, false, func(i int) string { return fmt.Sprintf("overlays/env-%03d/kustomization.yaml", i) },
		func(i int, ref func(int) string) string {
			r := ref(i)
			repo, tag, _ := strings.Cut(r, ":")
			return fmt.Sprintf("resources:\n  - ../../deploy/app-%03d\nimages:\n  - name: %s\n    newTag: \"%s\"\n", i, repo, tag)
		}},
}

// generate writes files mixed-format files under dir whose references name
// images image(0)…image(n-1); subset holds only the formats frizbee reads.
func generate(dir, subset string, files int, ref func(k int) string) (map[string]int, error) {
	counts := map[string]int{}
	total := 0
	for _, f := range formats {
		total += f.share
	}
	for _, f := range formats {
		n := f.share * files / total
		for i := 0; i < n; i++ {
			body := f.body(i, ref)
			for _, root := range []string{dir, subset} {
				if root == subset && !f.frizbe {
					continue
				}
				p := filepath.Join(root, f.path(i))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return nil, err
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					return nil, err
				}
			}
			counts[f.name]++
		}
	}
	return counts, nil
}
