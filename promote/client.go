package promote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls the promotion API of a Slipway server (the CLI's side).
// It authenticates with HTTP Basic credentials (a user's password or a
// robot's secret), or with a CI job's OIDC ID token.
type Client struct {
	BaseURL  string // "https://registry.example.com"
	User     string
	Password string
	// IDToken, when set, is sent instead of User and Password
	// ("Authorization: Bearer"): an ID token that the server's
	// auth.oidc.trust rules accept.
	IDToken string
	// HTTP is the client to use; nil: one with a 2-minute timeout.
	HTTP *http.Client
}

// Promote asks the server to promote; created is false for a no-op.
func (c *Client) Promote(ctx context.Context, req Request) (rec Record, created bool, err error) {
	b, _ := json.Marshal(req)
	status, err := c.do(ctx, http.MethodPost, "/api/v1/promotions", b, &rec)
	return rec, status == http.StatusCreated, err
}

// Rollback asks the server to roll back record id.
func (c *Client) Rollback(ctx context.Context, id, reason string) (Record, error) {
	var rec Record
	b, _ := json.Marshal(map[string]string{"reason": reason})
	_, err := c.do(ctx, http.MethodPost, "/api/v1/promotions/"+url.PathEscape(id)+"/rollback", b, &rec)
	return rec, err
}

// History fetches one page of the ledger.
func (c *Client) History(ctx context.Context, q Query) (Page, error) {
	v := url.Values{}
	for k, s := range map[string]string{"repository": q.Repository, "tag": q.Tag, "stage": q.Stage, "cursor": q.Cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var page Page
	_, err := c.do(ctx, http.MethodGet, "/api/v1/promotions?"+v.Encode(), nil, &page)
	return page, err
}

// do sends one request and decodes the JSON answer into out; a refusal is
// returned as *Error with the server's code and message.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) (int, error) {
	base := strings.TrimRight(c.BaseURL, "/")
	if base == "" {
		return 0, fmt.Errorf("no server URL (set SLIPWAY_URL, e.g. https://registry.example.com)")
	}
	if !strings.Contains(base, "://") {
		base = "https://" + base
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case c.IDToken != "":
		req.Header.Set("Authorization", "Bearer "+c.IDToken)
	case c.User != "":
		req.SetBasicAuth(c.User, c.Password)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Code, e.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(b))
			if e.Message == "" {
				e.Message = resp.Status
			}
		}
		return resp.StatusCode, e
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp.StatusCode, fmt.Errorf("unexpected answer from %s: %w", base, err)
	}
	return resp.StatusCode, nil
}

// CreateRelease asks the server to promote every image of req, or none.
func (c *Client) CreateRelease(ctx context.Context, req ReleaseRequest) (Release, error) {
	var rel Release
	b, _ := json.Marshal(req)
	_, err := c.do(ctx, http.MethodPost, "/api/v1/releases", b, &rel)
	return rel, err
}

// GetRelease fetches release id with its member records.
func (c *Client) GetRelease(ctx context.Context, id string) (Release, error) {
	var rel Release
	_, err := c.do(ctx, http.MethodGet, "/api/v1/releases/"+url.PathEscape(id), nil, &rel)
	return rel, err
}

// Releases fetches one page of releases, newest first.
func (c *Client) Releases(ctx context.Context, limit int, cursor string) (ReleasePage, error) {
	v := url.Values{}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	var page ReleasePage
	_, err := c.do(ctx, http.MethodGet, "/api/v1/releases?"+v.Encode(), nil, &page)
	return page, err
}

// RollbackRelease asks the server to roll back release id as a unit.
func (c *Client) RollbackRelease(ctx context.Context, id, reason string) (Release, error) {
	var rel Release
	b, _ := json.Marshal(map[string]string{"reason": reason})
	_, err := c.do(ctx, http.MethodPost, "/api/v1/releases/"+url.PathEscape(id)+"/rollback", b, &rel)
	return rel, err
}
