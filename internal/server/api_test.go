package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/airlock-dev/airlock/internal/attest"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/server/servertest"
	"github.com/airlock-dev/airlock/internal/store"
)

// The JSON API, through server.Client: what every `airlock` CLI command does.

func statusOf(err error) (int, string, string) {
	var se *server.StatusError
	if errors.As(err, &se) {
		return se.Status, se.Code, se.Message
	}
	return 0, "", ""
}

func wantStatus(t *testing.T, what string, err error, status int, code string, words ...string) {
	t.Helper()
	got, gotCode, msg := statusOf(err)
	if got != status || gotCode != code {
		t.Errorf("%s: %v (status %d, code %s), want %d %s", what, err, got, gotCode, status, code)
		return
	}
	for _, w := range words {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: message %q does not say %q", what, msg, w)
		}
	}
}

func TestAPITokens(t *testing.T) {
	in := servertest.Start(t, nil)
	ctx := context.Background()
	admin := in.Client(in.AdminToken)

	created, err := admin.CreateToken(ctx, server.TokenRequest{Name: "ci", Role: store.RolePusher, Expires: "720h"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.Token, "alk_") || created.Role != store.RolePusher || created.Name != "ci" {
		t.Errorf("created %+v", created)
	}
	if created.ExpiresAt == nil || time.Until(*created.ExpiresAt) < 719*time.Hour || time.Until(*created.ExpiresAt) > 721*time.Hour {
		t.Errorf("expires %v, want in 720h", created.ExpiresAt)
	}
	if name, role, err := in.Client(created.Token).WhoAmI(ctx); err != nil || name != "ci" || role != "pusher" {
		t.Errorf("whoami with the new token: %q %q %v", name, role, err)
	}
	if _, err := admin.CreateToken(ctx, server.TokenRequest{Name: "days", Role: store.RolePuller, Expires: "90d"}); err != nil {
		t.Errorf("expires in days: %v", err)
	}

	for _, tc := range []struct {
		name string
		req  server.TokenRequest
		code int
		errc string
		msg  string
	}{
		{"duplicate name", server.TokenRequest{Name: "ci", Role: store.RolePuller}, http.StatusConflict, "EXISTS", ""},
		{"empty name", server.TokenRequest{Name: "", Role: store.RolePuller}, http.StatusBadRequest, "BAD_REQUEST", "token name"},
		{"name with space", server.TokenRequest{Name: "a b", Role: store.RolePuller}, http.StatusBadRequest, "BAD_REQUEST", "token name"},
		{"name anonymous", server.TokenRequest{Name: "anonymous", Role: store.RolePuller}, http.StatusBadRequest, "BAD_REQUEST", "token name"},
		{"unknown role", server.TokenRequest{Name: "r", Role: "root"}, http.StatusBadRequest, "BAD_REQUEST", "puller, pusher, approver, scanner, admin"},
		{"no role", server.TokenRequest{Name: "r"}, http.StatusBadRequest, "BAD_REQUEST", "role"},
		{"negative lifetime", server.TokenRequest{Name: "r", Role: store.RolePuller, Expires: "-1h"}, http.StatusBadRequest, "BAD_REQUEST", "positive duration"},
		{"zero lifetime", server.TokenRequest{Name: "r", Role: store.RolePuller, Expires: "0d"}, http.StatusBadRequest, "BAD_REQUEST", "positive duration"},
		{"garbage lifetime", server.TokenRequest{Name: "r", Role: store.RolePuller, Expires: "soon"}, http.StatusBadRequest, "BAD_REQUEST", "positive duration"},
	} {
		_, err := admin.CreateToken(ctx, tc.req)
		wantStatus(t, "create token: "+tc.name, err, tc.code, tc.errc, tc.msg)
	}

	// Listing never shows a secret or its hash.
	list := in.Do(t, servertest.Request{Method: http.MethodGet, Path: "/api/v1/tokens", Token: in.AdminToken})
	if list.Status != http.StatusOK {
		t.Fatalf("list tokens: %d %s", list.Status, list.Body)
	}
	for _, secret := range []string{created.Token, in.AdminToken} {
		if strings.Contains(string(list.Body), secret) || strings.Contains(string(list.Body), hashOf(secret)) {
			t.Errorf("token list discloses a secret or its hash: %s", list.Body)
		}
	}
	toks, err := admin.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]store.Token{}
	for _, tk := range toks {
		names[tk.Name] = tk
	}
	if len(toks) != 3 || names["admin"].Role != store.RoleAdmin || names["ci"].Role != store.RolePusher || names["ci"].CreatedBy != "admin" || names["ci"].Revoked {
		t.Errorf("tokens %+v", toks)
	}

	// Only an admin manages tokens.
	pusher := in.Client(created.Token)
	_, err = pusher.CreateToken(ctx, server.TokenRequest{Name: "mine", Role: store.RoleAdmin})
	wantStatus(t, "pusher creates a token", err, http.StatusForbidden, "DENIED", `role "pusher"`)
	_, err = pusher.Tokens(ctx)
	wantStatus(t, "pusher lists tokens", err, http.StatusForbidden, "DENIED")
	wantStatus(t, "pusher revokes a token", pusher.RevokeToken(ctx, "admin"), http.StatusForbidden, "DENIED")
	for _, role := range []store.Role{store.RolePuller, store.RoleApprover, store.RoleScanner} {
		_, err := in.Client(in.Token(t, "as-"+string(role), role)).CreateToken(ctx, server.TokenRequest{Name: "x", Role: store.RoleAdmin})
		wantStatus(t, string(role)+" creates a token", err, http.StatusForbidden, "DENIED")
	}

	// Revocation.
	wantStatus(t, "revoke unknown", admin.RevokeToken(ctx, "nobody"), http.StatusNotFound, "NOT_FOUND")
	if err := admin.RevokeToken(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	_, _, err = pusher.WhoAmI(ctx)
	wantStatus(t, "revoked token", err, http.StatusUnauthorized, "UNAUTHORIZED", "revoked")
	toks, _ = admin.Tokens(ctx)
	for _, tk := range toks {
		if tk.Name == "ci" && !tk.Revoked {
			t.Error("revoked token listed as not revoked")
		}
	}
	es, err := admin.Audit(ctx, store.AuditFilter{Subject: "ci"})
	if err != nil || len(es) != 2 || es[0].Action != "token.created" || es[1].Action != "token.revoked" || es[1].Actor != "admin" {
		t.Errorf("token audit trail %+v, %v", es, err)
	}
	// A revoked name stays taken: its audit trail must stay unambiguous.
	_, err = admin.CreateToken(ctx, server.TokenRequest{Name: "ci", Role: store.RolePuller})
	wantStatus(t, "re-create revoked name", err, http.StatusConflict, "EXISTS")

	// Without a token, or with a bad one.
	_, _, err = in.Client("").WhoAmI(ctx)
	wantStatus(t, "no token", err, http.StatusUnauthorized, "UNAUTHORIZED", "AIRLOCK_TOKEN")
	_, _, err = in.Client("alk_made-up").WhoAmI(ctx)
	wantStatus(t, "unknown token", err, http.StatusUnauthorized, "UNAUTHORIZED")
}

func hashOf(secret string) string {
	return strings.TrimPrefix(servertest.Digest([]byte(secret)), "sha256:")
}

func TestAPIDecisions(t *testing.T) {
	in := servertest.Start(t, nil)
	ctx := context.Background()
	admin := in.Client(in.AdminToken)
	clients := map[store.Role]*server.Client{}
	for _, r := range []store.Role{store.RolePuller, store.RolePusher, store.RoleApprover, store.RoleScanner} {
		clients[r] = in.Client(in.Token(t, string(r), r))
	}
	approver := clients[store.RoleApprover]
	digest := func(repoTag string) string {
		img := in.PushRandom(t, repoTag, "admin", in.AdminToken, 64, 1)
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	x, y, z := digest("team/app:x"), digest("team/app:y"), digest("other/app:z")

	// Only approvers and admins decide.
	for _, r := range []store.Role{store.RolePuller, store.RolePusher, store.RoleScanner} {
		for _, action := range []string{"approve", "reject", "revoke"} {
			_, err := clients[r].Decide(ctx, x, action, server.DecisionRequest{Reason: "because"})
			wantStatus(t, string(r)+" "+action, err, http.StatusForbidden, "DENIED", string(r))
		}
	}
	if img, _ := admin.Image(ctx, x); img.State != store.Quarantined {
		t.Fatalf("x is %s after refused decisions", img.State)
	}

	for _, tc := range []struct {
		name   string
		digest string
		action string
		req    server.DecisionRequest
		status int
		code   string
		words  []string
	}{
		{"no reason", x, "approve", server.DecisionRequest{}, http.StatusBadRequest, "BAD_REQUEST", []string{"reason is required"}},
		{"not a digest", "sha256:xyz", "approve", server.DecisionRequest{Reason: "r"}, http.StatusBadRequest, "BAD_REQUEST", []string{"not a digest"}},
		{"unknown action", x, "bless", server.DecisionRequest{Reason: "r"}, http.StatusNotFound, "NOT_FOUND", []string{"approve, reject or revoke"}},
		{"unknown digest", servertest.Digest([]byte("nothing")), "approve", server.DecisionRequest{Reason: "r"}, http.StatusNotFound, "NOT_FOUND", nil},
		{"negative lifetime", x, "approve", server.DecisionRequest{Reason: "r", Expires: "-5h"}, http.StatusBadRequest, "BAD_REQUEST", []string{"positive duration"}},
		{"lifetime on a reject", x, "reject", server.DecisionRequest{Reason: "r", Expires: "5h"}, http.StatusBadRequest, "BAD_REQUEST", []string{"only an approval can expire"}},
		{"revoke quarantined", x, "revoke", server.DecisionRequest{Reason: "r"}, http.StatusConflict, "INVALID_TRANSITION", []string{x, "quarantined", "only approved digests can be revoked"}},
	} {
		_, err := approver.Decide(ctx, tc.digest, tc.action, tc.req)
		wantStatus(t, tc.name, err, tc.status, tc.code, tc.words...)
	}

	img, err := approver.Decide(ctx, x, "approve", server.DecisionRequest{Reason: "scanned clean", Expires: "90d"})
	if err != nil {
		t.Fatal(err)
	}
	if img.State != store.Approved || img.Expires == nil || time.Until(*img.Expires) < 89*24*time.Hour {
		t.Errorf("approved %+v", img)
	}
	for _, tc := range []struct {
		digest, action string
		words          []string
	}{
		{x, "approve", []string{"is approved", "revoke it"}},
		{x, "reject", []string{"only quarantined digests can be rejected"}},
	} {
		_, err := approver.Decide(ctx, tc.digest, tc.action, server.DecisionRequest{Reason: "again"})
		wantStatus(t, tc.action+" approved", err, http.StatusConflict, "INVALID_TRANSITION", tc.words...)
	}
	if _, err := approver.Decide(ctx, y, "reject", server.DecisionRequest{Reason: "old openssl"}); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"approve", "revoke", "reject"} {
		_, err := approver.Decide(ctx, y, action, server.DecisionRequest{Reason: "changed my mind"})
		wantStatus(t, action+" rejected", err, http.StatusConflict, "INVALID_TRANSITION", "rejected")
	}
	if _, err := admin.Decide(ctx, x, "revoke", server.DecisionRequest{Reason: "key leaked"}); err != nil {
		t.Fatal(err)
	}

	// List, filtered.
	for _, tc := range []struct {
		f    store.ImageFilter
		want []string
	}{
		{store.ImageFilter{}, []string{x, y, z}},
		{store.ImageFilter{State: store.Quarantined}, []string{z}},
		{store.ImageFilter{State: store.Rejected}, []string{y}},
		{store.ImageFilter{State: store.Revoked}, []string{x}},
		{store.ImageFilter{State: store.Approved}, nil},
		{store.ImageFilter{Repository: "team/app"}, []string{x, y}},
		{store.ImageFilter{Repository: "team/app", State: store.Revoked}, []string{x}},
		{store.ImageFilter{Repository: "nope"}, nil},
	} {
		imgs, err := clients[store.RolePuller].Images(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		n := 0
		for _, i := range imgs {
			if i.ArtifactType == attest.MediaTypeDSSE {
				continue // the approval attestation Airlock signed is an image of its own
			}
			got[i.Digest] = true
			n++
		}
		if len(got) != len(tc.want) || n != len(tc.want) {
			t.Errorf("images %+v: %d, want %d", tc.f, len(imgs), len(tc.want))
		}
		for _, d := range tc.want {
			if !got[d] {
				t.Errorf("images %+v lacks %s", tc.f, d)
			}
		}
	}
	if imgs, err := admin.Images(ctx, store.ImageFilter{Limit: 2}); err != nil || len(imgs) != 2 {
		t.Errorf("limit 2: %d, %v", len(imgs), err)
	}
	r := in.Do(t, servertest.Request{Method: http.MethodGet, Path: "/api/v1/images?state=bogus", Token: in.AdminToken})
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "quarantined, approved, rejected, revoked") {
		t.Errorf("bogus state filter: %d %s", r.Status, r.Body)
	}
	// An empty list is [], not null: scripts iterate it.
	r = in.Do(t, servertest.Request{Method: http.MethodGet, Path: "/api/v1/images?state=approved&repository=nope", Token: in.AdminToken})
	if strings.TrimSpace(string(r.Body)) != "[]" {
		t.Errorf("empty list: %s", r.Body)
	}

	// Show: the history, in order, with who and why.
	shown, err := clients[store.RolePuller].Image(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		from, to     store.State
		actor, why   string
		expiresIsSet bool
	}
	want := []step{
		{"", store.Quarantined, "admin", "recorded on push to team/app", false},
		{store.Quarantined, store.Approved, "approver", "scanned clean", true},
		{store.Approved, store.Revoked, "admin", "key leaked", false},
	}
	if len(shown.History) != len(want) {
		t.Fatalf("history %+v", shown.History)
	}
	for i, w := range want {
		h := shown.History[i]
		if h.From != w.from || h.To != w.to || h.Actor != w.actor || h.Reason != w.why || (h.Expires != nil) != w.expiresIsSet {
			t.Errorf("history[%d] = %+v, want %+v", i, h, w)
		}
	}
	if shown.State != store.Revoked || len(shown.Repositories) != 1 || shown.Repositories[0] != "team/app" {
		t.Errorf("show %+v", shown)
	}
	_, err = admin.Image(ctx, servertest.Digest([]byte("nothing")))
	wantStatus(t, "show unknown", err, http.StatusNotFound, "NOT_FOUND")

	// The audit log holds every decision, readable by approvers and admins, and verifies.
	es, err := approver.Audit(ctx, store.AuditFilter{Subject: x})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action+"/"+e.Actor)
	}
	if strings.Join(actions, " ") != "image.recorded/admin approval.recorded/approver state.approved/approver attestation.created/airlock approval.refused/approver state.revoked/admin" {
		t.Errorf("audit of x: %v", actions)
	}
	var detail struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(es[1].Detail, &detail); err != nil || detail.Reason != "scanned clean" {
		t.Errorf("approval detail %s", es[1].Detail)
	}
	v, err := approver.VerifyAudit(ctx)
	if err != nil || !v.OK || v.Error != "" || v.Entries < 10 {
		t.Errorf("audit verify %+v, %v", v, err)
	}
	for _, r := range []store.Role{store.RolePuller, store.RolePusher, store.RoleScanner} {
		_, err := clients[r].VerifyAudit(ctx)
		wantStatus(t, string(r)+" verifies audit", err, http.StatusForbidden, "DENIED")
	}

	// An edited row breaks the chain, and verify says where.
	db, err := sql.Open("sqlite", in.Server.Config.Store.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `UPDATE audit SET actor = 'mallory' WHERE subject = ? AND action = 'state.approved'`, x); err != nil {
		t.Fatal(err)
	}
	edited := es[2].Seq // state.approved
	v, err = admin.VerifyAudit(ctx)
	if err != nil || v.OK || v.Entries != edited-1 || !strings.Contains(v.Error, fmt.Sprintf("audit entry %d was changed", edited)) {
		t.Errorf("verify after editing entry %d: %+v, %v", edited, v, err)
	}
}
