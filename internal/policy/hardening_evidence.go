package policy

import (
	"encoding/json"

	"github.com/airlock-dev/airlock/internal/store"
)

// HardeningFacts describe the harden stage's result as the rules see it
// (filled from the stage's evidence, internal/harden/stage.Evidence).
// Present is true when a hardened image exists: it was built, replayed
// with the original's probes and behaved the same.
type HardeningFacts struct {
	Present bool   `json:"present"`
	Status  string `json:"status"` // hardened, replay-failed, skipped, unavailable, failed, missing
	Reason  string `json:"reason"`
	// Hardened is the digest of the hardened image ("" unless Present).
	Hardened           string   `json:"hardened"`
	ReplayPassed       bool     `json:"replayPassed"`
	ReplayFailures     []string `json:"replayFailures"`
	RemovedExecutables []string `json:"removedExecutables"`
	RemovedPackages    []string `json:"removedPackages"`
	RemovedFindings    []string `json:"removedFindings"`
	OriginalSize       int64    `json:"originalSize"`
	HardenedSize       int64    `json:"hardenedSize"`
}

func emptyHardeningFacts(status string) HardeningFacts {
	return HardeningFacts{Status: status, ReplayFailures: []string{}, RemovedExecutables: []string{}, RemovedPackages: []string{}, RemovedFindings: []string{}}
}

// hardeningFacts reads the harden stage's evidence. A stage that did not
// finish, or evidence that cannot be read, is no hardened image.
func hardeningFacts(status string, evidence json.RawMessage) HardeningFacts {
	switch status {
	case store.StageDone:
	case store.StageFailed:
		return emptyHardeningFacts("failed")
	default:
		return emptyHardeningFacts(StageMissing)
	}
	// The fields of harden/stage.Evidence the rules read; decoded here so
	// that the policy does not depend on the stage's registry and sandbox.
	var ev struct {
		Status             string   `json:"status"`
		Reason             string   `json:"reason"`
		Hardened           string   `json:"hardened"`
		ReplayPassed       bool     `json:"replayPassed"`
		ReplayFailures     []string `json:"replayFailures"`
		RemovedExecutables []string `json:"removedExecutables"`
		RemovedPackages    []string `json:"removedPackages"`
		RemovedFindings    []string `json:"removedFindings"`
		OriginalSize       int64    `json:"originalSize"`
		HardenedSize       int64    `json:"hardenedSize"`
	}
	if err := json.Unmarshal(evidence, &ev); err != nil || ev.Status == "" {
		f := emptyHardeningFacts("failed")
		f.Reason = "the harden stage's evidence cannot be read"
		return f
	}
	f := emptyHardeningFacts(ev.Status)
	f.Reason, f.Hardened, f.ReplayPassed = ev.Reason, ev.Hardened, ev.ReplayPassed
	f.Present = ev.Status == "hardened" && ev.Hardened != "" && ev.ReplayPassed
	f.OriginalSize, f.HardenedSize = ev.OriginalSize, ev.HardenedSize
	for _, l := range []struct {
		dst *[]string
		src []string
	}{
		{&f.ReplayFailures, ev.ReplayFailures}, {&f.RemovedExecutables, ev.RemovedExecutables},
		{&f.RemovedPackages, ev.RemovedPackages}, {&f.RemovedFindings, ev.RemovedFindings},
	} {
		if l.src != nil {
			*l.dst = l.src
		}
	}
	return f
}
