package profile_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/profile/profiletest"
	"github.com/airlock-dev/airlock/internal/sandbox"
	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
)

func makeProfile(t *testing.T, img v1.Image) profile.Profile {
	t.Helper()
	p, err := profile.Make(context.Background(), img, profile.LocalSandbox(), profile.Options{
		Reference: "test", Duration: 20 * time.Second, TempDir: t.TempDir(), Version: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The clean service profiled twice gives the same document after
// Normalize, and the document shows exactly what the service does.
func TestProfileTwiceIdentical(t *testing.T) {
	profiletest.NeedSandbox(t)
	img := profiletest.App(t, false)
	a, b := makeProfile(t, img), makeProfile(t, img)
	ja, _ := profile.Marshal(profile.Normalize(a))
	jb, _ := profile.Marshal(profile.Normalize(b))
	if string(ja) != string(jb) {
		t.Fatalf("two runs differ after Normalize:\n%s\n%s", ja, jb)
	}
	if a.Exit.Code != 0 || a.Exit.TimedOut {
		t.Fatalf("exit %+v", a.Exit)
	}
	var execs []string
	for _, e := range a.Executables {
		execs = append(execs, e.Path)
	}
	if !reflect.DeepEqual(execs, []string{"/usr/bin/app", "/usr/bin/helper"}) {
		t.Fatalf("executables %v", execs)
	}
	if h := a.Executables[1]; !reflect.DeepEqual(h.Argv, [][]string{{"/usr/bin/helper", "--check"}}) || !reflect.DeepEqual(h.Parents, []string{"/usr/bin/app"}) {
		t.Fatalf("helper %+v", h)
	}
	if !hasPath(a.Files.Read, "/etc/app.conf") || !hasPath(a.Files.Created, "/var/lib/app/state") {
		t.Fatalf("files %+v", a.Files)
	}
	if !reflect.DeepEqual(a.Run.EnvNames, []string{"PATH", "TOKEN"}) {
		t.Fatalf("env names %v", a.Run.EnvNames)
	}
	if len(a.Network.Destinations)+len(a.Network.DNS)+len(a.Network.Listening) != 0 || len(a.Critical()) != 0 {
		t.Fatalf("network %+v notes %+v", a.Network, a.Notes)
	}
}

// The trojaned version differs from the clean one by exactly the planted
// behaviour: the dropped executable, its name lookup, its Stratum login
// and the notes that say so.
func TestProfileDiffShowsTrojan(t *testing.T) {
	profiletest.NeedSandbox(t)
	clean, trojan := makeProfile(t, profiletest.App(t, false)), makeProfile(t, profiletest.App(t, true))
	d := profile.Compare(clean, trojan)
	d.Old, d.New = profile.Image{}, profile.Image{}
	none := profile.Change{Added: []string{}, Removed: []string{}}
	want := profile.Diff{
		Executables:  profile.Change{Added: []string{"/tmp/.x/kworker"}, Removed: []string{}},
		Destinations: profile.Change{Added: []string{"tcp pool.example.invalid:3333 stratum"}, Removed: []string{}},
		DNS:          profile.Change{Added: []string{"pool.example.invalid A"}, Removed: []string{}},
		Listening:    none,
		Written:      profile.Change{Added: []string{"/tmp/.x", "/tmp/.x/kworker"}, Removed: []string{}},
		Deleted:      none,
		Notes: profile.Change{Added: []string{
			"exec-from-temp: ran /tmp/.x/kworker from a temporary directory",
			"miner-pool-port: connected to pool.example.invalid:3333, a port mining pools serve on",
			"stratum-login: sent a Stratum mining login to pool.example.invalid:3333 (" + profiletest.MinerLogin + ")",
		}, Removed: []string{}},
	}
	if !reflect.DeepEqual(d, want) {
		b, _ := json.MarshalIndent(d, "", "  ")
		t.Fatalf("diff:\n%s", b)
	}
	if c := trojan.Critical(); !reflect.DeepEqual(c, []string{profile.NoteStratumLogin}) {
		t.Fatalf("critical %v", c)
	}
}

func hasPath(ps []profile.Path, p string) bool {
	for _, x := range ps {
		if x.Path == p {
			return true
		}
	}
	return false
}

// webSource serves /healthz on :8080 until it is killed.
const webSource = `package main

import "net/http"

func main() {
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	http.ListenAndServe(":8080", nil)
}
`

// A server that only waits is exercised by an HTTP probe: the profile has
// its listening port, the probe's answer and a run that lasted to the limit.
func TestProfileWebServerWithProbe(t *testing.T) {
	profiletest.NeedSandbox(t)
	img := sandboxtest.Image(t, v1.Config{Entrypoint: []string{"/web"}},
		sandboxtest.Layer(t, map[string]sandboxtest.File{"web": {Data: sandboxtest.GoProgram(t, webSource)}}))
	probe, err := profile.ParseHTTPProbe("8080/healthz")
	if err != nil {
		t.Fatal(err)
	}
	p, err := profile.Make(context.Background(), img, profile.LocalSandbox(), profile.Options{
		Duration: 5 * time.Second, HTTPProbes: []sandbox.HTTPProbe{probe}, TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Network.Listening, []profile.Listen{{Proto: "tcp", Addr: "::", Port: 8080}}) &&
		!reflect.DeepEqual(p.Network.Listening, []profile.Listen{{Proto: "tcp", Addr: "0.0.0.0", Port: 8080}}) {
		t.Fatalf("listening %+v", p.Network.Listening)
	}
	if len(p.Probes) != 1 || !p.Probes[0].OK || p.Probes[0].Status != 200 || p.Probes[0].Output != "ok" || p.Probes[0].Target != "8080/healthz" {
		t.Fatalf("probes %+v", p.Probes)
	}
	if !p.Exit.TimedOut || !reflect.DeepEqual(p.Run.HTTPProbes, []string{"8080/healthz"}) || len(p.Critical()) != 0 {
		t.Fatalf("exit %+v run %+v notes %+v", p.Exit, p.Run, p.Notes)
	}
}
