//go:build linux

package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// needSandbox skips where the sandbox cannot run; CI runs as root, where it
// must.
func needSandbox(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the sandbox must run in CI: %v", err)
		}
		t.Skip(err)
	}
}

// rootfsOf builds an image with busybox (as /bin/busybox and its applets'
// links) plus files, and unpacks it.
func rootfsOf(t *testing.T, files map[string]sandboxtest.File) string {
	t.Helper()
	all := map[string]sandboxtest.File{
		"bin":         {Dir: true},
		"bin/busybox": {Data: sandboxtest.Busybox(t), Mode: 0o755},
		"bin/sh":      {Symlink: "busybox"},
		"etc":         {Dir: true},
		"etc/passwd":  {Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n"), Mode: 0o644},
		"etc/group":   {Data: []byte("root:x:0:\nnogroup:x:65534:\napp:x:1000:\n"), Mode: 0o644},
		"tmp":         {Dir: true, Mode: 0o1777},
	}
	for k, v := range files {
		all[k] = v
	}
	img := sandboxtest.Image(t, v1.Config{}, sandboxtest.Layer(t, all))
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := Unpack(context.Background(), img, dir, UnpackLimits{Root: true}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRunBasics(t *testing.T) {
	needSandbox(t)
	root := rootfsOf(t, nil)
	res, err := Run(context.Background(), Spec{Rootfs: root, Entrypoint: []string{"/bin/busybox", "sh", "-c"},
		Cmd:      []string{"echo hello; id; hostname; grep -E 'Cap(Eff|Bnd)|NoNewPrivs|Seccomp' /proc/self/status; ls /; cat /proc/self/cgroup; ls /dev; echo data > /tmp/f; exit 7"},
		Duration: 20 * time.Second, Trace: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("output:\n%s", res.Output)
	for _, e := range res.Events {
		t.Logf("%+v", e)
	}
	t.Logf("exit %+v resources %+v notes %v startup %v", res.Exit, res.Resources, res.Notes, res.StartupTime)
	if res.Exit.Code != 7 {
		t.Errorf("exit = %+v, want code 7", res.Exit)
	}
	if !strings.Contains(string(res.Output), "hello") {
		t.Errorf("output lacks hello")
	}
}
