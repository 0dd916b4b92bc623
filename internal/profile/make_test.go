package profile

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
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

// elfHeader is the start of an ELF executable for machine.
func elfHeader(machine uint16) []byte {
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[4], h[5] = 2, 1 // 64-bit, little endian
	h[18], h[19] = byte(machine), byte(machine>>8)
	return h
}

// The entrypoint is looked up inside the unpacked root, symbolic links
// followed as the image sees them, never outside it, and must start on
// this machine.
func TestStartable(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	write := func(p string, data []byte) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o755); err != nil {
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
	host := elfHeader(hostMachine())
	other := elfHeader(62)
	if hostMachine() == 62 {
		other = elfHeader(183)
	}
	write("bin/busybox", host)
	write("usr/local/bin/app", host)
	write("srv/run.sh", []byte("#!/bin/sh\necho hi\n"))
	write("srv/py.sh", []byte("#!/usr/bin/python3 -u\n"))
	write("srv/loop.sh", []byte("#!/srv/loop.sh\n"))
	write("srv/bare.sh", []byte("echo no shebang\n"))
	write("srv/arm", other)
	ln("/bin/busybox", "bin/sh")           // absolute: inside the root
	ln("../../bin/busybox", "usr/bin/env") // relative
	ln("usr/bin", "ubin")                  // a directory link
	ln("../../../../../../../.."+outside+"/evil", "bin/escape")
	if err := os.WriteFile(filepath.Join(outside, "evil"), host, 0o755); err != nil {
		t.Fatal(err)
	}
	ln("/bin/loop", "bin/loop")
	if err := os.Mkdir(filepath.Join(root, "bin/dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		argv0, workdir string
		env            []string
		why            string // "" when it starts
	}{
		{"/bin/sh", "", nil, ""},
		{"sh", "", nil, ""},
		{"env", "", []string{"PATH=/usr/bin"}, ""},
		{"app", "", nil, ""},
		{"app", "", []string{"PATH=/bin"}, "not a file"},
		{"/ubin/env", "", nil, ""},
		{"./run.sh", "/srv", nil, ""},
		{"run.sh", "/srv", nil, "not a file"},
		{"/srv/py.sh", "", nil, "interpreter cannot start"},
		{"/srv/loop.sh", "", nil, "a script run by a script"},
		{"/srv/bare.sh", "", nil, "neither an ELF executable nor a script"},
		{"/srv/arm", "", nil, "another machine"},
		{"/usr/bin/python3", "", nil, "not a file"},
		{"/bin/escape", "", nil, "not a file"},
		{"/bin/loop", "", nil, "not a file"},
		{"/bin/dir", "", nil, "not a file"},
		{"/bin/busybox/x", "", nil, "not a file"},
		{"", "", nil, "empty"},
	} {
		got := startable(root, tc.argv0, tc.workdir, tc.env)
		if (tc.why == "") != (got == "") || !strings.Contains(got, tc.why) {
			t.Errorf("startable(%q, %q, %v) = %q, want %q", tc.argv0, tc.workdir, tc.env, got, tc.why)
		}
	}
}

// A dynamically linked program needs its loader in the image.
func TestStartableDynamic(t *testing.T) {
	ls, err := os.ReadFile("/bin/ls")
	if err != nil {
		t.Skipf("no dynamically linked program on this host to copy: %v", err)
	}
	interp := elfInterpreter("/bin/ls")
	if interp == "" {
		t.Skip("/bin/ls is static here")
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/ls"), ls, 0o755); err != nil {
		t.Fatal(err)
	}
	if why := startable(root, "/bin/ls", "", nil); !strings.Contains(why, "needs the dynamic loader "+interp) {
		t.Fatalf("without its loader: %q", why)
	}
	loader := filepath.Join(root, filepath.FromSlash(interp))
	if err := os.MkdirAll(filepath.Dir(loader), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(loader, elfHeader(hostMachine()), 0o755); err != nil {
		t.Fatal(err)
	}
	if why := startable(root, "/bin/ls", "", nil); why != "" {
		t.Fatalf("with its loader: %q", why)
	}
	// A truncated ELF is left to the sandbox to judge, never a panic.
	if err := os.WriteFile(filepath.Join(root, "bin/cut"), ls[:200], 0o755); err != nil {
		t.Fatal(err)
	}
	_ = startable(root, "/bin/cut", "", nil)
}
