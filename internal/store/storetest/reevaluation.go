package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

func testReevaluations(t *testing.T, s store.Store) {
	ctx := context.Background()
	m := image(repoA, "reeval")
	record(t, s, m)
	if _, err := s.LatestReevaluation(ctx, m.Digest); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no re-evaluation yet: %v; want ErrNotFound", err)
	}
	move(t, s, m.Digest, store.Approved, nil)
	findings := json.RawMessage(`[ {"id": "CVE-1", "type": "vulnerability"} ]`)
	r1, err := s.RecordReevaluation(ctx, store.Reevaluation{Digest: m.Digest, Snapshot: "sha256:one", Findings: findings, New: []string{"CVE-1|p|i"}, Actor: actor})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.RecordReevaluation(ctx, store.Reevaluation{Digest: m.Digest, Snapshot: "sha256:two", Actor: actor})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.LatestReevaluation(ctx, m.Digest)
	if err != nil || got.ID != r2.ID || got.ID <= r1.ID || got.Snapshot != "sha256:two" || string(got.Findings) != "[]" || len(got.New) != 0 ||
		got.State != store.Approved || got.Actor != actor {
		t.Fatalf("latest re-evaluation %+v, %v", got, err)
	}
	if n := countActions(t, s, m.Digest, "reevaluation.recorded"); n != 2 {
		t.Errorf("%d reevaluation.recorded entries; want 2", n)
	}
	for _, bad := range []store.Reevaluation{
		{Digest: m.Digest, Actor: actor},
		{Digest: m.Digest, Snapshot: "s", Actor: actor, Findings: json.RawMessage(`{`)},
		{Digest: dg("unknown"), Snapshot: "s", Actor: actor},
	} {
		if _, err := s.RecordReevaluation(ctx, bad); err == nil {
			t.Errorf("RecordReevaluation(%+v) succeeded", bad)
		}
	}
	if n := countActions(t, s, m.Digest, "reevaluation.recorded"); n != 2 {
		t.Errorf("refused re-evaluations were audited: %d entries", n)
	}
}

