package policy

import (
	"strings"
	"testing"
	"time"
)

func TestReevaluationSection(t *testing.T) {
	p := Default()
	if p.Reevaluation.Revoke != Deny || p.Reevaluation.Grace != 72*time.Hour {
		t.Fatalf("default reevaluation %+v; want revoke on deny after 72h", p.Reevaluation)
	}
	for _, tc := range []struct {
		yaml   string
		revoke Effect
		grace  time.Duration
		err    string
	}{
		{yaml: "revoke: review\n  grace: 7d", revoke: Review, grace: 7 * 24 * time.Hour},
		{yaml: "revoke: never", grace: DefaultGrace},
		{yaml: "grace: 0s", grace: 0},
		{yaml: "revoke: allow", err: "want deny, review or never"},
		{yaml: "grace: -1h", err: "from 0 to 366d"},
		{yaml: "grace: 400d", err: "from 0 to 366d"},
		{yaml: "grace: 1.5d", err: "from 0 to 366d"},
		{yaml: "grace: soon", err: "from 0 to 366d"},
		{yaml: "revokeOn: deny", err: "not a policy file"},
	} {
		src := "apiVersion: airlock.dev/policy/v1\nname: t\nreevaluation:\n  " + tc.yaml + "\nrules: []\n"
		p, err := Parse([]byte(src))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v; want an error with %q", tc.yaml, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
			continue
		}
		if p.Reevaluation.Revoke != tc.revoke || p.Reevaluation.Grace != tc.grace {
			t.Errorf("%q: %+v", tc.yaml, p.Reevaluation)
		}
	}
	if (Reevaluation{}).Calls(Verdict{Effect: Deny}) {
		t.Error("no revoke setting must never call for a revocation")
	}
	if !(Reevaluation{Revoke: Review}).Calls(Verdict{Effect: Deny}) || (Reevaluation{Revoke: Deny}).Calls(Verdict{Effect: Review}) {
		t.Error("Calls must compare effects by severity")
	}
}

// TestWaivedFindings: rules skip waived findings unless they include them.
func TestWaivedFindings(t *testing.T) {
	p, err := Parse([]byte(`apiVersion: airlock.dev/policy/v1
name: t
default: allow
rules:
  - name: vuln
    effect: deny
    when: findings.exists(f, f.type == "vulnerability")
    message: a vulnerability
  - name: any-waived
    effect: review
    includeWaived: true
    when: findings.exists(f, f.waived)
    message: a waived finding
`))
	if err != nil {
		t.Fatal(err)
	}
	ev := Evidence{Digest: "sha256:x", Stages: map[string]Stage{}, Findings: []map[string]any{
		{"type": "vulnerability", "id": "CVE-1", "waived": true},
	}}
	v, err := p.Evaluate(ev)
	if err != nil {
		t.Fatal(err)
	}
	if v.Effect != Review || len(v.Fired) != 1 || v.Fired[0].Rule != "any-waived" {
		t.Fatalf("waived only: %+v; want review by any-waived", v)
	}
	ev.Findings = append(ev.Findings, map[string]any{"type": "vulnerability", "id": "CVE-2", "waived": false})
	if v, _ := p.Evaluate(ev); v.Effect != Deny {
		t.Fatalf("one not waived: %+v; want deny", v)
	}
}
