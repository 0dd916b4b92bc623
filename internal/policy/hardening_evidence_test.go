package policy

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/airlock-dev/airlock/internal/store"
)

func TestHardeningFacts(t *testing.T) {
	hardened := json.RawMessage(`{"status":"hardened","original":"sha256:a","hardened":"sha256:b","replayPassed":true,
		"removedExecutables":["/usr/local/bin/xmrig"],"removedPackages":["curl"],"removedFindings":["high malware X at /usr/local/bin/xmrig"],
		"replayFailures":[],"originalSize":100,"hardenedSize":10}`)
	f := hardeningFacts(store.StageDone, hardened)
	if !f.Present || f.Status != "hardened" || f.Hardened != "sha256:b" || !slices.Equal(f.RemovedExecutables, []string{"/usr/local/bin/xmrig"}) ||
		f.HardenedSize != 10 || len(f.RemovedFindings) != 1 {
		t.Errorf("hardened: %+v", f)
	}
	failed := hardeningFacts(store.StageDone, json.RawMessage(`{"status":"replay-failed","reason":"exit differs","replayPassed":false,"replayFailures":["exit differs"]}`))
	if failed.Present || failed.Status != "replay-failed" || failed.Reason != "exit differs" || len(failed.ReplayFailures) != 1 {
		t.Errorf("replay failed: %+v", failed)
	}
	for _, c := range []struct {
		status   string
		evidence string
		want     string
	}{
		{store.StageFailed, `{}`, "failed"},
		{store.StagePending, `{}`, StageMissing},
		{store.StageDone, `not json`, "failed"},
		{store.StageDone, `{}`, "failed"},
		{store.StageDone, `{"status":"hardened","replayPassed":false}`, "hardened"},
	} {
		f := hardeningFacts(c.status, json.RawMessage(c.evidence))
		if f.Status != c.want || f.Present || f.RemovedExecutables == nil {
			t.Errorf("%s %s: %+v", c.status, c.evidence, f)
		}
	}
}
