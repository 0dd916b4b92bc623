package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/airlock-dev/airlock/internal/store"
)

// Import posts an import and returns the NDJSON event stream.
func (c *Client) Import(ctx context.Context, q url.Values, contentType string, body io.Reader) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+"/api/v1/imports?"+q.Encode(), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	// An import streams for as long as it copies: no overall client timeout.
	hc := &http.Client{Transport: c.HTTP.Transport}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach airlock server %s: %w", c.BaseURL, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, statusError(resp)
	}
	return resp.Body, nil
}

// Job returns one vetting job.
func (c *Client) Job(ctx context.Context, id int64) (store.Job, error) {
	var j store.Job
	return j, c.do(ctx, http.MethodGet, "/api/v1/jobs/"+strconv.FormatInt(id, 10), nil, &j)
}

// Jobs lists vetting jobs, newest first.
func (c *Client) Jobs(ctx context.Context, f store.JobFilter) ([]store.Job, error) {
	q := url.Values{}
	if f.Digest != "" {
		q.Set("digest", f.Digest)
	}
	if f.State != "" {
		q.Set("state", f.State)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var js []store.Job
	return js, c.do(ctx, http.MethodGet, "/api/v1/jobs?"+q.Encode(), nil, &js)
}

// Resolve maps image references to their approved private digests.
func (c *Client) Resolve(ctx context.Context, items []ResolveItem) ([]Resolution, error) {
	var out []Resolution
	return out, c.do(ctx, http.MethodPost, "/api/v1/resolve", ResolveRequest{References: items}, &out)
}
