package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/airlock-dev/airlock/internal/pipeline"
	"github.com/airlock-dev/airlock/internal/store"
)

// Actor is who the decide stage acts as in the record.
const Actor = "airlock"

// Step is the pipeline's decide stage: it evaluates the policy over the
// digest's evidence and records the verdict as the stage's evidence. deny
// rejects the digest; review leaves it in quarantine for a human; allow
// approves it only if every earlier stage is done (Approve is called) —
// otherwise a human decides as for review.
type Step struct {
	Store  store.Store
	Policy *Policy
	// Approve approves digest automatically (signing its attestation).
	Approve func(ctx context.Context, digest string, v Verdict) error
}

// Outcome is the evidence the decide stage records.
type Outcome struct {
	Verdict Verdict `json:"verdict"`
	// Action is what the stage did: rejected, approved, review (left for a
	// human), or none (the digest was no longer in quarantine).
	Action string `json:"action"`
	Note   string `json:"note,omitempty"`
}

// Stage implements pipeline.Step.
func (s *Step) Stage() string { return "decide" }

// Run implements pipeline.Step. It is idempotent: a digest already decided
// is left as it is.
func (s *Step) Run(ctx context.Context, job store.Job) (pipeline.Outcome, error) {
	if job.Digest == "" {
		return pipeline.Outcome{}, &pipeline.Permanent{Err: errors.New("the job has no digest to decide on")}
	}
	ev, err := Gather(ctx, s.Store, job.Digest, &job)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	v, err := s.Policy.Evaluate(ev)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	out := Outcome{Verdict: v, Action: "review"}
	img, err := s.Store.Image(ctx, job.Digest)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	switch {
	case img.State == store.Rejected && v.Effect == Deny && rejectedBy(img, RejectReason(v)):
		// This stage rejected it before a crash kept the result from being recorded.
		out.Action = "rejected"
	case img.State != store.Quarantined:
		out.Action, out.Note = "none", fmt.Sprintf("the digest is %s already", img.State)
	case v.Effect == Deny:
		if _, err := s.Store.Transition(ctx, job.Digest, store.Rejected, Actor, RejectReason(v), nil); err != nil {
			if !errors.Is(err, store.ErrInvalidTransition) {
				return pipeline.Outcome{}, err
			}
			out.Action, out.Note = "none", err.Error()
		} else {
			out.Action = "rejected"
		}
	case v.Effect == Allow && stagesDone(job):
		if s.Approve == nil {
			out.Note = "automatic approval is not configured"
			break
		}
		if err := s.Approve(ctx, job.Digest, v); err != nil {
			return pipeline.Outcome{}, err
		}
		out.Action = "approved"
	case v.Effect == Allow:
		out.Note = "the policy allows it, but not every vetting stage ran, so a human decides"
	}
	detail, _ := json.Marshal(map[string]any{
		"policy": v.Policy, "policyDigest": v.PolicyDigest, "effect": v.Effect, "action": out.Action,
		"fired": firedNames(v), "job": job.ID, "evidenceDigest": v.EvidenceDigest,
	})
	audited, err := s.evaluatedBefore(ctx, job)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	if !audited {
		if _, err := s.Store.Audit(ctx, store.AuditEntry{Actor: Actor, Action: "policy.evaluated", Subject: job.Digest, Detail: detail}); err != nil {
			return pipeline.Outcome{}, err
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	return pipeline.Outcome{Evidence: b}, nil
}

// rejectedBy reports whether the last transition of img is this policy's rejection.
func rejectedBy(img store.Image, reason string) bool {
	if len(img.History) == 0 {
		return false
	}
	last := img.History[len(img.History)-1]
	return last.To == store.Rejected && last.Actor == Actor && last.Reason == reason
}

// evaluatedBefore reports whether this job's evaluation was audited already
// (the stage ran, then a crash kept its result from being recorded): the
// audit log keeps one policy.evaluated entry per job.
func (s *Step) evaluatedBefore(ctx context.Context, job store.Job) (bool, error) {
	es, err := s.Store.AuditEntries(ctx, store.AuditFilter{Subject: job.Digest, Action: "policy.evaluated"})
	if err != nil {
		return false, err
	}
	for _, e := range es {
		var d struct {
			Job int64 `json:"job"`
		}
		if json.Unmarshal(e.Detail, &d) == nil && d.Job == job.ID {
			return true, nil
		}
	}
	return false, nil
}

// RejectReason is the reason recorded when the policy denies a digest.
func RejectReason(v Verdict) string {
	rule := "default"
	if f := v.Decisive(); f != nil {
		rule = f.Rule
	}
	return fmt.Sprintf("%s (policy %s %s, rule %s)", v.Message, v.Policy, short(v.PolicyDigest), rule)
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func firedNames(v Verdict) []string {
	out := []string{}
	for _, f := range v.Fired {
		out = append(out, f.Rule)
	}
	return out
}

// stagesDone reports whether every stage before decide is done — with
// decide itself finishing now, that is pipeline.Complete.
func stagesDone(job store.Job) bool {
	j := job
	j.State = store.JobDone
	j.Stages = append([]store.StageRun(nil), job.Stages...)
	for i := range j.Stages {
		if j.Stages[i].Name == "decide" {
			j.Stages[i].Status = store.StageDone
		}
	}
	return pipeline.Complete(j)
}

// Summary is the policy part of an approval record and attestation.
type Summary struct {
	Name           string   `json:"name"`
	Digest         string   `json:"digest"`
	Verdict        Effect   `json:"verdict"`
	Fired          []string `json:"fired"`
	EvidenceDigest string   `json:"evidenceDigest"`
}

// Summarize shortens a verdict for records.
func (v Verdict) Summarize() Summary {
	return Summary{Name: v.Policy, Digest: v.PolicyDigest, Verdict: v.Effect, Fired: firedNames(v), EvidenceDigest: v.EvidenceDigest}
}
