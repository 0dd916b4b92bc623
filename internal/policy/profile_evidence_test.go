package policy

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/airlock-dev/airlock/internal/profile"
	"github.com/airlock-dev/airlock/internal/sandbox"
	"github.com/airlock-dev/airlock/internal/store"
)

// The profile stage's evidence, as the stage records it, drives the strict
// policy's profile rules.
func TestProfileEvidenceRules(t *testing.T) {
	server := profile.Build(&sandbox.Result{Events: []sandbox.Event{
		{Kind: sandbox.EventExec, PID: 2, Path: "/app"},
		{Kind: sandbox.EventBind, PID: 2, Proto: "tcp", Addr: "0.0.0.0", Port: 8080},
		{Kind: sandbox.EventListen, PID: 2, Proto: "tcp"},
	}, Exit: sandbox.ExitStatus{TimedOut: true}}, profile.Image{}, profile.Run{})
	trojan := profile.Build(&sandbox.Result{Events: []sandbox.Event{
		{Kind: sandbox.EventExec, PID: 2, Path: "/app"},
		{Kind: sandbox.EventExec, PID: 3, PPID: 2, Path: "/tmp/kworker"},
		{Kind: sandbox.EventDNS, PID: 3, Name: "pool.example.invalid", Addr: "198.18.0.3"},
		{Kind: sandbox.EventSinkhole, Proto: "tcp", Addr: "198.18.0.3", Port: 3333, Data: []byte(`{"method":"login","params":{"login":"w"}}`)},
	}}, profile.Image{}, profile.Run{})
	calm := profile.Build(&sandbox.Result{Events: []sandbox.Event{
		{Kind: sandbox.EventExec, PID: 2, Path: "/app"},
		{Kind: sandbox.EventExec, PID: 3, PPID: 2, Path: "/bin/date"},
	}}, profile.Image{}, profile.Run{})
	evidence := func(ev profile.StageEvidence) json.RawMessage {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	profiled := func(p profile.Profile, base *profile.Profile) json.RawMessage {
		ev := profile.StageEvidence{Status: profile.StatusProfiled, Profile: &p, Critical: p.Critical()}
		if base != nil {
			ev.Baseline = &profile.Baseline{Digest: "sha256:base", Diff: profile.Compare(*base, p)}
		}
		return evidence(ev)
	}
	for _, tc := range []struct {
		name     string
		status   string
		evidence json.RawMessage
		effect   Effect
		rules    []string
	}{
		{"profiled server, no baseline", store.StageDone, profiled(server, nil), Allow, nil},
		{"same as the baseline", store.StageDone, profiled(server, &server), Allow, nil},
		{"stratum login", store.StageDone, profiled(trojan, &server), Deny,
			[]string{"new-network-destination", "profile-critical-behaviour", "profile-suspicious-behaviour", "new-executable"}},
		{"a new helper", store.StageDone, profiled(calm, &server), Review, []string{"new-executable"}},
		{"sandbox unavailable", store.StageDone, evidence(profile.StageEvidence{Status: profile.StatusUnavailable, Reason: "not root"}), Review, []string{"profile-missing"}},
		{"nothing to run", store.StageDone, evidence(profile.StageEvidence{Status: profile.StatusNotRunnable}), Review, []string{"profile-missing"}},
		{"unreadable evidence", store.StageDone, json.RawMessage(`{"status":`), Review, []string{"profile-missing"}},
		{"stage failed", store.StageFailed, nil, Review, []string{"stage-not-run", "profile-missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := clean()
			ev.Profile = profileFacts(tc.status, tc.evidence)
			if tc.status != store.StageDone {
				ev.Stages["profile"] = Stage{Status: tc.status}
			}
			v, err := Default().Evaluate(ev)
			if err != nil {
				t.Fatal(err)
			}
			if v.Effect != tc.effect || !slices.Equal(fired(v), tc.rules) {
				b, _ := json.Marshal(ev.Profile)
				t.Fatalf("verdict %s with %v; want %s with %v\nfacts %s", v.Effect, fired(v), tc.effect, tc.rules, b)
			}
		})
	}
	f := profileFacts(store.StageDone, profiled(trojan, &server))
	if !f.Present || f.Baseline != "sha256:base" || !slices.Equal(f.NewExecutables, []string{"/tmp/kworker"}) ||
		!slices.Equal(f.NewDestinations, []string{"tcp pool.example.invalid:3333 stratum"}) || !slices.Equal(f.NewDNS, []string{"pool.example.invalid A"}) ||
		!slices.Equal(f.CriticalNotes, []string{"stratum-login"}) {
		t.Fatalf("facts %+v", f)
	}
	if s := profileFacts(store.StageDone, profiled(server, nil)); !slices.Equal(s.Listening, []int{8080}) || !s.TimedOut {
		t.Fatalf("server facts %+v", s)
	}
}
