package harden_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/harden"
	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/sandbox"
	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
)

// needSandbox skips a replay test on a host without the sandbox (not root)
// unless in CI, which runs as root and must run it.
func needSandbox(t *testing.T) {
	t.Helper()
	if err := harden.SandboxAvailable(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the sandbox must run in CI: %v", err)
		}
		t.Skipf("no sandbox here: %v", err)
	}
}

// needHost skips a test whose host programs or packages are missing, unless
// in CI, where .ci/tools.sh installs them and the test must run.
func needHost(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI installs it: .ci/tools.sh)", why)
	}
	t.Skip(why)
}

func makeProfile(t *testing.T, img v1.Image, o profile.Options) *profile.Profile {
	t.Helper()
	o.TempDir = t.TempDir()
	pr, err := profile.Make(context.Background(), img, harden.LocalSandbox(), o)
	if err != nil {
		t.Fatal(err)
	}
	return &pr
}

func replay(t *testing.T, hardened v1.Image, like *profile.Profile) *harden.ReplayResult {
	t.Helper()
	rr, err := harden.Replay(context.Background(), hardened, like, harden.SandboxProfiler(harden.LocalSandbox(), t.TempDir(), "test"))
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// TestReplayTrojanedImage: the app server is profiled for real, hardened,
// and replayed: it serves the same, and the miner is gone.
func TestReplayTrojanedImage(t *testing.T) {
	needSandbox(t)
	img := trojanedImage(t)
	pr := makeProfile(t, img, profile.Options{Duration: 3 * time.Second, HTTPProbes: []sandbox.HTTPProbe{{Port: 8080, Path: "/healthz"}}})
	if len(pr.Probes) != 1 || !pr.Probes[0].OK {
		t.Fatalf("the original does not answer its probe: %+v (exit %+v, notes %v)", pr.Probes, pr.Exit, pr.Notes)
	}
	res, err := harden.Harden(context.Background(), img, pr, harden.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if !slices.Contains(res.Report.Removed.Executables, "/usr/local/bin/xmrig") {
		t.Errorf("removed executables %v", res.Report.Removed.Executables)
	}
	rr := replay(t, res.Image, pr)
	if !rr.Passed {
		t.Fatalf("replay failed: %v", rr.Failures)
	}
	if rr.Profile == nil || len(rr.Profile.Probes) != 1 || rr.Profile.Probes[0].Status != 200 || rr.Profile.Probes[0].Output != pr.Probes[0].Output {
		t.Errorf("hardened probes: %+v", rr.Profile.Probes)
	}
	if slices.ContainsFunc(rr.Profile.Executables, func(e profile.Exec) bool { return e.Path == "/usr/local/bin/xmrig" }) {
		t.Error("the miner ran in the hardened image")
	}
}

// TestReplaySharedLibraries: curl with the libraries the ELF walk found
// runs the same as with everything.
func TestReplaySharedLibraries(t *testing.T) {
	needSandbox(t)
	img, _, _, _, _ := sharedLibraryImage(t)
	pr := makeProfile(t, img, profile.Options{Duration: 5 * time.Second})
	if pr.Exit.TimedOut || pr.Exit.Code != 0 {
		t.Fatalf("the original did not run: exit %+v, missing %v, notes %v", pr.Exit, pr.Files.Missing, pr.Notes)
	}
	res, err := harden.Harden(context.Background(), img, pr, harden.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if rr := replay(t, res.Image, pr); !rr.Passed {
		t.Fatalf("replay failed: %v", rr.Failures)
	}
}

const branchySrc = `package main

import (
	"net/http"
	"os"
)

func main() {
	if _, err := os.ReadFile("/etc/app/app.conf"); err != nil {
		os.Exit(4)
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	http.HandleFunc("/report", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile("/usr/share/app/template.txt")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(b)
	})
	http.ListenAndServe(":8080", nil)
}
`

// TestKeepFixesWhatTheProfileMissed: the profile exercised /healthz only;
// the hardened image fails when /report is probed, and --keep of the
// template it reads makes it pass.
func TestKeepFixesWhatTheProfileMissed(t *testing.T) {
	needSandbox(t)
	img := sandboxtest.Image(t, v1.Config{Entrypoint: []string{"/app"}},
		sandboxtest.Layer(t, map[string]sandboxtest.File{
			"app":                        {Data: sandboxtest.GoProgram(t, branchySrc), Mode: 0o755},
			"etc/app/app.conf":           {Data: []byte("x\n"), Mode: 0o644},
			"usr/share/app/template.txt": {Data: []byte("report\n"), Mode: 0o644},
		}))
	narrow := makeProfile(t, img, profile.Options{Duration: 3 * time.Second, HTTPProbes: []sandbox.HTTPProbe{{Port: 8080, Path: "/healthz"}}})
	full := makeProfile(t, img, profile.Options{Duration: 3 * time.Second, HTTPProbes: []sandbox.HTTPProbe{{Port: 8080, Path: "/healthz"}, {Port: 8080, Path: "/report"}}})
	res, err := harden.Harden(context.Background(), img, narrow, harden.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if rr := replay(t, res.Image, narrow); !rr.Passed {
		t.Fatalf("the narrow replay failed: %v", rr.Failures)
	}
	if rr := replay(t, res.Image, full); rr.Passed {
		t.Fatal("the hardened image passed a probe of a code path its profile never saw")
	} else {
		t.Logf("as expected: %v", rr.Failures)
	}
	kept, err := harden.Harden(context.Background(), img, narrow, harden.Options{TempDir: t.TempDir(),
		Keep: []harden.KeepRule{{Glob: "/usr/share/app/**", Source: "flag"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	if rr := replay(t, kept.Image, full); !rr.Passed {
		t.Fatalf("with --keep the replay still fails: %v", rr.Failures)
	}
}

const tlsClientSrc = `package main

import (
	"crypto/x509"
	"net/http"
)

func main() {
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	// Only this path needs the CA bundle (as an outgoing TLS call would).
	http.HandleFunc("/tls", func(w http.ResponseWriter, r *http.Request) {
		pool, err := x509.SystemCertPool()
		if err != nil || len(pool.Subjects()) == 0 { //nolint:staticcheck // counting is enough here
			http.Error(w, "no CA certificates", 500)
			return
		}
		w.Write([]byte("trusted"))
	})
	http.ListenAndServe(":8080", nil)
}
`

// TestCABundleDefault: the profile exercised /healthz only, so it never saw
// the CA bundle opened; the ca-certificates default keeps it and the /tls
// path still works on the hardened image; turned off, it does not.
func TestCABundleDefault(t *testing.T) {
	needSandbox(t)
	pem, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		needHost(t, fmt.Sprintf("no CA bundle on this machine: %v", err))
	}
	img := sandboxtest.Image(t, v1.Config{Entrypoint: []string{"/app"}},
		sandboxtest.Layer(t, map[string]sandboxtest.File{
			"app":                               {Data: sandboxtest.GoProgram(t, tlsClientSrc), Mode: 0o755},
			"etc/ssl/certs/ca-certificates.crt": {Data: pem, Mode: 0o644},
		}))
	narrow := makeProfile(t, img, profile.Options{Duration: 3 * time.Second, HTTPProbes: []sandbox.HTTPProbe{{Port: 8080, Path: "/healthz"}}})
	full := makeProfile(t, img, profile.Options{Duration: 3 * time.Second, HTTPProbes: []sandbox.HTTPProbe{{Port: 8080, Path: "/healthz"}, {Port: 8080, Path: "/tls"}}})
	if len(full.Probes) != 2 || full.Probes[1].Status != 200 {
		t.Fatalf("the original does not answer /tls: %+v", full.Probes)
	}
	for _, c := range []struct {
		off  []string
		pass bool
	}{{nil, true}, {[]string{"ca-certificates"}, false}} {
		res, err := harden.Harden(context.Background(), img, narrow, harden.Options{TempDir: t.TempDir(), NoDefaults: c.off})
		if err != nil {
			t.Fatal(err)
		}
		rr := replay(t, res.Image, full)
		res.Close()
		if rr.Passed != c.pass {
			t.Errorf("defaults off %v: replay passed %t, want %t (%v)", c.off, rr.Passed, c.pass, rr.Failures)
		}
	}
}
