package policy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// clean is evidence every rule of the strict policy accepts: all stages done,
// imported from a registry with an upstream signature, tag not moved.
func clean() Evidence {
	return Evidence{
		Digest: "sha256:" + strings.Repeat("a", 64),
		Image:  ImageFacts{MediaType: "application/vnd.oci.image.manifest.v1+json", Repositories: []string{"library/app"}, Platforms: []string{}},
		Source: SourceFacts{Imported: true, Reference: "docker.io/library/app:1", Normalized: "docker.io/library/app:1", Registry: "docker.io",
			Transport: "registry", Signatures: 1, Attachments: []Attachment{{Kind: "cosign-signature", Digest: "sha256:s"}}},
		Stages: map[string]Stage{
			"import": {Status: "done"}, "scan": {Status: "done"}, "profile": {Status: "done"}, "harden": {Status: "done"},
		},
		Findings: []map[string]any{},
		Profile:  ProfileFacts{NewDestinations: []string{}},
	}
}

func fired(v Verdict) []string {
	var out []string
	for _, f := range v.Fired {
		out = append(out, f.Rule)
	}
	return out
}

func TestDefaultPolicyRules(t *testing.T) {
	p := Default()
	for _, tc := range []struct {
		name     string
		change   func(*Evidence)
		effect   Effect
		rules    []string
		evidence string // JSON of the first fired rule's evidence, if any
	}{
		{"clean", func(*Evidence) {}, Allow, nil, ""},
		{"stage-not-run", func(e *Evidence) { e.Stages["scan"] = Stage{Status: "not-run"} }, Review, []string{"stage-not-run"}, `["scan=not-run"]`},
		{"stage-failed", func(e *Evidence) { e.Stages["harden"] = Stage{Status: "failed"} }, Review, []string{"stage-not-run"}, `["harden=failed"]`},
		{"stage-missing", func(e *Evidence) { e.Stages["profile"] = Stage{Status: StageMissing} }, Review, []string{"stage-not-run"}, `["profile=missing"]`},
		{"not-imported", func(e *Evidence) { e.Source = SourceFacts{Attachments: []Attachment{}} }, Review, []string{"not-imported"}, ""},
		{"tag-moved", func(e *Evidence) { e.Source.TagMoved, e.Source.PreviousDigest = true, "sha256:old" }, Review, []string{"tag-moved"},
			`["docker.io/library/app:1","was sha256:old"]`},
		{"no-upstream-signature", func(e *Evidence) { e.Source.Signatures, e.Source.Attachments = 0, []Attachment{{Kind: "referrer"}} },
			Review, []string{"no-upstream-signature"}, `["referrer"]`},
		{"file import needs no upstream signature", func(e *Evidence) { e.Source.Transport, e.Source.Signatures = "oci-archive", 0 }, Allow, nil, ""},
		{"malware", func(e *Evidence) {
			e.Findings = []map[string]any{{"type": "malware", "severity": "critical", "id": "miner-xmrig"}}
		}, Deny, []string{"malware"}, `["miner-xmrig"]`},
		{"low malware does not deny", func(e *Evidence) {
			e.Findings = []map[string]any{{"type": "malware", "severity": "low", "id": "odd-string"}}
		}, Allow, nil, ""},
		{"critical fixable vulnerability", func(e *Evidence) {
			e.Findings = []map[string]any{{"type": "vulnerability", "severity": "critical", "id": "CVE-1", "fixed": "1.2"}}
		}, Deny, []string{"critical-fixable-vulnerability"}, `["CVE-1"]`},
		{"critical vulnerability without a fix", func(e *Evidence) {
			e.Findings = []map[string]any{{"type": "vulnerability", "severity": "critical", "id": "CVE-2", "fixed": ""}}
		}, Allow, nil, ""},
		{"secret", func(e *Evidence) {
			e.Findings = []map[string]any{{"type": "secret", "severity": "high", "id": "aws-key"}}
		}, Review, []string{"secret"}, ""},
		{"new network destination", func(e *Evidence) {
			e.Profile = ProfileFacts{Present: true, NewDestinations: []string{"203.0.113.7:3333"}}
		}, Review, []string{"new-network-destination"}, `["203.0.113.7:3333"]`},
		{"deny beats review", func(e *Evidence) {
			e.Stages["scan"] = Stage{Status: "not-run"}
			e.Findings = []map[string]any{{"type": "malware", "severity": "high", "id": "m"}}
		}, Deny, []string{"stage-not-run", "malware"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := clean()
			tc.change(&ev)
			v, err := p.Evaluate(ev)
			if err != nil {
				t.Fatal(err)
			}
			if v.Effect != tc.effect || !slices.Equal(fired(v), tc.rules) {
				t.Fatalf("verdict %s with %v; want %s with %v", v.Effect, fired(v), tc.effect, tc.rules)
			}
			if v.PolicyDigest != p.Digest || !strings.HasPrefix(v.EvidenceDigest, "sha256:") || v.Message == "" {
				t.Errorf("verdict lacks policy digest, evidence digest or message: %+v", v)
			}
			if d := v.Decisive(); tc.effect != Allow && (d == nil || d.Message != v.Message) {
				t.Errorf("decisive rule %+v does not carry the verdict's message %q", d, v.Message)
			}
			if tc.evidence != "" {
				b, _ := json.Marshal(v.Fired[0].Evidence)
				if string(b) != tc.evidence {
					t.Errorf("evidence %s; want %s", b, tc.evidence)
				}
			}
		})
	}
}

