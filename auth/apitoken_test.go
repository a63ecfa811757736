package auth

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// apiEngine is engine plus /api/v1/whoami behind the API middleware.
func apiEngine(s *Service) http.Handler {
	e := engine(s)
	e.GET("/api/v1/whoami", s.API, func(c *gin.Context) {
		p, _ := PrincipalFrom(c.Request.Context())
		c.String(http.StatusOK, p.Name)
	})
	return e
}

func tokenOf(t *testing.T, h http.Handler, method, target, body string, hdr ...string) (TokenResponse, int) {
	t.Helper()
	rec := serve(h, method, target, body, hdr...)
	var tr TokenResponse
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &tr); err != nil {
			t.Fatal(err)
		}
	}
	return tr, rec.Code
}

// TestAPITokens: /api/ takes Basic credentials or API tokens (scope
// api:v1:*), never registry tokens; API tokens never open /v2/.
func TestAPITokens(t *testing.T) {
	s := newTestService(t, nil)
	h := apiEngine(s)
	whoami := func(hdr ...string) (int, string) {
		rec := serve(h, http.MethodGet, "/api/v1/whoami", "", hdr...)
		return rec.Code, rec.Body.String()
	}
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	get := func(scopes ...string) string {
		return "/auth/token?" + url.Values{"service": {"slipway"}, "scope": scopes}.Encode()
	}

	// Registry tokens, with or without scope, anonymous or not: 401.
	for _, scopes := range [][]string{nil, {"repository:staging/app:pull"}} {
		for _, hdr := range [][]string{basicHeader("ops", opsPass), nil} {
			tr, code := tokenOf(t, h, http.MethodGet, get(scopes...), "", hdr...)
			if code != http.StatusOK {
				t.Fatalf("registry token %v: %d", scopes, code)
			}
			if code, body := whoami(bearer(tr.Token)...); code != http.StatusUnauthorized || !strings.Contains(body, "registry token") {
				t.Errorf("registry token (scopes %v, %d credentials) on /api/: %d %s", scopes, len(hdr), code, body)
			}
		}
	}

	// An API token, by GET and by the OAuth2 form: it works on /api/ and
	// names its account; on /v2/ it is an invalid token.
	tr, code := tokenOf(t, h, http.MethodGet, get("api:v1:*"), "", basicHeader("ops", opsPass)...)
	if code != http.StatusOK || tr.Scope != "api:v1:*" {
		t.Fatalf("API token by GET: %d %+v", code, tr)
	}
	form := url.Values{"grant_type": {"password"}, "username": {"ci"}, "password": {ciPass}, "scope": {"api:v1:*"}, "access_type": {"offline"}}
	ftr, code := tokenOf(t, h, http.MethodPost, "/auth/token", form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	if code != http.StatusOK || ftr.Scope != "api:v1:*" || ftr.RefreshToken == "" {
		t.Fatalf("API token by the form: %d %+v", code, ftr)
	}
	for user, tok := range map[string]string{"ops": tr.Token, "ci": ftr.Token} {
		if code, body := whoami(bearer(tok)...); code != http.StatusOK || body != user {
			t.Errorf("%s's API token on /api/: %d %q", user, code, body)
		}
		if rec := serve(h, http.MethodGet, "/v2/", "", bearer(tok)...); rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("%s's API token on /v2/: %d %s", user, rec.Code, rec.Header().Get("WWW-Authenticate"))
		}
		if _, err := s.Verify(tok); err == nil {
			t.Errorf("%s's API token verifies as a registry token", user)
		}
	}
	// The refresh token of that login gets an API token again.
	form = url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ftr.RefreshToken}, "scope": {"api:v1:*"}}
	if rtr, code := tokenOf(t, h, http.MethodPost, "/auth/token", form.Encode(), "Content-Type", "application/x-www-form-urlencoded"); code != http.StatusOK || rtr.Scope != "api:v1:*" {
		t.Errorf("API token by refresh: %d %+v", code, rtr)
	}
	// Basic works as before.
	if code, body := whoami(basicHeader("ci", ciPass)...); code != http.StatusOK || body != "ci" {
		t.Errorf("Basic on /api/: %d %q", code, body)
	}
	// No API token without credentials, none mixed with registry scopes,
	// none for another API or action.
	for _, tc := range []struct {
		target string
		hdr    []string
		want   int
	}{
		{get("api:v1:*"), nil, http.StatusUnauthorized},
		{get("api:v1:*", "repository:staging/app:pull"), basicHeader("ops", opsPass), http.StatusBadRequest},
		{get("api:v1:* repository:staging/app:pull"), basicHeader("ops", opsPass), http.StatusBadRequest},
		{get("api:v2:*"), basicHeader("ops", opsPass), http.StatusBadRequest},
		{get("api:v1:pull"), basicHeader("ops", opsPass), http.StatusBadRequest},
	} {
		if _, code := tokenOf(t, h, http.MethodGet, tc.target, "", tc.hdr...); code != tc.want {
			t.Errorf("%s: %d, want %d", tc.target, code, tc.want)
		}
	}
	// The 401 of /api/ says which token to ask for.
	rec := serve(h, http.MethodGet, "/api/v1/whoami", "")
	if ch := rec.Header().Get("WWW-Authenticate"); rec.Code != http.StatusUnauthorized || !strings.Contains(ch, `scope="api:v1:*"`) {
		t.Errorf("challenge of /api/: %d %q", rec.Code, ch)
	}
}
