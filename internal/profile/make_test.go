package profile

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/airlock-dev/airlock/internal/sandbox"
)

func TestParseHTTPProbe(t *testing.T) {
	for in, want := range map[string]sandbox.HTTPProbe{
		"8080/healthz": {Port: 8080, Path: "/healthz"},
		"80":           {Port: 80, Path: "/"},
		"443/a/b?c=d":  {Port: 443, Path: "/a/b?c=d"},
	} {
		got, err := ParseHTTPProbe(in)
		if err != nil || got != want {
			t.Errorf("ParseHTTPProbe(%q) = %+v, %v", in, got, err)
		}
		if back, _ := ParseHTTPProbe(FormatHTTPProbe(got)); back != got {
			t.Errorf("round trip of %q: %+v", in, back)
		}
	}
	for _, bad := range []string{"", "x/y", "0/a", "70000/a", "-1", "80/a b", "80/\x00"} {
		if _, err := ParseHTTPProbe(bad); err == nil {
			t.Errorf("ParseHTTPProbe(%q) accepted", bad)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string][]string{
		"wget -qO- http://127.0.0.1:8080/": {"wget", "-qO-", "http://127.0.0.1:8080/"},
		`sh -c 'echo "a b" > /tmp/x'`:      {"sh", "-c", `echo "a b" > /tmp/x`},
		`a\ b "" c`:                        {"a b", "", "c"},
	} {
		got, err := SplitCommand(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("SplitCommand(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "   ", `a 'b`, `a\`} {
		if _, err := SplitCommand(bad); err == nil {
			t.Errorf("SplitCommand(%q) accepted", bad)
		}
	}
}

// The entrypoint is looked up inside the unpacked root, symbolic links
// followed as the image sees them, never outside it.
func TestStartable(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	mk := func(p string) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(target, p string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	mk("bin/busybox")
	mk("usr/local/bin/app")
	mk("srv/run.sh")
	ln("/bin/busybox", "bin/sh")           // absolute: inside the root
	ln("../../bin/busybox", "usr/bin/env") // relative
	ln("usr/bin", "ubin")                  // a directory link
	ln("../../../../../../../.."+outside+"/evil", "bin/escape")
	if err := os.WriteFile(filepath.Join(outside, "evil"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	ln("/bin/loop", "bin/loop")
	if err := os.Mkdir(filepath.Join(root, "bin/dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		argv0, workdir string
		env            []string
		want           bool
	}{
		{"/bin/sh", "", nil, true},
		{"sh", "", nil, true},
		{"env", "", []string{"PATH=/usr/bin"}, true},
		{"app", "", nil, true},
		{"app", "", []string{"PATH=/bin"}, false},
		{"/ubin/env", "", nil, true},
		{"./run.sh", "/srv", nil, true},
		{"run.sh", "/srv", nil, false},
		{"/usr/bin/python3", "", nil, false},
		{"/bin/escape", "", nil, false},
		{"/bin/loop", "", nil, false},
		{"/bin/dir", "", nil, false},
		{"/bin/busybox/x", "", nil, false},
		{"", "", nil, false},
	} {
		if got := startable(root, tc.argv0, tc.workdir, tc.env); got != tc.want {
			t.Errorf("startable(%q, %q, %v) = %v, want %v", tc.argv0, tc.workdir, tc.env, got, tc.want)
		}
	}
}
