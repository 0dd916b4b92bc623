package server_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// importJSON posts a registry import and returns the final event.
func importJSON(t *testing.T, c *server.Client, req server.ImportRequest) server.ImportEvent {
	t.Helper()
	b, _ := json.Marshal(req)
	return readEvents(t, c, url.Values{}, "application/json", bytes.NewReader(b))
}

func readEvents(t *testing.T, c *server.Client, q url.Values, ct string, body io.Reader) server.ImportEvent {
	t.Helper()
	rc, err := c.Import(context.Background(), q, ct, body)
	if err != nil {
		return server.ImportEvent{Type: "error", Error: err.Error()}
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	var last server.ImportEvent
	for {
		var e server.ImportEvent
		if err := dec.Decode(&e); err != nil {
			if errors.Is(err, io.EOF) {
				return last
			}
			t.Fatal(err)
		}
		last = e
		if e.Finished {
			return e
		}
	}
}

// importedJob imports req, which must succeed, and waits for its job to
// leave the queue for good.
func importedJob(t *testing.T, c *server.Client, req server.ImportRequest) store.Job {
	t.Helper()
	ev := importJSON(t, c, req)
	if ev.Type != "result" {
		t.Fatalf("import: %+v", ev)
	}
	return waitJob(t, c, ev.Job.ID)
}

// waitJob polls until the job has left the queue for good.
func waitJob(t *testing.T, c *server.Client, id int64) store.Job {
	t.Helper()
	for i := 0; ; i++ {
		j, err := c.Job(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == store.JobDone || j.State == store.JobFailed {
			return j
		}
		if i > 6000 {
			t.Fatalf("job %d never finished: %+v", id, j)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startForImport(t *testing.T, mutate func(*config.Config)) (*servertest.Instance, *server.Client) {
	in := servertest.Start(t, func(c *config.Config) {
		c.Pipeline.MaxAttempts = 1
		c.Pipeline.Lease = 2 * time.Second
		if mutate != nil {
			mutate(c)
		}
	})
	return in, in.Client(in.Token(t, "importer", store.RolePusher))
}

func TestImportFromRegistry(t *testing.T) {
	up := servertest.StartUpstream(t)
	bb := servertest.Image(t, v1.Platform{OS: "linux", Architecture: "amd64"},
		map[string][]byte{"bin/busybox": servertest.Busybox(t)}, []string{"/bin/busybox", "sh"}, map[string]string{"org.opencontainers.image.source": "https://busybox.net"})
	want := up.Push(t, "library/busybox:1.35", bb, nil)

	in, c := startForImport(t, nil)
	ev := importJSON(t, c, server.ImportRequest{Source: up.Host + "/library/busybox:1.35", Insecure: true})
	if ev.Type != "result" {
		t.Fatalf("import: %+v", ev)
	}
	r := ev.Result
	if r.Digest != want {
		t.Fatalf("digest changed in transit: %s, want %s", r.Digest, want)
	}
	repo := strings.Replace(up.Host, ":", "_", 1) + "/library/busybox"
	if r.Repository != repo || len(r.Tags) != 1 || r.Tags[0] != "1.35" {
		t.Fatalf("named %s %v, want %s [1.35]", r.Repository, r.Tags, repo)
	}
	im := r.Import
	if im.Reference != up.Host+"/library/busybox:1.35" || im.Normalized != up.Host+"/library/busybox:1.35" ||
		im.Registry != up.Host || im.Transport != "registry" || im.Actor != "importer" || im.ResolvedAt.IsZero() || im.TagMoved {
		t.Fatalf("documented source: %+v", im)
	}
	var facts struct {
		Images []struct {
			Created *time.Time        `json:"created"`
			Author  string            `json:"author"`
			Labels  map[string]string `json:"labels"`
			History []struct {
				CreatedBy string `json:"createdBy"`
			} `json:"history"`
			Platform string `json:"platform"`
		} `json:"images"`
	}
	if err := json.Unmarshal(im.Facts, &facts); err != nil || len(facts.Images) != 1 {
		t.Fatalf("facts %s: %v", im.Facts, err)
	}
	f := facts.Images[0]
	if f.Author != "airlock tests" || f.Labels["org.opencontainers.image.source"] != "https://busybox.net" || f.Created == nil || len(f.History) == 0 || f.Platform != "linux/amd64" {
		t.Fatalf("config facts: %+v", f)
	}
	// Stored, shown, quarantined, and not served to a puller.
	img, err := in.Client(in.AdminToken).Image(context.Background(), want)
	if err != nil || img.State != store.Quarantined || len(img.Source) == 0 {
		t.Fatalf("image record: %+v %v", img, err)
	}
	pull := in.Token(t, "puller", store.RolePuller)
	if _, err := remote.Image(in.Ref(t, repo+":1.35"), servertest.Auth("puller", pull)); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("quarantined import served to a puller: %v", err)
	}
	// The vetting job ran every stage it has and left the image quarantined.
	j := waitJob(t, c, ev.Job.ID)
	if j.Digest != want || j.State != store.JobDone {
		t.Fatalf("job: %+v", j)
	}
	for _, s := range j.Stages {
		wantStatus := store.StageNotRun
		if s.Name == "import" || s.Name == "scan" || s.Name == "profile" || s.Name == "harden" || s.Name == "decide" { // decide ran: the policy leaves it for review
			wantStatus = store.StageDone
		}
		if s.Status != wantStatus {
			t.Errorf("stage %s is %s, want %s", s.Name, s.Status, wantStatus)
		}
	}
	// Bytes pulled after approval are the upstream's, digest for digest.
	in.Approve(t, want)
	got, err := remote.Image(in.Ref(t, repo+":1.35"), servertest.Auth("puller", pull))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := got.Digest(); d.String() != want {
		t.Fatalf("pulled %s, want %s", d, want)
	}
}

func TestImportMultiArchAndPlatform(t *testing.T) {
	up := servertest.StartUpstream(t)
	idx := servertest.Index(t, map[string]v1.Image{
		"linux/amd64": servertest.Image(t, v1.Platform{OS: "linux", Architecture: "amd64"}, map[string][]byte{"app": servertest.GoBinary(t, "amd64", "hello amd64")}, []string{"/app"}, nil),
		"linux/arm64": servertest.Image(t, v1.Platform{OS: "linux", Architecture: "arm64"}, map[string][]byte{"app": servertest.GoBinary(t, "arm64", "hello arm64")}, []string{"/app"}, nil),
	})
	want := up.Push(t, "org/app:1.0", nil, idx)
	im, _ := idx.IndexManifest()

	in, c := startForImport(t, nil)
	ev := importJSON(t, c, server.ImportRequest{Source: up.Host + "/org/app:1.0", Insecure: true})
	if ev.Type != "result" || ev.Result.Digest != want {
		t.Fatalf("import: %+v", ev)
	}
	if len(ev.Result.Platforms) != 2 {
		t.Fatalf("platforms %v", ev.Result.Platforms)
	}
	rec, err := in.Client(in.AdminToken).Image(context.Background(), want)
	if err != nil || len(rec.Children) != 2 {
		t.Fatalf("index record: %+v %v", rec, err)
	}
	for _, m := range im.Manifests {
		child, err := in.Client(in.AdminToken).Image(context.Background(), m.Digest.String())
		if err != nil || child.State != store.Quarantined {
			t.Fatalf("child %s: %+v %v", m.Digest, child, err)
		}
	}

	// --platform narrows to one child and records that it did.
	ev = importJSON(t, c, server.ImportRequest{Source: up.Host + "/org/app:1.0", Insecure: true, Platform: "linux/arm64", As: "apps/app-arm64:1.0"})
	if ev.Type != "result" {
		t.Fatalf("narrowed import: %+v", ev)
	}
	var arm string
	for _, m := range im.Manifests {
		if m.Platform.Architecture == "arm64" {
			arm = m.Digest.String()
		}
	}
	if ev.Result.Digest != arm || ev.Result.Import.Platform != "linux/arm64" || ev.Result.Repository != "apps/app-arm64" {
		t.Fatalf("narrowed: %+v", ev.Result)
	}
	ev = importJSON(t, c, server.ImportRequest{Source: up.Host + "/org/app:1.0", Insecure: true, Platform: "windows/amd64"})
	if ev.Type != "error" || !strings.Contains(ev.Error, "linux/amd64") {
		t.Fatalf("unknown platform: %+v", ev)
	}
}

func TestImportTagMoved(t *testing.T) {
	up := servertest.StartUpstream(t)
	p := v1.Platform{OS: "linux", Architecture: "amd64"}
	first := up.Push(t, "team/svc:stable", servertest.Image(t, p, map[string][]byte{"v": []byte("one")}, []string{"/v"}, nil), nil)
	in, c := startForImport(t, nil)
	ev := importJSON(t, c, server.ImportRequest{Source: up.Host + "/team/svc:stable", Insecure: true})
	if ev.Type != "result" || ev.Result.Import.TagMoved {
		t.Fatalf("first import: %+v", ev)
	}
	in.Approve(t, first)
	second := up.Push(t, "team/svc:stable", servertest.Image(t, p, map[string][]byte{"v": []byte("two")}, []string{"/v"}, nil), nil)
	ev = importJSON(t, c, server.ImportRequest{Source: up.Host + "/team/svc:stable", Insecure: true})
	if ev.Type != "result" {
		t.Fatalf("second import: %+v", ev)
	}
	im := ev.Result.Import
	if !im.TagMoved || im.PreviousDigest != first || ev.Result.Digest != second {
		t.Fatalf("tag move not flagged: %+v", im)
	}
	// The approved digest keeps its tag; the new one waits in quarantine.
	if len(ev.Result.TagsKept) != 1 {
		t.Fatalf("tag of an approved digest moved: %+v", ev.Result)
	}
	es, err := in.Client(in.AdminToken).Audit(context.Background(), store.AuditFilter{Action: "tag.moved"})
	if err != nil || len(es) != 1 {
		t.Fatalf("audit tag.moved: %v %v", es, err)
	}
}

func TestImportUpstreamFailures(t *testing.T) {
	p := v1.Platform{OS: "linux", Architecture: "amd64"}
	for _, tc := range []struct {
		name  string
		setup func(up *servertest.Upstream, layer string)
		want  string
	}{
		{"lying upstream", func(up *servertest.Upstream, layer string) { up.Lie(layer) }, "changed in transit"},
		{"unauthorized", func(up *servertest.Upstream, _ string) { up.RequireLogin("someone", "secret") }, "refused access"},
		{"rate limited", func(up *servertest.Upstream, _ string) { up.Fail(http.StatusTooManyRequests, "120") }, "retry after 2m0s"},
		{"not found", nil, "not found upstream"},
		{"unreachable", nil, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := servertest.StartUpstream(t)
			img := servertest.Image(t, p, map[string][]byte{"data": bytes.Repeat([]byte("x"), 4096)}, []string{"/data"}, nil)
			up.Push(t, "x/y:1", img, nil)
			layers, _ := img.Layers()
			ld, _ := layers[0].Digest()
			src := up.Host + "/x/y:1"
			switch tc.name {
			case "not found":
				src = up.Host + "/x/y:missing"
			case "unreachable":
				src = "127.0.0.1:1/x/y:1"
			}
			if tc.setup != nil {
				tc.setup(up, ld.String())
			}
			in, c := startForImport(t, nil)
			ev := importJSON(t, c, server.ImportRequest{Source: src, Insecure: true})
			if ev.Type != "error" || !strings.Contains(ev.Error, tc.want) {
				t.Fatalf("got %+v, want an error saying %q", ev, tc.want)
			}
			imgs, err := in.Server.Store.Images(context.Background(), store.ImageFilter{})
			if err != nil || len(imgs) != 0 {
				t.Fatalf("partial record after a failed import: %+v %v", imgs, err)
			}
		})
	}
}

func TestImportArchives(t *testing.T) {
	p := v1.Platform{OS: "linux", Architecture: "amd64"}
	img := servertest.Image(t, p, map[string][]byte{"app": servertest.GoBinary(t, "amd64", "hello from an archive")}, []string{"/app"}, nil)
	want, _ := img.Digest()
	dir := t.TempDir()

	lay := filepath.Join(dir, "layout")
	lp, err := layout.Write(lay, mustIndex(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	docker := filepath.Join(dir, "app.tar")
	tag, _ := name.NewTag("example.com/app:v1")
	if err := tarball.WriteToFile(docker, tag, img); err != nil {
		t.Fatal(err)
	}
	ociTar := filepath.Join(dir, "oci.tar")
	writeLayoutTar(t, lay, ociTar)

	_, c := startForImport(t, nil)
	for _, tc := range []struct {
		source, file, as string
	}{
		{"oci-layout:" + lay + ":v1", ociTar, "files/layout:v1"},
		{"oci-archive:" + ociTar + ":v1", ociTar, "files/ociarchive:v1"},
		{"docker-archive:" + docker, docker, "files/docker:v1"},
	} {
		t.Run(strings.SplitN(tc.source, ":", 2)[0], func(t *testing.T) {
			f, err := os.Open(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ev := readEvents(t, c, url.Values{"source": {tc.source}, "as": {tc.as}}, "application/x-tar", f)
			if ev.Type != "result" {
				t.Fatalf("import: %+v", ev)
			}
			if strings.HasPrefix(tc.source, "docker-archive") {
				// docker save keeps the config and layers, not the manifest bytes.
				if ev.Result.Digest == "" {
					t.Fatal("no digest")
				}
			} else if ev.Result.Digest != want.String() {
				t.Fatalf("digest %s, want %s", ev.Result.Digest, want)
			}
			if ev.Result.Import.Transport != strings.SplitN(tc.source, ":", 2)[0] || ev.Result.Import.Reference != tc.source {
				t.Fatalf("documented source: %+v", ev.Result.Import)
			}
		})
	}
	// Hostile archive: refused, nothing recorded.
	bad := filepath.Join(dir, "bad.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "../../escape", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("x"))
	_ = tw.Close()
	if err := os.WriteFile(bad, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(bad)
	defer f.Close()
	ev := readEvents(t, c, url.Values{"source": {"oci-archive:bad.tar"}, "as": {"files/bad:v1"}}, "application/x-tar", f)
	if ev.Type != "error" || !strings.Contains(ev.Error, "escapes") {
		t.Fatalf("hostile archive: %+v", ev)
	}
}

func TestPullThroughNeverServesUnvetted(t *testing.T) {
	up := servertest.StartUpstream(t)
	img := servertest.Image(t, v1.Platform{OS: "linux", Architecture: "amd64"}, map[string][]byte{"bin/busybox": servertest.Busybox(t)}, []string{"/bin/busybox"}, nil)
	want := up.Push(t, "library/redis:7", img, nil)
	in, c := startForImport(t, func(c *config.Config) {
		c.Import.PullThrough = true
		c.Import.InsecureRegistries = []string{strings.Split(strings.TrimPrefix(up.URL, "http://"), "/")[0]}
	})
	pull := in.Token(t, "dev", store.RolePuller)
	repo := strings.Replace(up.Host, ":", "_", 1) + "/library/redis"
	_, err := remote.Image(in.Ref(t, repo+":7"), servertest.Auth("dev", pull))
	if err == nil || !strings.Contains(err.Error(), "import queued as job") {
		t.Fatalf("first pull: %v", err)
	}
	// A second pull while the import runs queues nothing new.
	_, _ = remote.Image(in.Ref(t, repo+":7"), servertest.Auth("dev", pull))
	jobs, err := c.Jobs(context.Background(), store.JobFilter{})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs after two pulls: %d %v", len(jobs), err)
	}
	j := waitJob(t, c, jobs[0].ID)
	if j.Digest != want {
		t.Fatalf("pull-through job: %+v", j)
	}
	_, err = remote.Image(in.Ref(t, repo+":7"), servertest.Auth("dev", pull))
	if err == nil || !strings.Contains(err.Error(), "quarantined") {
		t.Fatalf("imported but unvetted content must not be served: %v", err)
	}
	in.Approve(t, want)
	if _, err := remote.Image(in.Ref(t, repo+":7"), servertest.Auth("dev", pull)); err != nil {
		t.Fatalf("approved pull: %v", err)
	}
}

func mustIndex(t *testing.T) v1.ImageIndex {
	t.Helper()
	return servertest.Index(t, map[string]v1.Image{})
}

func writeLayoutTar(t *testing.T, dir, out string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, _ := d.Info()
		h, _ := tar.FileInfoHeader(info, "")
		h.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = os.WriteFile(out, buf.Bytes(), 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
}
