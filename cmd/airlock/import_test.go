package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestImportCLI drives `airlock import` for a registry source, an OCI layout
// directory (tarred and uploaded by the CLI) and a docker archive, then
// `--wait`, `jobs` and `show`.
func TestImportCLI(t *testing.T) {
	up := servertest.StartUpstream(t)
	p := v1.Platform{OS: "linux", Architecture: "amd64"}
	img := servertest.Image(t, p, map[string][]byte{"app": servertest.GoBinary(t, "amd64", "hello cli")}, []string{"/app"}, map[string]string{"team": "cli"})
	want := up.Push(t, "team/cli:1", img, nil)

	in := servertest.Start(t, func(c *config.Config) { c.Pipeline.MaxAttempts = 1 })
	t.Setenv("AIRLOCK_SERVER", in.URL)
	t.Setenv("AIRLOCK_TOKEN", in.Token(t, "cli", store.RolePusher))
	t.Setenv("AIRLOCK_CREDENTIALS", filepath.Join(t.TempDir(), "creds.json"))

	// A registry source; --wait ends with exit 1: the image stays quarantined
	// for a human, and says so.
	out, code := run(t, "import", up.Host+"/team/cli:1", "--insecure", "--wait")
	if code != 1 || !strings.Contains(out, "Digest:      "+want) || !strings.Contains(out, "State:       quarantined") ||
		!strings.Contains(out, "is quarantined") {
		t.Fatalf("import --wait: exit %d\n%s", code, out)
	}
	i := strings.Index(out, "queued as job ")
	if i < 0 {
		t.Fatalf("no job id in:\n%s", out)
	}
	id := strings.Fields(out[i+len("queued as job "):])[0]
	if _, err := strconv.Atoi(id); err != nil {
		t.Fatalf("job id %q: %v", id, err)
	}
	out, code = run(t, "jobs", "show", id)
	if code != 0 || !strings.Contains(out, "import   done") || !strings.Contains(out, "harden   done") {
		t.Fatalf("jobs show: %d\n%s", code, out)
	}
	out, code = run(t, "show", want)
	if code != 0 || !strings.Contains(out, up.Host+"/team/cli:1") || !strings.Contains(out, "transport:  registry") || !strings.Contains(out, "by airlock tests") {
		t.Fatalf("show: %d\n%s", code, out)
	}

	// An OCI layout directory, uploaded by the CLI as a tar.
	dir := t.TempDir()
	lp, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	out, code = run(t, "import", "oci-layout:"+filepath.Join(dir, "layout")+":v1", "--as", "files/cli:v1")
	if code != 0 || !strings.Contains(out, "Digest:      "+want) || !strings.Contains(out, "Repository:  files/cli") || !strings.Contains(out, "(oci-layout,") {
		t.Fatalf("import oci-layout: %d\n%s", code, out)
	}

	// A docker archive, with -o json.
	tag, _ := name.NewTag("example.com/cli:v1")
	archive := filepath.Join(dir, "cli.tar")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	out, code = run(t, "import", "docker-archive:"+archive, "--as", "files/docker:v1", "-o", "json")
	if code != 0 || !strings.Contains(out, `"transport": "docker-archive"`) || !strings.Contains(out, `"repository": "files/docker"`) {
		t.Fatalf("import docker-archive: %d\n%s", code, out)
	}

	// Usage errors: a file source without --as, and a missing file.
	if out, code = run(t, "import", "docker-archive:"+archive); code != 2 || !strings.Contains(out, "--as") {
		t.Fatalf("file import without --as: %d\n%s", code, out)
	}
	if out, code = run(t, "import", "docker-archive:"+filepath.Join(dir, "missing.tar"), "--as", "x/y:1"); code != 2 {
		t.Fatalf("missing archive: %d\n%s", code, out)
	}
}
