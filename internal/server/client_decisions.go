package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/airlock-dev/airlock/internal/attest"
	"github.com/airlock-dev/airlock/internal/store"
)

// Approve approves a digest and reports where the approval stands.
func (c *Client) Approve(ctx context.Context, digest string, req DecisionRequest) (Approval, error) {
	var a Approval
	return a, c.do(ctx, http.MethodPost, "/api/v1/images/"+url.PathEscape(digest)+"/approve", req, &a)
}

// Record returns the whole story of a digest.
func (c *Client) Record(ctx context.Context, digest string) (Record, error) {
	var r Record
	return r, c.do(ctx, http.MethodGet, "/api/v1/images/"+url.PathEscape(digest)+"/record", nil, &r)
}

// Evidence returns a digest's evidence and the active policy's verdict.
func (c *Client) Evidence(ctx context.Context, digest string) (EvidenceResponse, error) {
	var e EvidenceResponse
	return e, c.do(ctx, http.MethodGet, "/api/v1/images/"+url.PathEscape(digest)+"/evidence", nil, &e)
}

// Queue lists quarantined digests waiting for review.
func (c *Client) Queue(ctx context.Context, repository string) ([]QueueEntry, error) {
	var q []QueueEntry
	path := "/api/v1/queue"
	if repository != "" {
		path += "?repository=" + url.QueryEscape(repository)
	}
	return q, c.do(ctx, http.MethodGet, path, nil, &q)
}

// Policy returns the server's active policy.
func (c *Client) Policy(ctx context.Context) (PolicyInfo, error) {
	var p PolicyInfo
	return p, c.do(ctx, http.MethodGet, "/api/v1/policy", nil, &p)
}

// PublicKey returns the PEM public key that verifies the server's attestations.
func (c *Client) PublicKey(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+"/api/v1/keys/public", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach airlock server %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<10))
}

// ApprovalState is what `airlock verify` asks the server: the digest's state now.
func (c *Client) ApprovalState(ctx context.Context, digest string) (attest.ApprovalState, error) {
	img, err := c.Image(ctx, digest)
	if err != nil {
		return attest.ApprovalState{}, err
	}
	st := attest.ApprovalState{State: string(img.State), Expires: img.Expires}
	if n := len(img.History); n > 0 {
		h := img.History[n-1]
		st.ChangedAt, st.ChangedBy, st.Reason = h.At, h.Actor, h.Reason
	}
	return st, nil
}

// Reevaluate asks the server to match every stored inventory against its
// advisory database again (after airlock db import).
func (c *Client) Reevaluate(ctx context.Context) (ReevaluationReport, error) {
	var r ReevaluationReport
	return r, c.do(ctx, http.MethodPost, "/api/v1/reevaluate", struct{}{}, &r)
}

// Revocations lists scheduled revocations (digest and status narrow it).
func (c *Client) Revocations(ctx context.Context, digest, status string) ([]store.ScheduledRevocation, error) {
	var rs []store.ScheduledRevocation
	q := url.Values{}
	if digest != "" {
		q.Set("digest", digest)
	}
	if status != "" {
		q.Set("status", status)
	}
	return rs, c.do(ctx, http.MethodGet, "/api/v1/revocations?"+q.Encode(), nil, &rs)
}

// Waive records a waiver of one finding.
func (c *Client) Waive(ctx context.Context, req WaiverRequest) (store.Waiver, error) {
	var w store.Waiver
	return w, c.do(ctx, http.MethodPost, "/api/v1/waivers", req, &w)
}

// Waivers lists waivers of a digest or a repository (both empty: all).
func (c *Client) Waivers(ctx context.Context, digest, repository string, active bool) ([]store.Waiver, error) {
	var ws []store.Waiver
	q := url.Values{}
	if digest != "" {
		q.Set("digest", digest)
	}
	if repository != "" {
		q.Set("repository", repository)
	}
	if active {
		q.Set("active", "true")
	}
	return ws, c.do(ctx, http.MethodGet, "/api/v1/waivers?"+q.Encode(), nil, &ws)
}

// RevokeWaiver ends a waiver now.
func (c *Client) RevokeWaiver(ctx context.Context, id int64, reason string) (store.Waiver, error) {
	var w store.Waiver
	return w, c.do(ctx, http.MethodPost, fmt.Sprintf("/api/v1/waivers/%d/revoke", id), CancelRequest{Reason: reason}, &w)
}

// CancelRevocation keeps an approved digest whose revocation is scheduled.
func (c *Client) CancelRevocation(ctx context.Context, id int64, reason string) (store.ScheduledRevocation, error) {
	var r store.ScheduledRevocation
	return r, c.do(ctx, http.MethodPost, fmt.Sprintf("/api/v1/revocations/%d/cancel", id), CancelRequest{Reason: reason}, &r)
}