// The strict default never allows a digest a stage skipped, whatever else it says.
func TestDefaultNeverAllowsMissingStages(t *testing.T) {
	for _, status := range []string{"not-run", "failed", "pending", StageMissing} {
		for _, stage := range []string{"import", "scan", "profile", "harden"} {
			ev := clean()
			ev.Stages[stage] = Stage{Status: status}
			v, err := Default().Evaluate(ev)
			if err != nil || v.Effect == Allow {
				t.Errorf("%s=%s: verdict %s, %v; never allow", stage, status, v.Effect, err)
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	head := "apiVersion: airlock.dev/policy/v1\nname: t\n"
	for _, tc := range []struct{ name, src, want string }{
		{"api version", "apiVersion: v0\nname: t\n", "apiVersion"},
		{"no name", "apiVersion: airlock.dev/policy/v1\n", "name"},
		{"unknown key", head + "rulez: []\n", "rulez"},
		{"bad default", head + "default: maybe\n", "default"},
		{"bad effect", head + "rules: [{name: a, effect: block, when: 'true', message: m}]\n", "effect"},
		{"no message", head + "rules: [{name: a, effect: deny, when: 'true'}]\n", "message"},
		{"no when", head + "rules: [{name: a, effect: deny, message: m}]\n", "expression is required"},
		{"syntax", head + "rules: [{name: a, effect: deny, when: 'source.(', message: m}]\n", "Syntax error"},
		{"not bool", head + "rules: [{name: a, effect: deny, when: '\"yes\"', message: m}]\n", "want bool"},
		{"unknown variable", head + "rules: [{name: a, effect: deny, when: 'sauce.imported', message: m}]\n", "undeclared reference"},
		{"duplicate", head + "rules: [{name: a, effect: deny, when: 'true', message: m}, {name: a, effect: deny, when: 'true', message: m}]\n", "twice"},
		{"bad evidence", head + "rules: [{name: a, effect: deny, when: 'true', message: m, evidence: 'x.('}]\n", "evidence"},
		{"too big", head + strings.Repeat("#", maxPolicy), "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse: %v; want an error about %q", err, tc.want)
			}
		})
	}
}

func TestDefaultsAndDigest(t *testing.T) {
	a, err := Parse([]byte("apiVersion: airlock.dev/policy/v1\nname: t\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Default != Review {
		t.Errorf("default %s; a policy that says nothing must not allow", a.Default)
	}
	b, _ := Parse([]byte("apiVersion: airlock.dev/policy/v1\nname: t\n# edited\n"))
	if a.Digest == b.Digest || !strings.HasPrefix(a.Digest, "sha256:") {
		t.Errorf("digests %s and %s: every edit is a new policy version", a.Digest, b.Digest)
	}
	v, _ := a.Evaluate(clean())
	if v.Effect != Review || len(v.Fired) != 0 || !strings.Contains(v.Message, "default") {
		t.Errorf("empty policy verdict %+v", v)
	}
}

// A rule that cannot be evaluated (here: a field the evidence lacks) counts
// as review, never as not firing.
func TestEvaluationErrorReviews(t *testing.T) {
	p, err := Parse([]byte("apiVersion: airlock.dev/policy/v1\nname: t\ndefault: allow\nrules:\n- {name: odd, effect: allow, when: 'source.nosuchfield == 1', message: m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Evaluate(clean())
	if err != nil {
		t.Fatal(err)
	}
	if v.Effect != Review || len(v.Fired) != 1 || !strings.Contains(v.Fired[0].Message, "could not be evaluated") {
		t.Errorf("verdict %+v; want review for a broken rule", v)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultSource())
	f.Add([]byte("apiVersion: airlock.dev/policy/v1\nname: t\nrules: [{name: a, effect: deny, when: 'findings.size() > 0', message: m}]\n"))
	f.Add([]byte("{{{{"))
	f.Add([]byte("apiVersion: airlock.dev/policy/v1\nname: t\nreevaluation: {revoke: review, grace: 7d}\nrules: [{name: a, effect: review, includeWaived: true, when: 'findings.exists(f, f.waived)', message: m}]\n"))
	f.Add([]byte("apiVersion: airlock.dev/policy/v1\nname: t\nreevaluation: {revoke: deny, grace: 99999999999999999999h}\nrules: []\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if _, err := p.Evaluate(clean()); err != nil {
			t.Fatalf("a policy that parses must evaluate: %v", err)
		}
		if r := p.Reevaluation; r.Grace < 0 || r.Grace > maxGrace || (r.Revoke != "" && r.Revoke != Deny && r.Revoke != Review) {
			t.Fatalf("a policy that parses has reevaluation %+v", r)
		}
	})
}
