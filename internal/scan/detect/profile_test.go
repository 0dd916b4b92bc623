package detect

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/airlock-dev/airlock/internal/scan"
)

// TestProfileLayout scans the OCI layout in $AIRLOCK_PROFILE_LAYOUT (for
// go test -cpuprofile); skipped otherwise.
func TestProfileLayout(t *testing.T) {
	dir := os.Getenv("AIRLOCK_PROFILE_LAYOUT")
	if dir == "" {
		t.Skip("AIRLOCK_PROFILE_LAYOUT not set")
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := p.ImageIndex()
	m, _ := idx.IndexManifest()
	img, err := p.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := All(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("AIRLOCK_PROFILE_NODETECT") != "" {
		ds = nil
	}
	start := time.Now()
	r, err := scan.Run(context.Background(), img, scan.Options{Detectors: ds, Progress: func(s string) { t.Logf("%6.2fs %s", time.Since(start).Seconds(), s) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d packages %d findings in %.2fs", len(r.Packages), len(r.Findings), r.Scanner.DurationSecs)
}
