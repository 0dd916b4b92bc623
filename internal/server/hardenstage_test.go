package server_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/harden"
	hardenstage "github.com/airlock-dev/airlock/internal/harden/stage"
	"github.com/airlock-dev/airlock/internal/profile/profiletest"
	"github.com/airlock-dev/airlock/internal/sandbox/sandboxtest"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

const hardenToolSrc = `package main

import "os"

func main() {
	b, err := os.ReadFile("/etc/tool.conf")
	if err != nil {
		os.Exit(3)
	}
	os.Stdout.Write(b)
}
`

const hardenPayloadSrc = `package main

import (
	"fmt"
	"net"
)

func main() {
	c, err := net.Dial("tcp", "pool.supportxmr.invalid:3333")
	if err != nil {
		return
	}
	fmt.Fprintf(c, "{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"x\",\"pass\":\"x\",\"agent\":\"xmrig/6.21.0\"}}\n")
	fmt.Println("stratum+tcp://pool.supportxmr.invalid:3333 mining.subscribe")
}
`

// Import a tool whose image carries a miner the entrypoint never runs →
// profiled, hardened, replayed; the hardened digest is stored quarantined
// in the same repository, linked to the original in the store and by a
// referrer with the report, and the miner is among the removed executables.
func TestHardenStage(t *testing.T) {
	profiletest.NeedSandbox(t)
	img := sandboxtest.Image(t, v1.Config{Entrypoint: []string{"/usr/bin/tool"}, Env: []string{"PATH=/usr/local/bin:/usr/bin"}},
		sandboxtest.Layer(t, map[string]sandboxtest.File{
			"usr/bin/tool":        {Data: sandboxtest.GoProgram(t, hardenToolSrc), Mode: 0o755},
			"etc/tool.conf":       {Data: []byte("verbose=1\n"), Mode: 0o644},
			"usr/local/bin/xmrig": {Data: sandboxtest.GoProgram(t, hardenPayloadSrc), Mode: 0o755},
			"usr/share/doc/x":     {Data: []byte(strings.Repeat("docs\n", 1000)), Mode: 0o644},
		}))
	up := servertest.StartUpstream(t)
	orig := up.Push(t, "apps/tool:1.0", img, nil)
	in, c := startForImport(t, func(c *config.Config) { c.Profile.Duration = 5 * time.Second })
	ctx := context.Background()

	j := importedJob(t, c, server.ImportRequest{Source: up.Host + "/apps/tool:1.0", Insecure: true})
	hs := stageOf(j, "harden")
	if hs == nil || hs.Status != store.StageDone {
		t.Fatalf("harden stage: %+v (job %+v)", hs, j)
	}
	var hev hardenstage.Evidence
	if err := json.Unmarshal(hs.Evidence, &hev); err != nil {
		t.Fatal(err)
	}
	if hev.Status != hardenstage.StatusHardened || hev.Original != orig || hev.Hardened == "" || !hev.ReplayPassed {
		t.Fatalf("evidence: %s", hs.Evidence)
	}
	if !slices.Contains(hev.RemovedExecutables, "/usr/local/bin/xmrig") || hev.HardenedSize >= hev.OriginalSize {
		t.Errorf("removed %v; size %d → %d", hev.RemovedExecutables, hev.OriginalSize, hev.HardenedSize)
	}
	if !slices.ContainsFunc(hev.RemovedFindings, func(f string) bool { return strings.Contains(f, "/usr/local/bin/xmrig") }) {
		t.Errorf("findings removed: %v", hev.RemovedFindings)
	}
	repo := strings.Replace(up.Host, ":", "_", 1) + "/apps/tool"
	st := in.Server.Store
	rec, err := st.Image(ctx, hev.Hardened)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != store.Quarantined || !slices.Contains(rec.Repositories, repo) {
		t.Errorf("hardened record: %s in %v", rec.State, rec.Repositories)
	}
	ls, err := st.DerivedFrom(ctx, orig)
	if err != nil || len(ls) != 1 || ls[0].Derived != hev.Hardened || ls[0].Kind != hardenstage.LineageKind {
		t.Errorf("lineage: %+v %v", ls, err)
	}
	refs, err := st.Referrers(ctx, repo, orig)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(refs, func(r store.Referrer) bool { return r.ArtifactType == harden.ArtifactType }) {
		t.Errorf("no harden report among the referrers: %+v", refs)
	}
	// The hardened manifest names its original and the profile.
	himg, err := in.Server.Registry.Image(ctx, repo, hev.Hardened)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := himg.Manifest()
	if m.Annotations[harden.AnnotationBaseDigest] != orig || m.Annotations[harden.AnnotationProfile] != hev.ProfileDigest {
		t.Errorf("annotations %v", m.Annotations)
	}

	// Run again (as after a crash), the stage stores the same digest and
	// the same referrer.
	again, err := in.Server.Runner.Steps["harden"].Run(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	var second hardenstage.Evidence
	if json.Unmarshal(again.Evidence, &second) != nil || second.Hardened != hev.Hardened || !reflect.DeepEqual(second.Artifacts, hev.Artifacts) {
		t.Fatalf("run again:\n%s\n%s", again.Evidence, hs.Evidence)
	}
	if ls, _ := st.DerivedFrom(ctx, orig); len(ls) != 1 {
		t.Errorf("lineage recorded %d times", len(ls))
	}
}

const hardenStatSrc = `package main

import "os"

func main() {
	// A stat, not an open: the profile does not see the file used.
	if _, err := os.Stat("/etc/feature.flag"); err != nil {
		os.Exit(2)
	}
}
`

// A file the program only stats is not in the profile, so the hardened
// image exits differently: the replay fails, the original is kept, no
// hardened digest is stored and the report says why. The repository's
// config (DATA/harden/REPO.yaml) keeping the file fixes it.
func TestHardenStageReplayFails(t *testing.T) {
	profiletest.NeedSandbox(t)
	img := sandboxtest.Image(t, v1.Config{Entrypoint: []string{"/usr/bin/tool"}},
		sandboxtest.Layer(t, map[string]sandboxtest.File{
			"usr/bin/tool":     {Data: sandboxtest.GoProgram(t, hardenStatSrc), Mode: 0o755},
			"etc/feature.flag": {Data: []byte("on\n"), Mode: 0o644},
		}))
	up := servertest.StartUpstream(t)
	orig := up.Push(t, "apps/flag:1.0", img, nil)
	in, c := startForImport(t, func(c *config.Config) { c.Profile.Duration = 5 * time.Second })
	ctx := context.Background()
	j := importedJob(t, c, server.ImportRequest{Source: up.Host + "/apps/flag:1.0", Insecure: true})
	hs := stageOf(j, "harden")
	var hev hardenstage.Evidence
	if hs == nil || hs.Status != store.StageDone || json.Unmarshal(hs.Evidence, &hev) != nil {
		t.Fatalf("harden stage: %+v", hs)
	}
	if hev.Status != hardenstage.StatusReplayFailed || hev.ReplayPassed || hev.Hardened != "" || len(hev.ReplayFailures) == 0 ||
		!strings.Contains(hev.Reason, "the original is kept") {
		t.Fatalf("evidence: %s", hs.Evidence)
	}
	st := in.Server.Store
	if ls, _ := st.DerivedFrom(ctx, orig); len(ls) != 0 {
		t.Errorf("a hardened image that failed its replay was linked: %+v", ls)
	}
	repo := strings.Replace(up.Host, ":", "_", 1) + "/apps/flag"
	imgs, err := st.Images(ctx, store.ImageFilter{Repository: repo})
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range imgs {
		if im.Digest != orig && im.Subject == "" {
			t.Errorf("the repository holds %s besides the original and its referrers", im.Digest)
		}
	}
	if refs, _ := st.Referrers(ctx, repo, orig); !slices.ContainsFunc(refs, func(r store.Referrer) bool { return r.ArtifactType == harden.ArtifactType }) {
		t.Errorf("the report of the failed replay is not attached: %+v", refs)
	}

	// The repository's config keeps the file: run the stage again.
	cfgPath := harden.RepositoryConfigPath(filepath.Join(in.Data, "harden"), repo)
	if err := os.MkdirAll(filepath.Dir(cfgPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte("keep: [/etc/feature.flag]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := in.Server.Runner.Steps["harden"].Run(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	var fixed hardenstage.Evidence
	if json.Unmarshal(out.Evidence, &fixed) != nil || fixed.Status != hardenstage.StatusHardened || fixed.Hardened == "" {
		t.Fatalf("with the config: %s", out.Evidence)
	}
	if ls, _ := st.DerivedFrom(ctx, orig); len(ls) != 1 || ls[0].Derived != fixed.Hardened {
		t.Errorf("lineage: %+v", ls)
	}
}
