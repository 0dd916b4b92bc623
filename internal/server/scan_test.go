package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/airlock-dev/airlock/internal/scan"
	"github.com/airlock-dev/airlock/internal/scan/stage"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// Import → scan stage done → findings as evidence with file and layer →
// SBOM and report attached as referrers, fetchable once the image is.
func TestScanStage(t *testing.T) {
	up := servertest.StartUpstream(t)
	base := servertest.Image(t, v1.Platform{OS: "linux", Architecture: "amd64"},
		map[string][]byte{"bin/busybox": servertest.Busybox(t)}, []string{"/bin/busybox", "sh"}, nil)
	payload := servertest.Layer(t, map[string][]byte{
		"opt/app/settings.json": []byte(`{"donate-level": 1, "pools": [{"url": "stratum+tcp://pool.supportxmr.com:3333"}]}`),
	})
	img, err := mutate.AppendLayers(base, payload)
	if err != nil {
		t.Fatal(err)
	}
	pd, _ := payload.Digest()
	want := up.Push(t, "tools/agent:1.0", img, nil)

	in, c := startForImport(t, nil)
	ev := importJSON(t, c, server.ImportRequest{Source: up.Host + "/tools/agent:1.0", Insecure: true})
	if ev.Type != "result" {
		t.Fatalf("import: %+v", ev)
	}
	j := waitJob(t, c, ev.Job.ID)
	var sc *store.StageRun
	for i, s := range j.Stages {
		if s.Name == "scan" {
			sc = &j.Stages[i]
		}
	}
	if sc == nil || sc.Status != store.StageDone {
		t.Fatalf("scan stage: %+v", sc)
	}
	var evidence stage.Evidence
	if err := json.Unmarshal(sc.Evidence, &evidence); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range evidence.Findings {
		if f.ID == "AIRLOCK-MINER-STRATUM" && f.Location.Path == "/opt/app/settings.json" && f.Location.Layer == pd.String() && f.Image == want && f.Severity == "critical" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no stratum finding with file and layer in %s", sc.Evidence)
	}
	if len(evidence.Images) != 1 || evidence.Images[0].Digest != want || len(evidence.Images[0].Artifacts) != 2 || evidence.Images[0].ReportDigest == "" {
		t.Fatalf("image evidence: %+v", evidence.Images)
	}
	// The policy reads the findings: a miner is denied and the digest rejected.
	admin := in.Client(in.AdminToken)
	rec, err := admin.Image(context.Background(), want)
	if err != nil || rec.State != store.Rejected || !strings.Contains(rec.History[len(rec.History)-1].Reason, "rule malware") {
		t.Fatalf("record %+v %v", rec.History, err)
	}

	// A clean image is scanned too, stays quarantined for review, and once
	// approved its SBOM and report are fetchable by a puller.
	want = up.Push(t, "tools/clean:1.0", base, nil)
	j = importedJob(t, c, server.ImportRequest{Source: up.Host + "/tools/clean:1.0", Insecure: true})
	if j.Stages[1].Name != "scan" || j.Stages[1].Status != store.StageDone {
		t.Fatalf("clean scan stage: %+v", j.Stages)
	}
	// Run again (as after a crash before its result was recorded), the stage
	// gives the same evidence and the same referrers.
	again, err := in.Server.Runner.Steps["scan"].Run(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	var first, second stage.Evidence
	if json.Unmarshal(j.Stages[1].Evidence, &first) != nil || json.Unmarshal(again.Evidence, &second) != nil ||
		first.Images[0].ReportDigest != second.Images[0].ReportDigest || first.Images[0].Artifacts[0] != second.Images[0].Artifacts[0] ||
		first.Images[0].Artifacts[1] != second.Images[0].Artifacts[1] {
		t.Fatalf("scan stage run again:\n%s\n%s", again.Evidence, j.Stages[1].Evidence)
	}
	if rec, err := admin.Image(context.Background(), want); err != nil || rec.State != store.Quarantined {
		t.Fatalf("clean record %+v %v", rec, err)
	}
	repo := strings.Replace(up.Host, ":", "_", 1) + "/tools/clean"
	ref := in.Ref(t, repo+"@"+want).(name.Digest)
	pull := in.Token(t, "puller", store.RolePuller)
	if _, err := remote.Referrers(ref, servertest.Auth("puller", pull)); err == nil {
		t.Fatal("referrers of a quarantined image listed to a puller")
	}
	in.Approve(t, want)
	idx, err := remote.Referrers(ref, servertest.Auth("puller", pull))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	byType := map[string]v1.Descriptor{}
	for _, m := range im.Manifests {
		byType[m.ArtifactType] = m
	}
	sbomDesc, ok := byType[scan.MediaTypeCycloneDX]
	if !ok {
		t.Fatalf("no CycloneDX referrer in %+v", im.Manifests)
	}
	if _, ok := byType[scan.MediaTypeReport]; !ok {
		t.Fatalf("no report referrer in %+v", im.Manifests)
	}
	// A puller fetches the SBOM itself, and it is a valid CycloneDX 1.6 BOM of this digest.
	art, err := remote.Image(in.Ref(t, repo+"@"+sbomDesc.Digest.String()), servertest.Auth("puller", pull))
	if err != nil {
		t.Fatal(err)
	}
	ls, err := art.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("sbom layers %v %v", ls, err)
	}
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(b), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	if bom.SpecVersion != cdx.SpecVersion1_6 || bom.Metadata == nil || bom.Metadata.Component == nil || bom.Metadata.Component.Version != want {
		t.Fatalf("SBOM metadata: %+v", bom.Metadata)
	}
	// The artifacts are Airlock's own, recorded approved, subject the image.
	a, err := admin.Image(context.Background(), sbomDesc.Digest.String())
	if err != nil || a.State != store.Approved || a.Subject != want || a.History[len(a.History)-1].Actor != "airlock" {
		t.Fatalf("artifact record %+v %v", a, err)
	}
}
