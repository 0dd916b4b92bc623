package pin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/pin"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

var update = flag.Bool("update", false, "rewrite testdata/golden and testdata/corpus.lock from a run against a real server")

const (
	corpusDir  = "testdata/corpus"
	goldenDir  = "testdata/golden"
	corpusLock = "testdata/corpus.lock"
)

// fixedNow makes the lock file's timestamps reproducible.
func fixedNow() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

// copyTree copies the corpus into a fresh directory (mode and bytes).
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// snapshot reads every file of a tree, by path relative to it.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkGolden compares a pinned tree with testdata/golden (files that pin
// changes) and the corpus (files it must not touch); -update rewrites.
func checkGolden(t *testing.T, dir string) {
	t.Helper()
	got, orig := snapshot(t, dir), snapshot(t, corpusDir)
	if *update {
		if err := os.RemoveAll(goldenDir); err != nil {
			t.Fatal(err)
		}
		for rel, b := range got {
			if !bytes.Equal(b, orig[rel]) {
				p := filepath.Join(goldenDir, rel+".golden")
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		return
	}
	golden := snapshot(t, goldenDir)
	for rel, b := range got {
		want, ok := golden[rel+".golden"]
		if !ok {
			want = orig[rel]
		}
		if !bytes.Equal(b, want) {
			t.Errorf("%s differs from %s:\n%s", rel, map[bool]string{true: "its golden file", false: "the corpus (it must not change)"}[ok],
				pin.UnifiedDiff(rel, want, b))
		}
	}
	for rel := range golden {
		if _, ok := got[strings.TrimSuffix(rel, ".golden")]; !ok {
			t.Errorf("golden file %s has no pinned file", rel)
		}
	}
}

// upstreamImages are the images the loopback upstream plays, and the
// private names they are imported as (what the corpus's references map to).
var upstreamImages = []struct {
	upstream, as string
	approve      bool
	index        bool
}{
	{"library/nginx:1.27", "library/nginx:1.27", true, true},
	{"library/alpine:3.20", "library/alpine:3.20", true, true},
	{"library/golang:1.22", "library/golang:1.22", true, false},
	{"distroless/static-debian12:nonroot", "gcr.io/distroless/static-debian12:nonroot", true, false},
	{"library/busybox:1.36", "library/busybox:1.36", true, false},
	{"docker/dockerfile:1.7", "docker.io/docker/dockerfile:1.7", true, false},
	{"library/python:3.12-slim", "library/python:3.12-slim", true, false},
	{"library/node:22-alpine", "library/node:22-alpine", true, false},
	{"library/redis:7.2", "library/redis:7.2", true, false},
	{"bitnami/nginx:1.27.0", "docker.io/bitnami/nginx:1.27.0", true, false},
	{"prometheus/node-exporter:v1.8.1", "quay.io/prometheus/node-exporter:v1.8.1", true, false},
	{"org/app:2.3.1", "ghcr.io/org/app:2.3.1", true, false},
	{"library/postgres:16", "library/postgres:16", false, false}, // imported, never approved
}

var amd64, arm64 = v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"}

func testImage(t *testing.T, p v1.Platform, content string) v1.Image {
	return servertest.Image(t, p, map[string][]byte{"content": []byte(content + " " + p.Architecture)}, []string{"/content"}, nil)
}

// testIndex builds a two-platform index in a fixed order, so that its digest
// is the same in every run (golden files name it).
func testIndex(t *testing.T, content string) v1.ImageIndex {
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: testImage(t, amd64, content), Descriptor: v1.Descriptor{Platform: &amd64}},
		mutate.IndexAddendum{Add: testImage(t, arm64, content), Descriptor: v1.Descriptor{Platform: &arm64}})
}

