package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Token auth, the way docker does it: a registry that wants a token answers
// 401 with
//
//	WWW-Authenticate: Bearer realm="https://…/auth/token",service="…",scope="repository:x:pull,push"
//
// and the client GETs realm?service=…&scope=… with Basic credentials, which
// answers {"token": "…"} (or "access_token"), then retries with
// Authorization: Bearer. Tokens are cached per scope. A registry that
// answers /v2/ with 200 (the stock one here) never sees any of this.
//
// Token fetches belong in setup / warm-up: every scenario calls
// c.authorize for its repositories before its timed loop, so the loop only
// reads the cache (a 401 inside it still works, but costs a fetch).

// bearerAuth holds the challenge's realm and service and the tokens.
type bearerAuth struct {
	user, password string
	realm, service string

	mu     sync.Mutex
	tokens map[string]cachedToken // by scope string (scopes joined by " ")
}

type cachedToken struct {
	token   string
	expires time.Time
}

// parseChallenge reads a Bearer WWW-Authenticate header into its params.
func parseChallenge(h string) (map[string]string, bool) {
	h = strings.TrimSpace(h)
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return nil, false
	}
	params := map[string]string{}
	s := h[7:]
	for s != "" {
		s = strings.TrimLeft(s, " ,")
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			break
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			end := 1
			var b strings.Builder
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' && end+1 < len(s) {
					end++
				}
				b.WriteByte(s[end])
				end++
			}
			val = b.String()
			if end < len(s) {
				end++
			}
			s = s[end:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val = strings.TrimSpace(s[:end])
			s = s[end:]
		}
		params[key] = val
	}
	return params, params["realm"] != ""
}

// repoScope is the scope a benchmark needs on a repository.
func repoScope(repo string) string { return "repository:" + repo + ":pull,push" }

// scopeForPath guesses the scope of a /v2/<name>/{blobs,manifests,tags}/…
// request ("" for /v2/ itself).
func scopeForPath(p string) string {
	p = strings.TrimPrefix(p, "/v2/")
	for _, k := range []string{"/blobs/", "/manifests/", "/tags/"} {
		if i := strings.Index(p, k); i > 0 {
			return repoScope(p[:i])
		}
	}
	return ""
}

// cached returns a token for scope that is still good for a minute.
func (a *bearerAuth) cached(scope string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.tokens[scope]
	if !ok || time.Until(t.expires) < time.Minute {
		return "", false
	}
	return t.token, true
}

// fetch gets a token for scope (space-separated scopes allowed) from the
// realm with Basic credentials and caches it.
func (a *bearerAuth) fetch(ctx context.Context, hc *http.Client, scope string) (string, error) {
	u, err := url.Parse(a.realm)
	if err != nil {
		return "", fmt.Errorf("bad realm %q: %w", a.realm, err)
	}
	q := u.Query()
	if a.service != "" {
		q.Set("service", a.service)
	}
	for _, s := range strings.Fields(scope) {
		q.Add("scope", s)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	if a.user != "" {
		req.SetBasicAuth(a.user, a.password)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", &statusError{method: "GET", url: u.String(), status: resp.StatusCode, want: []int{200}, body: string(body)}
	}
	var tr struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		IssuedAt    string `json:"issued_at"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", fmt.Errorf("GET %s: token answer: %w", u, err)
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" {
		return "", fmt.Errorf("GET %s: no token in the answer", u)
	}
	life := time.Duration(tr.ExpiresIn) * time.Second
	if life <= 0 {
		life = 60 * time.Second // the spec's default
	}
	a.mu.Lock()
	a.tokens[scope] = cachedToken{token: tok, expires: time.Now().Add(life)}
	a.mu.Unlock()
	return tok, nil
}

// token returns a cached or freshly fetched token for scope.
func (a *bearerAuth) token(ctx context.Context, hc *http.Client, scope string) (string, error) {
	if t, ok := a.cached(scope); ok {
		return t, nil
	}
	return a.fetch(ctx, hc, scope)
}

// authorize fetches (untimed) the tokens for these repositories, so that
// timed loops find them in the cache. No-op without token auth.
func (c *client) authorize(ctx context.Context, repos ...string) error {
	if c.auth == nil {
		return nil
	}
	for _, r := range repos {
		if _, err := c.auth.token(ctx, c.hc, repoScope(r)); err != nil {
			return fmt.Errorf("token for %s: %w", r, err)
		}
	}
	return nil
}

// bearerTransport adds one fixed token to every request (for crane, whose
// own token dance would otherwise run inside the timed copy).
type bearerTransport struct {
	token string
	next  http.RoundTripper
}

func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.token == "" {
		return t.next.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.next.RoundTrip(r)
}
