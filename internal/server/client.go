package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// Client talks to the API of an airlock server; the CLI is a thin shell over it.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// NewClient returns a client for server (a URL or host:port) using token.
func NewClient(server, token string) *Client {
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	return &Client{BaseURL: strings.TrimRight(server, "/"), Token: token, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// StatusError is an error answer of the API.
type StatusError struct {
	Status  int
	Code    string
	Message string
}

func (e *StatusError) Error() string { return e.Message }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach airlock server %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer of %s: %w", c.BaseURL, err)
	}
	if resp.StatusCode >= 300 {
		return decodeStatusError(resp.StatusCode, resp.Status, b, method+" "+path)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
		}
	}
	return nil
}

// Info returns the server's version and registry host.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var i Info
	return i, c.do(ctx, http.MethodGet, "/api/v1/info", nil, &i)
}

// WhoAmI returns the caller's token name and role.
func (c *Client) WhoAmI(ctx context.Context) (name, role string, err error) {
	var m map[string]string
	err = c.do(ctx, http.MethodGet, "/api/v1/whoami", nil, &m)
	return m["name"], m["role"], err
}

// CreateToken creates a token and returns its secret.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (TokenResponse, error) {
	var t TokenResponse
	return t, c.do(ctx, http.MethodPost, "/api/v1/tokens", req, &t)
}

// Tokens lists tokens (never their secrets).
func (c *Client) Tokens(ctx context.Context) ([]store.Token, error) {
	var t []store.Token
	return t, c.do(ctx, http.MethodGet, "/api/v1/tokens", nil, &t)
}

// RevokeToken revokes a token by name.
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(name), nil, nil)
}

// Images lists image records.
func (c *Client) Images(ctx context.Context, f store.ImageFilter) ([]store.Image, error) {
	q := url.Values{}
	if f.State != "" {
		q.Set("state", string(f.State))
	}
	if f.Repository != "" {
		q.Set("repository", f.Repository)
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	var imgs []store.Image
	return imgs, c.do(ctx, http.MethodGet, "/api/v1/images?"+q.Encode(), nil, &imgs)
}

// Image returns one image record.
func (c *Client) Image(ctx context.Context, digest string) (store.Image, error) {
	var img store.Image
	return img, c.do(ctx, http.MethodGet, "/api/v1/images/"+url.PathEscape(digest), nil, &img)
}

// Decide approves, rejects or revokes a digest (action: approve, reject, revoke).
func (c *Client) Decide(ctx context.Context, digest, action string, req DecisionRequest) (store.Image, error) {
	var img store.Image
	return img, c.do(ctx, http.MethodPost, "/api/v1/images/"+url.PathEscape(digest)+"/"+action, req, &img)
}

// Audit lists audit entries.
func (c *Client) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	q := url.Values{}
	if f.Subject != "" {
		q.Set("subject", f.Subject)
	}
	if f.Action != "" {
		q.Set("action", f.Action)
	}
	if f.AfterSeq > 0 {
		q.Set("after", fmt.Sprint(f.AfterSeq))
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	var es []store.AuditEntry
	return es, c.do(ctx, http.MethodGet, "/api/v1/audit?"+q.Encode(), nil, &es)
}

// VerifyAudit asks the server to walk the audit hash chain.
func (c *Client) VerifyAudit(ctx context.Context) (AuditVerify, error) {
	var v AuditVerify
	return v, c.do(ctx, http.MethodGet, "/api/v1/audit/verify", nil, &v)
}

func decodeStatusError(status int, statusText string, body []byte, what string) error {
	var e struct {
		Error APIError `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return &StatusError{Status: status, Code: e.Error.Code, Message: e.Error.Message}
	}
	return &StatusError{Status: status, Code: "UNKNOWN", Message: fmt.Sprintf("%s: %s", what, statusText)}
}

// statusError reads an error answer.
func statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return decodeStatusError(resp.StatusCode, resp.Status, b, resp.Request.Method+" "+resp.Request.URL.Path)
}