func importImage(t *testing.T, c *server.Client, req server.ImportRequest) server.ImportEvent {
	t.Helper()
	b, _ := json.Marshal(req)
	rc, err := c.Import(context.Background(), url.Values{}, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	var last server.ImportEvent
	for {
		var e server.ImportEvent
		if err := dec.Decode(&e); errors.Is(err, io.EOF) {
			return last
		} else if err != nil {
			t.Fatal(err)
		}
		last = e
		if e.Finished {
			return e
		}
	}
}

// pinServer is a real airlock server (registry host registry.example.com)
// holding the corpus's images imported from a loopback upstream, most of
// them approved; org/app:2.3.1 moved upstream after its approval.
type pinServer struct {
	in       *servertest.Instance
	client   *server.Client
	digests  map[string]string // upstream repo:tag → digest approved (or imported)
	moved    string            // the digest org/app:2.3.1 moved to upstream
	armAlpin string
}

func startPinServer(t *testing.T) *pinServer {
	t.Helper()
	up := servertest.StartUpstream(t)
	in := servertest.Start(t, func(c *config.Config) {
		c.RegistryHost = "registry.example.com"
		c.Import.Mappings = []string{"docker.io/library/=library/"}
		c.Pipeline.MaxAttempts = 1
	})
	ps := &pinServer{in: in, client: in.Client(in.Token(t, "ci", store.RolePuller)), digests: map[string]string{}}
	importer := in.Client(in.Token(t, "importer", store.RolePusher))
	for _, im := range upstreamImages {
		var d string
		if im.index {
			idx := testIndex(t, im.upstream)
			d = up.Push(t, im.upstream, nil, idx)
			if im.upstream == "library/alpine:3.20" {
				m, _ := idx.IndexManifest()
				ps.armAlpin = m.Manifests[1].Digest.String()
			}
		} else {
			d = up.Push(t, im.upstream, testImage(t, amd64, im.upstream), nil)
		}
		ev := importImage(t, importer, server.ImportRequest{Source: up.Host + "/" + im.upstream, As: im.as, Insecure: true})
		if ev.Type != "result" || ev.Result.Digest != d {
			t.Fatalf("import %s: %+v", im.upstream, ev)
		}
		if im.approve {
			in.Approve(t, d)
		}
		ps.digests[im.upstream] = d
	}
	// The tag moves upstream after approval: the re-import is quarantined and
	// the private tag stays on the approved digest.
	ps.moved = up.Push(t, "org/app:2.3.1", testImage(t, amd64, "org/app moved"), nil)
	ev := importImage(t, importer, server.ImportRequest{Source: up.Host + "/org/app:2.3.1", As: "ghcr.io/org/app:2.3.1", Insecure: true})
	if ev.Type != "result" || ev.Result.Digest != ps.moved || !ev.Result.Import.TagMoved || len(ev.Result.TagsKept) != 1 {
		t.Fatalf("re-import of a moved tag: %+v", ev.Result)
	}
	return ps
}

// TestPinAgainstServer pins the corpus against a real server: approved
// references are pinned to their approved digests (a moved tag to the
// approved one, not the new one), unapproved ones are reported, and the
// result matches the golden files; pinning again changes nothing.
func TestPinAgainstServer(t *testing.T) {
	ps := startPinServer(t)
	dir := copyTree(t, corpusDir)
	lock := filepath.Join(t.TempDir(), "airlock.lock")
	opts := pin.Options{Paths: []string{dir}, Mode: pin.ModeWrite, Resolver: ps.client, Server: "https://airlock.example.com", LockPath: lock, Now: fixedNow}
	rep, err := pin.Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Offline || len(rep.Errors) != 0 {
		t.Fatalf("offline %v, errors %v", rep.Offline, rep.Errors)
	}
	if b, _ := os.ReadFile(filepath.Join(corpusDir, "deploy/k8s/app.yaml")); !bytes.Contains(b, []byte(ps.digests["library/alpine:3.20"])) {
		t.Fatalf("the corpus must name the approved alpine digest %s (and nginx %s)", ps.digests["library/alpine:3.20"], ps.digests["library/nginx:1.27"])
	}
	byRef := func(path, ref string) pin.Finding {
		t.Helper()
		for _, f := range rep.Findings {
			if strings.HasSuffix(filepath.ToSlash(f.Path), path) && f.Reference == ref {
				return f
			}
		}
		t.Fatalf("no finding for %s in %s", ref, path)
		return pin.Finding{}
	}
	nginx := byRef("deploy/k8s/app.yaml", "nginx:1.27")
	if nginx.Status != pin.StatusRewritten || nginx.Suggestion != "registry.example.com/library/nginx:1.27@"+ps.digests["library/nginx:1.27"] {
		t.Errorf("nginx: %+v", nginx)
	}
	app := byRef("deploy/k8s/app.yaml", "ghcr.io/org/app:2.3.1")
	if app.Digest != ps.digests["org/app:2.3.1"] || app.Digest == ps.moved || app.Status != pin.StatusRewritten {
		t.Errorf("a tag moved upstream must pin to the approved digest %s, not %s: %+v", ps.digests["org/app:2.3.1"], ps.moved, app)
	}
	pg := byRef("deploy/k8s/app.yaml", "postgres:16")
	if pg.Status != pin.StatusUnapproved || !strings.Contains(pg.Message, "quarantined") || pg.Suggestion != "" {
		t.Errorf("postgres is quarantined, so it is reported and not pinned: %+v", pg)
	}
	dotnet := byRef("deploy/k8s/debug.yaml", "mcr.microsoft.com/dotnet/sdk:8.0")
	if dotnet.Status != pin.StatusUnapproved || !strings.Contains(dotnet.Message, "airlock import") {
		t.Errorf("an image never imported: %+v", dotnet)
	}
	arm := byRef("services/api/Dockerfile", "alpine:3.20")
	if arm.Platform != "linux/arm64" || arm.Digest != ps.armAlpin {
		t.Errorf("FROM --platform=linux/arm64 pins the arm64 child %s: %+v", ps.armAlpin, arm)
	}
	already := byRef("deploy/k8s/app.yaml", "registry.example.com/library/alpine:3.20@"+ps.digests["library/alpine:3.20"])
	if already.Status != pin.StatusPinned {
		t.Errorf("an approved private digest is already pinned: %+v", already)
	}
	if !rep.Failed() {
		t.Error("unapproved references remain: the run must fail")
	}
	checkGolden(t, dir)

	// Pinning again is a no-op, byte for byte.
	before := snapshot(t, dir)
	rep2, err := pin.Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep2.Changed) != 0 || rep2.Count(pin.StatusRewritten) != 0 {
		t.Errorf("second run changed %v", rep2.Changed)
	}
	after := snapshot(t, dir)
	for rel, b := range before {
		if !bytes.Equal(b, after[rel]) {
			t.Errorf("%s changed on the second run", rel)
		}
	}
	if rep2.Count(pin.StatusPinned) != rep.Count(pin.StatusPinned)+rep.Count(pin.StatusRewritten) {
		t.Errorf("second run: %d pinned, want %d", rep2.Count(pin.StatusPinned), rep.Count(pin.StatusPinned)+rep.Count(pin.StatusRewritten))
	}

	// A revoked digest is no longer pinned-and-approved: --check reports it.
	if _, err := ps.in.Client(ps.in.AdminToken).Decide(context.Background(), ps.digests["library/redis:7.2"], "revoke", server.DecisionRequest{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	rep3, err := pin.Run(context.Background(), pin.Options{Paths: []string{dir}, Mode: pin.ModeCheck, Resolver: ps.client})
	if err != nil {
		t.Fatal(err)
	}
	revoked := 0
	for _, f := range rep3.Findings {
		if strings.Contains(f.Reference, "library/redis") && f.Status == pin.StatusUnapproved && strings.Contains(f.Message, "revoked") {
			revoked++
		}
	}
	if revoked == 0 {
		t.Errorf("a pinned reference to a revoked digest must be reported")
	}

	// the lock file records what was pinned, when, by which server and why
	l, err := pin.ReadLock(lock)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]pin.LockEntry{}
	for _, e := range l.Entries {
		entries[e.Reference+" "+e.Platform] = e
	}
	if e := entries["nginx:1.27 "]; e.Digest != ps.digests["library/nginx:1.27"] || e.State != store.Approved || e.Server != "https://airlock.example.com" ||
		!e.ResolvedAt.Equal(fixedNow()) || e.Pinned != "registry.example.com/library/nginx:1.27@"+e.Digest {
		t.Errorf("lock entry for nginx:1.27: %+v", e)
	}
	if e := entries["postgres:16 "]; e.Digest != "" || e.State != store.Quarantined || !strings.Contains(e.Error, "not approved") {
		t.Errorf("lock entry for postgres:16: %+v", e)
	}
	if e := entries["alpine:3.20 linux/arm64"]; e.Digest != ps.armAlpin {
		t.Errorf("lock entry for alpine:3.20 on linux/arm64: %+v", e)
	}

	if *update {
		b, err := os.ReadFile(lock)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(corpusLock, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
