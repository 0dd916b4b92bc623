package policy_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/pipeline"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlite"
)

// The decide stage may run twice for one job (a crash after it acted but
// before its result was recorded): the second run reports what the first
// did and audits nothing twice.
func TestDecideStageIsIdempotent(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	digest := "sha256:" + strings.Repeat("b", 64)
	if _, err := st.RecordManifest(ctx, store.Manifest{Repository: "x/y", Digest: digest, MediaType: "application/vnd.oci.image.manifest.v1+json", Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	job, err := st.EnqueueJob(ctx, store.NewJob{Digest: digest, Repository: "x/y", Stages: pipeline.Stages, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse([]byte("apiVersion: airlock.dev/policy/v1\nname: deny-all\ndefault: allow\nrules:\n  - name: everything\n    effect: deny\n    when: \"true\"\n    message: nothing passes\n"))
	if err != nil {
		t.Fatal(err)
	}
	step := &policy.Step{Store: st, Policy: p}
	for run := 1; run <= 2; run++ {
		out, err := step.Run(ctx, job)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		var o policy.Outcome
		if err := json.Unmarshal(out.Evidence, &o); err != nil {
			t.Fatal(err)
		}
		if o.Action != "rejected" {
			t.Fatalf("run %d: action %q (%s), want rejected", run, o.Action, o.Note)
		}
	}
	img, err := st.Image(ctx, digest)
	if err != nil || img.State != store.Rejected || len(img.History) != 2 {
		t.Fatalf("image after two runs: %+v %v", img, err)
	}
	es, err := st.AuditEntries(ctx, store.AuditFilter{Subject: digest, Action: "policy.evaluated"})
	if err != nil || len(es) != 1 {
		t.Fatalf("policy.evaluated entries: %d %v", len(es), err)
	}
}
