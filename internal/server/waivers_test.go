package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestWaiverApprovalAndExpiry: the policy denies an image for a known
// vulnerability; a waiver of that finding (by alias) lets an approver
// approve it; when the waiver expires the finding counts again and, the
// digest being approved, a revocation is scheduled — not an instant flip;
// a repository-wide waiver then cancels it. Every step is audited.
func TestWaiverApprovalAndExpiry(t *testing.T) {
	ctx := context.Background()
	sink := startAlertSink(t)
	pol := writePolicy(t, reevalPolicy)
	up := servertest.StartUpstream(t)
	want := pythonApp(t, up, "team/app:2")
	in, c := startForImport(t, func(c *config.Config) { c.Policy.File = pol; c.Alerts.Webhook = sink.srv.URL })
	clock := &testClock{}
	in.Server.Decider.SetClock(clock.now)
	importAdvisories(t, in, "osv", "pypi", "requests")
	admin := in.Client(in.AdminToken)
	approver := in.Client(in.Token(t, "ann", store.RoleApprover))
	puller := in.Client(in.Token(t, "dev", store.RolePuller))

	ev := importJSON(t, c, server.ImportRequest{Source: up.Host + "/team/app:2", Insecure: true})
	if ev.Type != "result" || ev.Result.Digest != want {
		t.Fatalf("import: %+v", ev)
	}
	waitJob(t, c, ev.Job.ID)
	img, _ := admin.Image(ctx, want)
	if img.State != store.Rejected {
		t.Fatalf("state %s; the policy denies a known vulnerability", img.State)
	}
	if _, err := in.Server.Store.Transition(ctx, want, store.Quarantined, "admin", "look again with a waiver", nil); err != nil {
		t.Fatal(err)
	}
	_, err := approver.Approve(ctx, want, server.DecisionRequest{Reason: "please"})
	var se *server.StatusError
	if !errors.As(err, &se) || se.Code != "POLICY_DENIED" {
		t.Fatalf("approve before the waiver: %v", err)
	}

	// Bad waivers are refused with a reason and change nothing.
	for _, tc := range []struct {
		req  server.WaiverRequest
		want string
	}{
		{server.WaiverRequest{Finding: "CVE-2023-32681", Owner: "o", Reason: "r", Expires: "1h"}, "exactly one of a digest"},
		{server.WaiverRequest{Digest: want, Repository: "team/app", Finding: "CVE-2023-32681", Owner: "o", Reason: "r", Expires: "1h"}, "exactly one of a digest"},
		{server.WaiverRequest{Digest: "sha256:nope", Finding: "x", Owner: "o", Reason: "r", Expires: "1h"}, "not a digest"},
		{server.WaiverRequest{Repository: "../etc", Finding: "x", Owner: "o", Reason: "r", Expires: "1h"}, "not a repository"},
		{server.WaiverRequest{Digest: want, Finding: "", Owner: "o", Reason: "r", Expires: "1h"}, "name the finding"},
		{server.WaiverRequest{Digest: want, Finding: "CVE-1", Reason: "r", Expires: "1h"}, "needs an owner"},
		{server.WaiverRequest{Digest: want, Finding: "CVE-1", Owner: "o", Expires: "1h"}, "needs a reason"},
		{server.WaiverRequest{Digest: want, Finding: "CVE-1", Owner: "o", Reason: "r"}, "needs an expiry"},
		{server.WaiverRequest{Digest: want, Finding: "CVE-1", Owner: "o", Reason: "r", Expires: "-1h"}, "positive duration"},
	} {
		_, err := approver.Waive(ctx, tc.req)
		if !errors.As(err, &se) || se.Code != "BAD_REQUEST" || !strings.Contains(se.Message, tc.want) {
			t.Errorf("waive %+v: %v; want BAD_REQUEST with %q", tc.req, err, tc.want)
		}
	}
	if _, err := puller.Waive(ctx, server.WaiverRequest{Digest: want, Finding: "CVE-2023-32681", Owner: "o", Reason: "r", Expires: "1h"}); err == nil {
		t.Error("a puller waived a finding")
	}
	if ws, _ := admin.Waivers(ctx, "", "", false); len(ws) != 0 {
		t.Fatalf("refused waivers were stored: %+v", ws)
	}

	// A waiver of the finding by its CVE alias, for one hour.
	wv, err := approver.Waive(ctx, server.WaiverRequest{Digest: want, Finding: "CVE-2023-32681", Package: "requests", Owner: "team-py",
		Reason: "proxies are not used by this service", Expires: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	evd, err := approver.Evidence(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	waived := 0
	for _, f := range evd.Evidence.Findings {
		if f["id"] == "PYSEC-2023-74" && f["waived"] == true {
			waived++
		}
	}
	if waived != 1 || evd.Verdict.Effect != policy.Review {
		t.Fatalf("evidence with the waiver: %d waived, verdict %s; want the finding waived and review", waived, evd.Verdict.Effect)
	}
	if _, err := approver.Approve(ctx, want, server.DecisionRequest{Reason: "risk accepted by team-py"}); err != nil {
		t.Fatalf("approve with the waiver: %v", err)
	}

	// The waiver expires: the finding counts again; the approved digest gets
	// a scheduled revocation and an alert, and stays approved.
	clock.advance(61 * time.Minute)
	in.Server.Decider.Tick(ctx)
	img, _ = admin.Image(ctx, want)
	rs, err := admin.Revocations(ctx, want, store.RevocationScheduled)
	if err != nil || img.State != store.Approved || len(rs) != 1 || !strings.Contains(rs[0].Reason, "waiver") {
		t.Fatalf("after expiry: state %s, revocations %+v, %v", img.State, rs, err)
	}
	if len(sink.of(server.AlertWaiverExpired, want)) != 1 {
		t.Error("no waiver-expired alert")
	}
	// A human cannot keep it while the policy denies it.
	if _, err := approver.CancelRevocation(ctx, rs[0].ID, "keep it"); !errors.As(err, &se) || se.Code != "POLICY_DENIED" {
		t.Fatalf("cancel a revocation the policy stands by: %v", err)
	}
	// A repository-wide waiver: the scheduled revocation is cancelled at once.
	repo := ev.Result.Repository
	if _, err := approver.Waive(ctx, server.WaiverRequest{Repository: repo, Finding: "PYSEC-2023-74", Owner: "team-py",
		Reason: "renewed for the repository", Expires: "30d"}); err != nil {
		t.Fatal(err)
	}
	rs, _ = admin.Revocations(ctx, want, "")
	if len(rs) != 1 || rs[0].Status != store.RevocationCancelled || !strings.Contains(rs[0].CloseReason, "waiver") {
		t.Fatalf("revocations after the repository waiver: %+v", rs)
	}
	if len(sink.of(server.AlertRevocationCancelled, want)) != 1 {
		t.Error("no revocation-cancelled alert")
	}
	// The expired waiver cannot be revoked twice; the record shows both.
	if _, err := approver.RevokeWaiver(ctx, wv.ID, "superseded"); err != nil {
		t.Fatal(err)
	}
	if _, err := approver.RevokeWaiver(ctx, wv.ID, "again"); !errors.As(err, &se) || se.Code != "INVALID_TRANSITION" {
		t.Fatalf("revoke a waiver twice: %v", err)
	}
	rec, err := admin.Record(ctx, want)
	if err != nil || len(rec.Waivers) != 2 {
		t.Fatalf("record waivers: %+v, %v", rec.Waivers, err)
	}
	counts := map[string]int{}
	for _, e := range rec.Audit {
		counts[e.Action]++
	}
	if counts["waiver.created"] != 1 || counts["waiver.expired"] != 1 || counts["waiver.revoked"] != 1 || counts["revocation.scheduled"] != 1 ||
		counts["revocation.cancelled"] != 1 || counts["state.revoked"] != 0 {
		t.Errorf("audit of the digest: %v", counts)
	}
	// The repository waiver's creation is audited under the repository.
	es, err := in.Server.Store.AuditEntries(ctx, store.AuditFilter{Subject: repo, Action: "waiver.created"})
	if err != nil || len(es) != 1 {
		t.Errorf("repository waiver audit: %+v, %v", es, err)
	}
}
