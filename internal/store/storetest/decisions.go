package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

func approve(t *testing.T, s store.Store, digest, who string, required int, expires *time.Time) store.ApprovalResult {
	t.Helper()
	res, err := s.RecordApproval(context.Background(), store.ApprovalRequest{
		Digest: digest, Actor: who, Reason: who + " looked", Required: required, Expires: expires,
		Policy: json.RawMessage(`{"digest":"sha256:policy","verdict":"review"}`),
	})
	if err != nil {
		t.Fatalf("RecordApproval(%s by %s): %v", digest, who, err)
	}
	return res
}

func countActions(t *testing.T, s store.Store, digest, action string) int {
	t.Helper()
	return len(auditOf(t, s, store.AuditFilter{Subject: digest, Action: action}))
}

func testApprovalQuorum(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := image(repoA, "app")
	record(t, s, m)
	later := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	sooner := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)

	res := approve(t, s, m.Digest, "alice", 2, &later)
	if res.Approved || res.Required != 2 || len(res.Approvals) != 1 || res.Image.State != store.Quarantined {
		t.Fatalf("first of two approvals: approved=%v required=%d approvals=%d state=%s; want still quarantined with 1 of 2",
			res.Approved, res.Required, len(res.Approvals), res.Image.State)
	}
	if _, err := s.RecordApproval(ctx, store.ApprovalRequest{Digest: m.Digest, Actor: "alice", Reason: "again", Required: 2}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("same approver twice: %v; want ErrExists", err)
	}
	res = approve(t, s, m.Digest, "bob", 2, &sooner)
	if !res.Approved || res.Image.State != store.Approved {
		t.Fatalf("second distinct approval: approved=%v state=%s; want approved", res.Approved, res.Image.State)
	}
	if res.Image.Expires == nil || !res.Image.Expires.Equal(sooner) {
		t.Errorf("expiry = %v; want the earliest an approver gave, %v", res.Image.Expires, sooner)
	}
	last := res.Image.History[len(res.Image.History)-1]
	if last.To != store.Approved || last.Actor != "bob" {
		t.Errorf("last transition %+v; want → approved by bob", last)
	}
	as, err := s.Approvals(ctx, m.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 2 || as[0].Actor != "alice" || as[1].Actor != "bob" || as[0].Outcome != store.ApprovalApproved || as[1].Outcome != store.ApprovalApproved {
		t.Fatalf("approvals %+v; want alice and bob, both approved", as)
	}
	if string(as[0].Policy) == "" {
		t.Error("the policy verdict an approver saw is not kept")
	}
	if n := countActions(t, s, m.Digest, "approval.recorded"); n != 2 {
		t.Errorf("%d approval.recorded entries; want 2", n)
	}
	if n := countActions(t, s, m.Digest, "state.approved"); n != 1 {
		t.Errorf("%d state.approved entries; want 1", n)
	}
	// One approver is enough by default.
	one := image(repoA, "one")
	record(t, s, one)
	if res := approve(t, s, one.Digest, "carol", 0, nil); !res.Approved {
		t.Error("a single approval with required 0 (default 1) did not approve")
	}
	if _, err := s.RecordApproval(ctx, store.ApprovalRequest{Digest: dg("nothing"), Actor: "a", Reason: "r", Required: 1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("approval of an unknown digest: %v; want ErrNotFound", err)
	}
	verify(t, s, int64(len(auditOf(t, s, store.AuditFilter{Limit: 1000}))))
}

func testApprovalRefusedAndVoid(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := image(repoA, "app")
	record(t, s, m)
	approve(t, s, m.Digest, "alice", 2, nil)
	move(t, s, m.Digest, store.Rejected, nil)
	as, _ := s.Approvals(ctx, m.Digest)
	if len(as) != 1 || as[0].Outcome != store.ApprovalVoid {
		t.Fatalf("after rejection approvals are %+v; want alice's void", as)
	}
	if _, err := s.RecordApproval(ctx, store.ApprovalRequest{Digest: m.Digest, Actor: "bob", Reason: "late", Required: 2}); !errors.Is(err, store.ErrInvalidTransition) {
		t.Fatalf("approval of a rejected digest: %v; want ErrInvalidTransition", err)
	}
	if n := countActions(t, s, m.Digest, "approval.refused"); n != 1 {
		t.Errorf("%d approval.refused entries; want the refused approval audited once", n)
	}
	// Back in quarantine, the void approval does not count and alice may approve again.
	move(t, s, m.Digest, store.Quarantined, nil)
	if res := approve(t, s, m.Digest, "alice", 2, nil); res.Approved || len(res.Approvals) != 1 {
		t.Errorf("re-vetting: approved=%v with %d pending; want 1 of 2 again", res.Approved, len(res.Approvals))
	}
}

// testApprovalConcurrent: many approvers at once, two needed: exactly one
// request makes the transition; every request is audited.
func testApprovalConcurrent(t *testing.T, s store.Store) {
	m := image(repoA, "app")
	record(t, s, m)
	const n = 8
	type out struct {
		res store.ApprovalResult
		err error
	}
	outs := make(chan out, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.RecordApproval(context.Background(), store.ApprovalRequest{Digest: m.Digest, Actor: fmt.Sprintf("approver-%d", i), Reason: "race", Required: 2})
			outs <- out{r, err}
		}()
	}
	wg.Wait()
	close(outs)
	transitions, recorded, refused := 0, 0, 0
	for o := range outs {
		switch {
		case o.err == nil && o.res.Approved:
			transitions++
			recorded++
		case o.err == nil:
			recorded++
		case errors.Is(o.err, store.ErrInvalidTransition):
			refused++
		default:
			t.Errorf("concurrent approval: %v", o.err)
		}
	}
	if transitions != 1 || recorded != 2 || refused != n-2 {
		t.Errorf("transitions=%d recorded=%d refused=%d; want 1, 2, %d", transitions, recorded, refused, n-2)
	}
	img, err := s.Image(context.Background(), m.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if img.State != store.Approved || countTo(img.History, store.Approved) != 1 {
		t.Errorf("state %s with %d approvals in history; want approved once", img.State, countTo(img.History, store.Approved))
	}
	if got := countActions(t, s, m.Digest, "approval.recorded") + countActions(t, s, m.Digest, "approval.refused"); got != n {
		t.Errorf("%d approvals audited; want all %d", got, n)
	}
}

func testAttestations(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := image(repoA, "app")
	record(t, s, m)
	move(t, s, m.Digest, store.Approved, nil)
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	a := store.Attestation{Digest: m.Digest, Repository: repoA, Manifest: dg("att"), Tag: "sha256-x.att",
		PredicateType: "https://airlock.dev/attestations/approval/v1", Envelope: dg("env"), KeyID: "sha256:key", Expires: &exp}
	for range 2 { // idempotent
		if err := s.RecordAttestation(ctx, a); err != nil {
			t.Fatalf("RecordAttestation: %v", err)
		}
	}
	as, err := s.Attestations(ctx, m.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].Manifest != a.Manifest || as[0].RevokedAt != nil || as[0].Expires == nil || !as[0].Expires.Equal(exp) {
		t.Fatalf("attestations %+v; want the one recorded, not revoked", as)
	}
	if n := countActions(t, s, m.Digest, "attestation.created"); n != 1 {
		t.Errorf("%d attestation.created entries; want 1", n)
	}
	move(t, s, m.Digest, store.Revoked, nil)
	as, _ = s.Attestations(ctx, m.Digest)
	if len(as) != 1 || as[0].RevokedAt == nil || as[0].RevokedBy != actor || as[0].RevokeReason == "" {
		t.Fatalf("after revocation attestations %+v; want the revocation recorded, the attestation kept", as)
	}
	if err := s.RecordAttestation(ctx, store.Attestation{Digest: dg("nothing"), Repository: repoA, Manifest: dg("m")}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("attestation of an unknown digest: %v; want ErrNotFound", err)
	}
}