func testScheduledRevocations(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := setClock(t, s)
	m := image(repoA, "sched")
	record(t, s, m)
	due := c.Now().Add(time.Hour)
	if _, err := s.ScheduleRevocation(ctx, store.ScheduledRevocation{Digest: m.Digest, Due: due, Actor: actor, Reason: "r"}); !errors.Is(err, store.ErrInvalidTransition) {
		t.Fatalf("schedule the revocation of a quarantined digest: %v; want ErrInvalidTransition", err)
	}
	move(t, s, m.Digest, store.Approved, nil)
	sr, err := s.ScheduleRevocation(ctx, store.ScheduledRevocation{Digest: m.Digest, Due: due, Actor: actor, Reason: "new CVE"})
	if err != nil || sr.ID == 0 || sr.Status != store.RevocationScheduled || !sr.Due.Equal(due) {
		t.Fatalf("schedule: %+v, %v", sr, err)
	}
	again, err := s.ScheduleRevocation(ctx, store.ScheduledRevocation{Digest: m.Digest, Due: due.Add(time.Hour), Actor: actor, Reason: "again"})
	if !errors.Is(err, store.ErrExists) || again.ID != sr.ID {
		t.Fatalf("a second schedule: %+v, %v; want the open one and ErrExists", again, err)
	}
	early := c.Now()
	if rs, _ := s.Revocations(ctx, store.RevocationFilter{Status: store.RevocationScheduled, DueBefore: &early}); len(rs) != 0 {
		t.Fatalf("due before the grace ends: %+v", rs)
	}
	c.advance(2 * time.Hour)
	late := c.Now()
	rs, err := s.Revocations(ctx, store.RevocationFilter{Status: store.RevocationScheduled, DueBefore: &late})
	if err != nil || len(rs) != 1 || rs[0].ID != sr.ID {
		t.Fatalf("due after the grace: %+v, %v", rs, err)
	}
	// Racing executors: one revokes, the others are refused.
	ok := race(t, 4, "racing execution", func(int) error {
		_, err := s.ExecuteRevocation(ctx, sr.ID, actor)
		return err
	})
	img, _ := s.Image(ctx, m.Digest)
	if ok != 1 || img.State != store.Revoked || countActions(t, s, m.Digest, "state.revoked") != 1 || countActions(t, s, m.Digest, "revocation.executed") != 1 {
		t.Fatalf("%d executions succeeded, state %s; want exactly one revocation", ok, img.State)
	}
	if _, err := s.CancelRevocation(ctx, sr.ID, actor, "too late"); !errors.Is(err, store.ErrInvalidTransition) {
		t.Errorf("cancel an executed revocation: %v", err)
	}
	// Cancelled: closed without touching the state.
	m2 := image(repoA, "sched2")
	record(t, s, m2)
	move(t, s, m2.Digest, store.Approved, nil)
	sr2, err := s.ScheduleRevocation(ctx, store.ScheduledRevocation{Digest: m2.Digest, Due: c.Now(), Actor: actor, Reason: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelRevocation(ctx, sr2.ID, "ann", ""); err == nil {
		t.Error("cancel without a reason succeeded")
	}
	cr, err := s.CancelRevocation(ctx, sr2.ID, "ann", "waived")
	if err != nil || cr.Status != store.RevocationCancelled || cr.ClosedBy != "ann" || cr.CloseReason != "waived" || cr.ClosedAt == nil {
		t.Fatalf("cancel: %+v, %v", cr, err)
	}
	img2, _ := s.Image(ctx, m2.Digest)
	if img2.State != store.Approved || countActions(t, s, m2.Digest, "revocation.cancelled") != 1 {
		t.Fatalf("after cancel: %s", img2.State)
	}
	// A new schedule is possible once the old one is closed.
	if _, err := s.ScheduleRevocation(ctx, store.ScheduledRevocation{Digest: m2.Digest, Due: c.Now(), Actor: actor, Reason: "again"}); err != nil {
		t.Errorf("schedule after a cancel: %v", err)
	}
	if _, err := s.ExecuteRevocation(ctx, 1<<40, actor); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("execute an unknown revocation: %v", err)
	}
}

func testWaivers(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := setClock(t, s)
	m := image(repoA, "waived")
	record(t, s, m)
	exp := c.Now().Add(time.Hour)
	for _, bad := range []store.Waiver{
		{Finding: "CVE-1", Owner: "o", Reason: "r", CreatedBy: actor, Expires: exp},
		{Digest: m.Digest, Owner: "o", Reason: "r", CreatedBy: actor, Expires: exp},
		{Digest: m.Digest, Finding: "CVE-1", Reason: "r", CreatedBy: actor, Expires: exp},
		{Digest: m.Digest, Finding: "CVE-1", Owner: "o", CreatedBy: actor, Expires: exp},
		{Digest: m.Digest, Finding: "CVE-1", Owner: "o", Reason: "r", CreatedBy: actor},
		{Digest: m.Digest, Finding: "CVE-1", Owner: "o", Reason: "r", CreatedBy: actor, Expires: c.Now().Add(-time.Second)},
		{Digest: dg("unknown"), Finding: "CVE-1", Owner: "o", Reason: "r", CreatedBy: actor, Expires: exp},
	} {
		if _, err := s.CreateWaiver(ctx, bad); err == nil {
			t.Errorf("CreateWaiver(%+v) succeeded", bad)
		}
	}
	if ws, _ := s.Waivers(ctx, store.WaiverFilter{}); len(ws) != 0 {
		t.Fatalf("refused waivers were stored: %+v", ws)
	}
	w1, err := s.CreateWaiver(ctx, store.Waiver{Digest: m.Digest, Finding: "CVE-1", Package: "openssl", Owner: "team", Reason: "r", CreatedBy: actor, Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	w2, err := s.CreateWaiver(ctx, store.Waiver{Repository: repoA, Finding: "GHSA-x", Owner: "team", Reason: "r", CreatedBy: actor, Expires: exp.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateWaiver(ctx, store.Waiver{Repository: "other/repo", Finding: "GHSA-x", Owner: "team", Reason: "r", CreatedBy: actor, Expires: exp.Add(3 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	now := c.Now()
	ws, err := s.Waivers(ctx, store.WaiverFilter{Digest: m.Digest, Repositories: []string{repoA}, ActiveAt: &now})
	if err != nil || len(ws) != 2 || ws[0].ID != w2.ID || ws[1].ID != w1.ID {
		t.Fatalf("waivers of the digest and its repository: %+v, %v", ws, err)
	}
	if !ws[1].Covers(m.Digest, nil, "cve-1", nil, "OpenSSL") || ws[1].Covers(m.Digest, nil, "CVE-1", nil, "zlib") ||
		!ws[0].Covers(dg("any"), []string{repoA}, "PYSEC-1", []string{"GHSA-x"}, "p") || ws[0].Covers(dg("any"), []string{"else"}, "GHSA-x", nil, "") {
		t.Error("Covers matches the wrong findings")
	}
	if all, _ := s.Waivers(ctx, store.WaiverFilter{}); len(all) != 3 {
		t.Errorf("all waivers: %d; want 3", len(all))
	}
	// Expiry: the first waiver runs out; it is audited once.
	c.advance(90 * time.Minute)
	now = c.Now()
	if ws, _ := s.Waivers(ctx, store.WaiverFilter{Digest: m.Digest, Repositories: []string{repoA}, ActiveAt: &now}); len(ws) != 1 || ws[0].ID != w2.ID {
		t.Fatalf("active after the first expiry: %+v", ws)
	}
	exp1, err := s.ExpireWaivers(ctx, now)
	if err != nil || len(exp1) != 1 || exp1[0].ID != w1.ID || !exp1[0].ExpiryAudited {
		t.Fatalf("ExpireWaivers: %+v, %v", exp1, err)
	}
	if again, _ := s.ExpireWaivers(ctx, now); len(again) != 0 {
		t.Errorf("an expiry audited twice: %+v", again)
	}
	if n := countActions(t, s, m.Digest, "waiver.expired"); n != 1 {
		t.Errorf("%d waiver.expired entries; want 1", n)
	}
	// Revocation ends a waiver now, once; a revoked waiver never expires.
	rw, err := s.RevokeWaiver(ctx, w2.ID, "ann", "fixed")
	if err != nil || rw.RevokedAt == nil || rw.RevokedBy != "ann" {
		t.Fatalf("RevokeWaiver: %+v, %v", rw, err)
	}
	if _, err := s.RevokeWaiver(ctx, w2.ID, "ann", "again"); !errors.Is(err, store.ErrInvalidTransition) {
		t.Errorf("revoke twice: %v", err)
	}
	if _, err := s.RevokeWaiver(ctx, 1<<40, "ann", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke an unknown waiver: %v", err)
	}
	c.advance(24 * time.Hour)
	if exp2, _ := s.ExpireWaivers(ctx, c.Now()); len(exp2) != 1 || exp2[0].Repository != "other/repo" {
		t.Errorf("second expiry round: %+v; want only the other repository's waiver", exp2)
	}
	if n := countActions(t, s, repoA, "waiver.created") + countActions(t, s, repoA, "waiver.revoked"); n != 2 {
		t.Errorf("repository waiver audit entries: %d; want 2", n)
	}
}
