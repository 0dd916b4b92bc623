package harden

import (
	"context"
	"fmt"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/airlock-dev/airlock/internal/profile"
)

// Profiler runs img in the sandbox with the run parameters and probes of a
// previous profile (entrypoint, cmd, duration, probes) and returns the new
// profile. The CLI and the pipeline wire it to sandbox.Run + profile.Build.
type Profiler func(ctx context.Context, img v1.Image, like *profile.Profile) (*profile.Profile, error)

// ReplayResult says whether the hardened image behaved like the original.
type ReplayResult struct {
	Passed bool `json:"passed"`
	// Failures say what differed; empty when Passed.
	Failures []string `json:"failures"`
	// Notes are differences that do not fail the replay.
	Notes    []string     `json:"notes"`
	Original profile.Exit `json:"originalExit"`
	Hardened profile.Exit `json:"hardenedExit"`
	// NewMissing are paths the hardened run looked for and did not find
	// that the original run did find.
	NewMissing []string `json:"newMissing"`
	// Profile is the hardened run's profile document.
	Profile *profile.Profile `json:"profile,omitempty"`
}

// Replay profiles the hardened image like the original and compares.
func Replay(ctx context.Context, hardened v1.Image, original *profile.Profile, run Profiler) (*ReplayResult, error) {
	pr, err := run(ctx, hardened, original)
	if err != nil {
		return nil, fmt.Errorf("replay the profile on the hardened image: %w", err)
	}
	r := CompareReplay(original, pr)
	r.Profile = pr
	return r, nil
}

// CompareReplay compares the original profile with the hardened image's:
// the same exit behaviour (the same code and signal, or both still running
// at the time limit), the same listening ports, every probe answering the
// same, and no path missing that the original found.
func CompareReplay(original, hardened *profile.Profile) *ReplayResult {
	r := &ReplayResult{Original: original.Exit, Hardened: hardened.Exit, Failures: []string{}, Notes: []string{}, NewMissing: []string{}}
	o, h := original.Exit, hardened.Exit
	switch {
	case o.TimedOut && h.TimedOut:
	case o.TimedOut != h.TimedOut:
		if o.TimedOut {
			r.Failures = append(r.Failures, fmt.Sprintf("the original was still running at the time limit; the hardened image exited with code %d signal %d", h.Code, h.Signal))
		} else {
			r.Failures = append(r.Failures, fmt.Sprintf("the original exited with code %d; the hardened image was still running at the time limit", o.Code))
		}
	case o.Code != h.Code || o.Signal != h.Signal:
		r.Failures = append(r.Failures, fmt.Sprintf("the original exited with code %d signal %d; the hardened image with code %d signal %d", o.Code, o.Signal, h.Code, h.Signal))
	}
	if h.OOM && !o.OOM {
		r.Failures = append(r.Failures, "the hardened image ran out of memory; the original did not")
	}

	ports := func(p *profile.Profile) map[string]bool {
		m := map[string]bool{}
		for _, l := range p.Network.Listening {
			m[fmt.Sprintf("%s/%d", l.Proto, l.Port)] = true
		}
		return m
	}
	op, hp := ports(original), ports(hardened)
	for _, k := range sortedKeys(op) {
		if !hp[k] {
			r.Failures = append(r.Failures, "the hardened image did not listen on "+k)
		}
	}
	for _, k := range sortedKeys(hp) {
		if !op[k] {
			r.Failures = append(r.Failures, "the hardened image listened on "+k+", the original did not")
		}
	}

	hprobes := map[string]profile.Probe{}
	for _, p := range hardened.Probes {
		hprobes[p.Kind+" "+p.Target] = p
	}
	for _, p := range original.Probes {
		key := p.Kind + " " + p.Target
		q, ok := hprobes[key]
		switch {
		case !ok:
			r.Failures = append(r.Failures, "probe "+key+" was not run on the hardened image")
		case p.OK != q.OK || p.Status != q.Status:
			r.Failures = append(r.Failures, fmt.Sprintf("probe %s answered ok=%t status %d on the original and ok=%t status %d on the hardened image (%s)",
				key, p.OK, p.Status, q.OK, q.Status, q.Error))
		case p.Output != q.Output:
			r.Notes = append(r.Notes, "probe "+key+" answered with different output")
		}
	}

	was := map[string]bool{}
	for _, m := range original.Files.Missing {
		was[m.Path] = true
	}
	for _, m := range hardened.Files.Missing {
		if !was[m.Path] {
			r.NewMissing = append(r.NewMissing, m.Path)
		}
	}
	sort.Strings(r.NewMissing)
	for _, m := range r.NewMissing {
		r.Failures = append(r.Failures, "the hardened image looked for "+m+", which the original run did not miss")
	}
	r.Passed = len(r.Failures) == 0
	return r
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
