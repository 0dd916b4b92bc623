package policy

import (
	"encoding/json"
	"sort"

	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/store"
)

func emptyProfileFacts(status string) ProfileFacts {
	return ProfileFacts{Status: status, NewDestinations: []string{}, NewExecutables: []string{}, NewDNS: []string{},
		NewListening: []string{}, NewWritten: []string{}, Notes: []string{}, CriticalNotes: []string{},
		Listening: []int{}, Destinations: []string{}}
}

// profileFacts reads the profile stage's evidence (profile.StageEvidence)
// as the rules see it. A stage that did not finish, or evidence that
// cannot be read, is a profile that is not present.
func profileFacts(status string, evidence json.RawMessage) ProfileFacts {
	switch status {
	case store.StageDone:
	case store.StageFailed:
		return emptyProfileFacts("failed")
	default:
		return emptyProfileFacts(StageMissing)
	}
	var ev profile.StageEvidence
	if err := json.Unmarshal(evidence, &ev); err != nil {
		f := emptyProfileFacts("failed")
		f.Reason = "the profile stage's evidence cannot be read: " + err.Error()
		return f
	}
	if ev.Status != profile.StatusProfiled || ev.Profile == nil {
		f := emptyProfileFacts(ev.Status)
		if f.Status == "" || f.Status == profile.StatusProfiled {
			f.Status = "failed"
		}
		f.Reason = ev.Reason
		return f
	}
	p := ev.Profile
	f := emptyProfileFacts(profile.StatusProfiled)
	f.Present = true
	f.ExitCode, f.TimedOut = p.Exit.Code, p.Exit.TimedOut
	seen := map[string]bool{}
	for _, n := range p.Notes {
		if !seen[n.Code] {
			seen[n.Code] = true
			f.Notes = append(f.Notes, n.Code)
		}
	}
	sort.Strings(f.Notes)
	f.CriticalNotes = append(f.CriticalNotes, p.Critical()...)
	for _, l := range p.Network.Listening {
		f.Listening = append(f.Listening, l.Port)
	}
	sort.Ints(f.Listening)
	for _, d := range p.Network.Destinations {
		f.Destinations = append(f.Destinations, d.Key())
	}
	if b := ev.Baseline; b != nil {
		f.Baseline = b.Digest
		f.NewDestinations = append(f.NewDestinations, b.Diff.Destinations.Added...)
		f.NewExecutables = append(f.NewExecutables, b.Diff.Executables.Added...)
		f.NewDNS = append(f.NewDNS, b.Diff.DNS.Added...)
		f.NewListening = append(f.NewListening, b.Diff.Listening.Added...)
		f.NewWritten = append(f.NewWritten, b.Diff.Written.Added...)
	}
	return f
}
