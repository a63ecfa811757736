package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"

	"github.com/slipway/slipway/config"
)

const testAudience = "https://registry.test"

// oidcRules: pushes from main of any acme repository into
// staging/<repository>, promotion of acme/api from version tags only, and
// a rule whose wide grant reaches the immutable production stage.
func oidcRules(issuer string) []config.TrustRule {
	return []config.TrustRule{
		{Name: "push-main", Issuer: issuer, Audience: testAudience,
			Claims: map[string]string{"repository": "acme/*", "ref": "refs/heads/main"},
			Grants: []config.Grant{{Repos: "staging/{repository}*", Actions: []string{"pull", "push"}}}},
		{Name: "release", Issuer: issuer, Audience: testAudience,
			Claims: map[string]string{"repository": "acme/api", "ref": "refs/tags/v*"},
			Grants: []config.Grant{{Repos: "staging/acme/api", Actions: []string{"pull", "promote"}}, {Repos: "production/acme/api", Actions: []string{"promote"}}}},
		{Name: "wide", Issuer: issuer, Audience: testAudience,
			Claims: map[string]string{"repository": "acme/wide"},
			Grants: []config.Grant{{Repos: "*", Actions: []string{"pull", "push"}}}},
	}
}

// newOIDCService is the test service trusting is with oidcRules, on clk,
// fetching the issuer's keys at most every 10s.
func newOIDCService(t testing.TB, is *testIssuer, clk *fakeClock) *Service {
	t.Helper()
	return newTestService(t, func(o *Options) {
		o.Now = clk.Now
		o.Auth.OIDC = config.OIDC{JWKSRefreshMinInterval: 10 * time.Second, Trust: oidcRules(is.URL())}
	})
}

func oidcName(is *testIssuer, sub string) string {
	u, _ := url.Parse(is.URL())
	return "oidc:" + u.Host + ":" + sub
}

func scopeURL(scopes ...string) string {
	return "/auth/token?" + url.Values{"service": {"slipway"}, "scope": scopes, "offline_token": {"true"}}.Encode()
}

func exchangeForm(idToken string, scopes ...string) string {
	return url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {idToken},
		"subject_token_type": {TokenTypeIDToken}, "service": {"slipway"}, "scope": {strings.Join(scopes, " ")}}.Encode()
}

var formHeader = []string{"Content-Type", "application/x-www-form-urlencoded"}

// errorOf is the message of a token endpoint's error answer.
func errorOf(t *testing.T, rec *httptest.ResponseRecorder) (msg, oauth string) {
	t.Helper()
	var body struct {
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) == 0 {
		t.Fatalf("error body %s (%v)", rec.Body, err)
	}
	return body.Errors[0].Message, body.Error
}

// docker login -u oidc with the ID token as password, then a push.
func TestOIDCDockerLogin(t *testing.T) {
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	is := newTestIssuer(t, clk.Now)
	s := newOIDCService(t, is, clk)
	h := engine(s)
	idt := is.sign(is.claims(testAudience))

	// docker login: no scope.
	if rec := serve(h, http.MethodGet, "/auth/token?service=slipway", "", basicHeader("oidc", idt)...); rec.Code != http.StatusOK {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	tr, code := tokenOf(t, h, http.MethodGet, scopeURL("repository:staging/acme/api:pull,push", "repository:staging/other:pull"), "", basicHeader("oidc", idt)...)
	if code != http.StatusOK {
		t.Fatalf("token: %d", code)
	}
	if tr.Scope != "repository:staging/acme/api:pull,push" || tr.RefreshToken != "" || tr.ExpiresIn != 300 {
		t.Fatalf("answer %+v: want push on staging/acme/api only, no refresh token, 300s", tr)
	}
	c, err := s.Verify(tr.Token)
	if err != nil {
		t.Fatal(err)
	}
	if want := oidcName(is, "repo:acme/api:ref:refs/heads/main"); c.Subject != want {
		t.Fatalf("subject %q, want %q", c.Subject, want)
	}
	bearer := []string{"Authorization", "Bearer " + tr.Token}
	if rec := serve(h, http.MethodPut, "/v2/staging/acme/api/manifests/v1", "", bearer...); rec.Code != http.StatusOK {
		t.Fatalf("push with the exchanged token: %d %s", rec.Code, rec.Body)
	}
	// A token lacking push is told to ask again (401 insufficient_scope),
	// as for users: only the next exchange knows what the ID token grants.
	pullOnly, _ := tokenOf(t, h, http.MethodGet, scopeURL("repository:staging/acme/api:pull"), "", basicHeader("oidc", idt)...)
	rec := serve(h, http.MethodPut, "/v2/staging/acme/api/manifests/v2", "", "Authorization", "Bearer "+pullOnly.Token)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("push with a pull token: %d %s %s", rec.Code, rec.Header(), rec.Body)
	}
	// The OAuth2 password grant takes it too.
	form := url.Values{"grant_type": {"password"}, "username": {"oidc"}, "password": {idt}, "service": {"slipway"}, "scope": {"repository:staging/acme/api:pull"}}
	if tr, code := tokenOf(t, h, http.MethodPost, "/auth/token", form.Encode(), formHeader...); code != http.StatusOK || tr.Scope != "repository:staging/acme/api:pull" {
		t.Fatalf("password grant: %d %+v", code, tr)
	}
}

// RFC 8693: the answer's fields, and malformed exchanges.
func TestOIDCTokenExchange(t *testing.T) {
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	is := newTestIssuer(t, clk.Now)
	s := newOIDCService(t, is, clk)
	h := engine(s)
	idt := is.sign(is.claims(testAudience))
	rec := serve(h, http.MethodPost, "/auth/token", exchangeForm(idt, "repository:staging/acme/api:push,pull"), formHeader...)
	if rec.Code != http.StatusOK {
		t.Fatalf("exchange: %d %s", rec.Code, rec.Body)
	}
	var raw map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &raw)
	if raw["issued_token_type"] != TokenTypeAccess || raw["token_type"] != "Bearer" || raw["access_token"] == "" ||
		raw["access_token"] != raw["token"] || raw["expires_in"] != float64(300) || raw["scope"] != "repository:staging/acme/api:push,pull" {
		t.Fatalf("answer %v", raw)
	}
	if _, ok := raw["refresh_token"]; ok {
		t.Fatal("a refresh token for an ID token")
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatal("no Cache-Control: no-store")
	}
	bad := []struct{ name, form, want string }{
		{"no subject", url.Values{"grant_type": {GrantTokenExchange}, "subject_token_type": {TokenTypeIDToken}}.Encode(), "needs subject_token"},
		{"type", url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {idt}, "subject_token_type": {"urn:ietf:params:oauth:token-type:saml2"}}.Encode(), "subject_token_type must be"},
		{"requested", url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {idt}, "subject_token_type": {TokenTypeJWT}, "requested_token_type": {TokenTypeIDToken}}.Encode(), "requested_token_type may only be"},
		{"actor", url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {idt}, "subject_token_type": {TokenTypeIDToken}, "actor_token": {"x"}}.Encode(), "actor_token"},
	}
	for _, b := range bad {
		rec := serve(h, http.MethodPost, "/auth/token", b.form, formHeader...)
		if msg, oauth := errorOf(t, rec); rec.Code != http.StatusBadRequest || oauth != "invalid_request" || !strings.Contains(msg, b.want) {
			t.Errorf("%s: %d %s %q", b.name, rec.Code, oauth, msg)
		}
	}
	// An API token is not what an ID token is exchanged for.
	rec = serve(h, http.MethodPost, "/auth/token", exchangeForm(idt, apiScope()), formHeader...)
	if msg, _ := errorOf(t, rec); rec.Code != http.StatusBadRequest || !strings.Contains(msg, "not exchanged for an API token") {
		t.Fatalf("api scope: %d %q", rec.Code, msg)
	}
}

// The access token lasts at most the ID token's remaining life.
func TestOIDCTokenLifeBoundedByIDToken(t *testing.T) {
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	is := newTestIssuer(t, clk.Now)
	s := newOIDCService(t, is, clk)
	h := engine(s)
	c := is.claims(testAudience)
	c["exp"] = clk.Now().Add(90 * time.Second).Unix()
	tr, code := tokenOf(t, h, http.MethodPost, "/auth/token", exchangeForm(is.sign(c), "repository:staging/acme/api:pull"), formHeader...)
	if code != http.StatusOK {
		t.Fatalf("exchange %d", code)
	}
	claims, err := s.Verify(tr.Token)
	if err != nil {
		t.Fatal(err)
	}
	idExp := time.Unix(c["exp"].(int64), 0)
	if tr.ExpiresIn > 90 || tr.ExpiresIn < 88 || claims.ExpiresAt.After(idExp) {
		t.Fatalf("expires_in %d, exp %s; the ID token expires at %s", tr.ExpiresIn, claims.ExpiresAt, idExp)
	}
	// A longer-lived ID token: token_ttl bounds it.
	c["exp"] = clk.Now().Add(time.Hour).Unix()
	if tr, _ := tokenOf(t, h, http.MethodGet, scopeURL("repository:staging/acme/api:pull"), "", basicHeader("oidc", is.sign(c))...); tr.ExpiresIn != 300 {
		t.Fatalf("expires_in %d, want token_ttl 300", tr.ExpiresIn)
	}
}

// Every refusal: its status and a message that says what was wrong, the
// same through docker's GET (401) and RFC 8693 (400 invalid_request).
func TestOIDCRefusals(t *testing.T) {
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	is := newTestIssuer(t, clk.Now)
	other := newTestIssuer(t, clk.Now) // trusted by nobody
	s := newOIDCService(t, is, clk)
	h := engine(s)
	// Warm the key cache, so that later refetches are bounded.
	if _, code := tokenOf(t, h, http.MethodGet, scopeURL(), "", basicHeader("oidc", is.sign(is.claims(testAudience)))...); code != http.StatusOK {
		t.Fatalf("good token: %d", code)
	}
	with := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := is.claims(testAudience)
		edit(c)
		return c
	}
	now := clk.Now()
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, is.claims(testAudience))
	hs.Header["kid"] = "rsa-1"
	hsToken, _ := hs.SignedString([]byte("secret"))
	is.addKey("ec-unpublished", false)
	unpublished := is.sign(is.claims(testAudience))
	is.addKey("rsa-1-impostor", false)
	impostor := is.sign(is.claims(testAudience), "rsa-1-impostor")
	impostor = reKID(t, impostor, "rsa-1") // a published kid, another key's signature
	is.mu.Lock()
	is.signingKID = "rsa-1"
	is.mu.Unlock()

	cases := []struct {
		name, token string
		want        []string
		not         []string
	}{
		{"wrong audience", is.sign(is.claims("https://elsewhere")), []string{`audience "https://elsewhere" is not accepted from issuer ` + is.URL()}, nil},
		{"untrusted issuer", other.sign(other.claims(testAudience)), []string{"untrusted issuer \"" + other.URL() + "\""}, nil},
		{"expired", is.sign(with(func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(-time.Minute).Unix()
		})),
			[]string{"the ID token expired at " + now.Add(-time.Minute).UTC().Format(time.RFC3339)}, nil},
		{"nbf soon", is.sign(with(func(c jwt.MapClaims) { c["nbf"] = now.Add(2 * time.Minute).Unix() })), []string{"not valid before"}, nil},
		{"nbf later", is.sign(with(func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Minute).Unix() })), []string{"not valid yet"}, nil},
		{"unknown kid", unpublished, []string{`signed with key id "ec-unpublished", which the issuer's key set does not list`}, nil},
		{"bad signature", impostor, []string{"signature does not verify"}, nil},
		{"hmac", hsToken, []string{"malformed ID token, or signed with an algorithm"}, nil},
		{"no rule", is.sign(with(func(c jwt.MapClaims) { c["ref"] = "refs/heads/feature" })),
			[]string{`no auth.oidc.trust rule matches`, `rule "push-main": ref="refs/heads/feature"`, `rule "release": ref="refs/heads/feature"`, `rule "wide": repository="acme/api"`},
			[]string{"refs/tags/v*", "refs/heads/main", "acme/*", "acme/wide"}},
		{"missing claim", is.sign(with(func(c jwt.MapClaims) { delete(c, "ref") })), []string{`rule "push-main": ref (missing)`}, nil},
		{"no sub", is.sign(with(func(c jwt.MapClaims) { delete(c, "sub") })), []string{"no sub claim"}, nil},
		{"not a jwt", "not-a-token", []string{"not an ID token"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(h, http.MethodGet, scopeURL("repository:staging/acme/api:pull"), "", basicHeader("oidc", tc.token)...)
			msg, _ := errorOf(t, rec)
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("GET: %d %q, want 401", rec.Code, msg)
			}
			rec = serve(h, http.MethodPost, "/auth/token", exchangeForm(tc.token, "repository:staging/acme/api:pull"), formHeader...)
			msg2, oauth := errorOf(t, rec)
			if rec.Code != http.StatusBadRequest || oauth != "invalid_request" || msg2 != msg {
				t.Errorf("exchange: %d %s %q, want 400 invalid_request %q", rec.Code, oauth, msg2, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q\nlacks %q", msg, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(msg, n) {
					t.Errorf("message %q\nshows the rule's %q", msg, n)
				}
			}
		})
	}
	if _, jwks := is.hits(); jwks > 2 {
		t.Errorf("the key set was fetched %d times within one refresh interval", jwks)
	}
}

// reKID rewrites a JWT's header kid (its signature then fails).
func reKID(t *testing.T, token, kid string) string {
	t.Helper()
	p := jwt.NewParser()
	tok, parts, err := p.ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	tok.Header["kid"] = kid
	hdr, _ := json.Marshal(tok.Header)
	return strings.Join([]string{base64.RawURLEncoding.EncodeToString(hdr), parts[1], parts[2]}, ".")
}

// A token accepted once is refused after it expires: no cache keeps it.
func TestOIDCReplayAfterExpiry(t *testing.T) {
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	is := newTestIssuer(t, clk.Now)
	s := newOIDCService(t, is, clk)
	h := apiEngine(s)
	idt := is.sign(is.claims(testAudience))
	if _, code := tokenOf(t, h, http.MethodGet, scopeURL("repository:staging/acme/api:pull"), "", basicHeader("oidc", idt)...); code != http.StatusOK {
		t.Fatalf("first use: %d", code)
	}
	clk.Add(5*time.Minute + time.Second)
	rec := serve(h, http.MethodGet, scopeURL("repository:staging/acme/api:pull"), "", basicHeader("oidc", idt)...)
	if msg, _ := errorOf(t, rec); rec.Code != http.StatusUnauthorized || !strings.Contains(msg, "expired") {
		t.Fatalf("replay: %d %q", rec.Code, msg)
	}
	rec = serve(h, http.MethodGet, "/api/v1/whoami", "", "Authorization", "Bearer "+idt)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "expired") {
		t.Fatalf("replay on /api/: %d %s", rec.Code, rec.Body)
	}
}

// Keys rotated at the issuer are picked up without a restart, at most one
// fetch per refresh interval whatever key ids tokens name.
func TestOIDCKeyRotation(t *testing.T) {
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	is := newTestIssuer(t, clk.Now)
	s := newOIDCService(t, is, clk)
	h := engine(s)
	get := func(idt string) *httptest.ResponseRecorder {
		return serve(h, http.MethodGet, scopeURL("repository:staging/acme/api:pull"), "", basicHeader("oidc", idt)...)
	}
	if rec := get(is.sign(is.claims(testAudience))); rec.Code != http.StatusOK {
		t.Fatalf("before rotation: %d %s", rec.Code, rec.Body)
	}
	is.rotate("ec-2") // ES256 from now on; rsa-1 withdrawn
	// Tokens naming unknown keys, many: one fetch at most in the interval.
	_, before := is.hits()
	for i := range 20 {
		c := is.claims(testAudience)
		is.addKey("junk-"+string(rune('a'+i)), false)
		if rec := get(is.sign(c)); rec.Code != http.StatusUnauthorized {
			t.Fatalf("junk key %d: %d", i, rec.Code)
		}
	}
	is.mu.Lock()
	is.signingKID = "ec-2"
	is.mu.Unlock()
	_, after := is.hits()
	if after-before > 1 {
		t.Fatalf("%d key set fetches for 20 unknown key ids within one interval", after-before)
	}
	// go-oidc stores a fetched set a moment after handing it to the
	// request that waited for it (and a request arriving in that moment
	// waits on the finished fetch): the next tries see it.
	eventually := func(what string, want int, idt string) {
		t.Helper()
		var rec *httptest.ResponseRecorder
		for range 100 {
			if rec = get(idt); rec.Code == want {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("%s: %d %s, want %d", what, rec.Code, rec.Body, want)
	}
	clk.Add(10 * time.Second)
	eventually("rotated key after the interval", http.StatusOK, is.sign(is.claims(testAudience)))
	// The withdrawn key no longer verifies once the set is refetched.
	clk.Add(10 * time.Second)
	eventually("withdrawn key", http.StatusUnauthorized, is.sign(is.claims(testAudience), "rsa-1"))
}

// An issuer that cannot be reached: exchanges answer 503 (at once, until
// the interval has passed), passwords still work, and it recovers.
func TestOIDCIssuerDown(t *testing.T) {
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	is := newTestIssuer(t, clk.Now)
	is.setDown(true)
	s := newOIDCService(t, is, clk)
	h := apiEngine(s)
	idt := is.sign(is.claims(testAudience))
	for range 3 {
		rec := serve(h, http.MethodPost, "/auth/token", exchangeForm(idt, "repository:staging/acme/api:pull"), formHeader...)
		msg, oauth := errorOf(t, rec)
		if rec.Code != http.StatusServiceUnavailable || oauth != "temporarily_unavailable" || !strings.Contains(msg, "cannot be reached") {
			t.Fatalf("exchange with the issuer down: %d %s %q", rec.Code, oauth, msg)
		}
		if rec := serve(h, http.MethodGet, "/api/v1/whoami", "", "Authorization", "Bearer "+idt); rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("/api/ with the issuer down: %d", rec.Code)
		}
	}
	if d, _ := is.hits(); d != 0 {
		t.Fatalf("discovery answered while down? %d", d)
	}
	if _, code := tokenOf(t, h, http.MethodGet, scopeURL("repository:staging/app:push"), "", basicHeader("ci", ciPass)...); code != http.StatusOK {
		t.Fatalf("password login with the issuer down: %d", code)
	}
	is.setDown(false)
	if rec := serve(h, http.MethodGet, scopeURL(), "", basicHeader("oidc", idt)...); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("retried before the interval: %d", rec.Code)
	}
	clk.Add(10 * time.Second)
	if rec := serve(h, http.MethodGet, scopeURL(), "", basicHeader("oidc", idt)...); rec.Code != http.StatusOK {
		t.Fatalf("after recovery: %d %s", rec.Code, rec.Body)
	}
	// Keys unreachable later: a token naming a new key gets 503; known keys go on verifying.
	is.setDown(true)
	clk.Add(10 * time.Second)
	is.addKey("ec-new", true)
	// (A request in the moment after the last fetch may share its outcome,
	// as go-oidc does: the next one fetches.)
	newKey := is.sign(is.claims(testAudience))
	var rec *httptest.ResponseRecorder
	for range 100 {
		if rec = serve(h, http.MethodGet, scopeURL(), "", basicHeader("oidc", newKey)...); rec.Code == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if msg, _ := errorOf(t, rec); rec.Code != http.StatusServiceUnavailable || !strings.Contains(msg, "(keys)") {
		t.Fatalf("new key, keys down: %d %q", rec.Code, msg)
	}
	if rec := serve(h, http.MethodGet, scopeURL(), "", basicHeader("oidc", is.sign(is.claims(testAudience), "rsa-1"))...); rec.Code != http.StatusOK {
		t.Fatalf("known key, issuer down: %d %s", rec.Code, rec.Body)
	}
	// Nothing listening at all.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	s2 := newTestService(t, func(o *Options) {
		o.Auth.OIDC = config.OIDC{Trust: oidcRules(dead.URL)}
	})
	c := is.claims(testAudience)
	c["iss"] = dead.URL
	rec = serve(engine(s2), http.MethodGet, scopeURL(), "", basicHeader("oidc", is.sign(c))...)
	if msg, _ := errorOf(t, rec); rec.Code != http.StatusServiceUnavailable || !strings.Contains(msg, dead.URL+" cannot be reached now") {
		t.Fatalf("no listener: %d %q", rec.Code, msg)
	}
}

// Claims in grants: only valid repository names are substituted; a rule
// granting push into an immutable stage gets no push there.
func TestOIDCGrants(t *testing.T) {
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	is := newTestIssuer(t, clk.Now)
	s := newOIDCService(t, is, clk)
	h := engine(s)
	scopeFor := func(edit func(jwt.MapClaims), scopes ...string) string {
		c := is.claims(testAudience)
		edit(c)
		tr, code := tokenOf(t, h, http.MethodGet, scopeURL(scopes...), "", basicHeader("oidc", is.sign(c))...)
		if code != http.StatusOK {
			t.Fatalf("exchange %d", code)
		}
		return tr.Scope
	}
	if got := scopeFor(func(c jwt.MapClaims) { c["repository"] = "acme/web" }, "repository:staging/acme/web-cache:push", "repository:staging/acme/api:push"); got != "repository:staging/acme/web-cache:push" {
		t.Fatalf("{repository} = acme/web: %q", got)
	}
	// Not a repository name: the grant is dropped, not widened.
	if got := scopeFor(func(c jwt.MapClaims) { c["repository"] = "acme/*" }, "repository:staging/acme/x:push"); got != "" {
		t.Fatalf("{repository} = acme/*: %q", got)
	}
	// Rules add up: a version tag of acme/api matches release (and not push-main).
	got := scopeFor(func(c jwt.MapClaims) { c["ref"] = "refs/tags/v1.2.0" }, "repository:staging/acme/api:pull,push,promote", "repository:production/acme/api:promote")
	if got != "repository:staging/acme/api:pull,promote repository:production/acme/api:promote" {
		t.Fatalf("release: %q", got)
	}
	// "*: push" reaches production only as pull: the stage is immutable.
	wide := func(c jwt.MapClaims) { c["repository"] = "acme/wide" }
	if got := scopeFor(wide, "repository:production/acme/wide:pull,push", "repository:staging/acme/wide:push"); got != "repository:production/acme/wide:pull repository:staging/acme/wide:push" {
		t.Fatalf("wide: %q", got)
	}
	c := is.claims(testAudience)
	wide(c)
	tr, _ := tokenOf(t, h, http.MethodGet, scopeURL("repository:production/acme/wide:pull,push"), "", basicHeader("oidc", is.sign(c))...)
	rec := serve(h, http.MethodPut, "/v2/production/acme/wide/manifests/v1", "", "Authorization", "Bearer "+tr.Token)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `immutable stage \"production\"`) {
		t.Fatalf("push into production: %d %s", rec.Code, rec.Body)
	}
}

// /api/ takes the ID token (Bearer, or Basic as oidc): the principal is
// the workload, and its grants are the rules'.
func TestOIDCAPI(t *testing.T) {
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	is := newTestIssuer(t, clk.Now)
	s := newOIDCService(t, is, clk)
	e := engine(s)
	e.GET("/api/v1/can", s.API, func(c *gin.Context) {
		p, _ := PrincipalFrom(c.Request.Context())
		perms, err := s.Permissions(c.Request.Context())
		if err != nil {
			c.String(http.StatusInternalServerError, err.Error())
			return
		}
		c.String(http.StatusOK, p.Name+" "+strings.Join(perms(c.Query("repo")), ","))
	})
	c := is.claims(testAudience)
	c["ref"], c["sub"] = "refs/tags/v1.0.0", "repo:acme/api:ref:refs/tags/v1.0.0"
	idt := is.sign(c)
	want := oidcName(is, "repo:acme/api:ref:refs/tags/v1.0.0")
	for _, hdr := range [][]string{{"Authorization", "Bearer " + idt}, basicHeader("oidc", idt)} {
		rec := serve(e, http.MethodGet, "/api/v1/can?repo=production/acme/api", "", hdr...)
		if rec.Code != http.StatusOK || rec.Body.String() != want+" promote" {
			t.Fatalf("%s: %d %q, want %q", hdr[1][:6], rec.Code, rec.Body, want+" promote")
		}
	}
	rec := serve(e, http.MethodGet, "/api/v1/can?repo=staging/acme/api", "", "Authorization", "Bearer "+idt)
	if got := strings.Fields(rec.Body.String()); len(got) != 2 || !slices.Equal(strings.Split(got[1], ","), []string{"pull", "promote"}) {
		t.Fatalf("staging: %q", rec.Body)
	}
	// A refusal says why.
	c["aud"] = "other"
	rec = serve(e, http.MethodGet, "/api/v1/can?repo=x", "", "Authorization", "Bearer "+is.sign(c))
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "audience") {
		t.Fatalf("wrong audience on /api/: %d %s", rec.Code, rec.Body)
	}
	// Another issuer's token is refused as such.
	other := newTestIssuer(t, clk.Now)
	rec = serve(e, http.MethodGet, "/api/v1/can?repo=x", "", "Authorization", "Bearer "+other.sign(other.claims(testAudience)))
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "untrusted issuer") {
		t.Fatalf("untrusted issuer on /api/: %d %s", rec.Code, rec.Body)
	}
	// Users' Basic credentials and API tokens still work beside it.
	if rec := serve(e, http.MethodGet, "/api/v1/can?repo=staging/app", "", basicHeader("ci", ciPass)...); rec.Code != http.StatusOK || rec.Body.String() != "ci pull,push" {
		t.Fatalf("ci: %d %s", rec.Code, rec.Body)
	}
	api, _ := tokenOf(t, e, http.MethodGet, "/auth/token?service=slipway&scope="+url.QueryEscape(apiScope()), "", basicHeader("ci", ciPass)...)
	if rec := serve(e, http.MethodGet, "/api/v1/can?repo=staging/app", "", "Authorization", "Bearer "+api.Token); rec.Code != http.StatusOK || rec.Body.String() != "ci pull,push" {
		t.Fatalf("ci's API token: %d %s", rec.Code, rec.Body)
	}
	reg, _ := tokenOf(t, e, http.MethodGet, scopeURL("repository:staging/app:pull"), "", basicHeader("ci", ciPass)...)
	if rec := serve(e, http.MethodGet, "/api/v1/can?repo=staging/app", "", "Authorization", "Bearer "+reg.Token); rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "registry token") {
		t.Fatalf("registry token on /api/: %d %s", rec.Code, rec.Body)
	}
}

// Without trust rules, "oidc" is an ordinary (here unknown) login name.
func TestOIDCOffByDefault(t *testing.T) {
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	is := newTestIssuer(t, clk.Now)
	s := newTestService(t, func(o *Options) { o.Now = clk.Now })
	h := engine(s)
	rec := serve(h, http.MethodGet, scopeURL(), "", basicHeader("oidc", is.sign(is.claims(testAudience)))...)
	if msg, _ := errorOf(t, rec); rec.Code != http.StatusUnauthorized || msg != "incorrect username or password" {
		t.Fatalf("%d %q", rec.Code, msg)
	}
	rec = serve(h, http.MethodPost, "/auth/token", exchangeForm(is.sign(is.claims(testAudience))), formHeader...)
	if msg, oauth := errorOf(t, rec); rec.Code != http.StatusBadRequest || oauth != "unsupported_grant_type" || !strings.Contains(msg, "trusts no ID tokens") {
		t.Fatalf("exchange without rules: %d %s %q", rec.Code, oauth, msg)
	}
	if d, j := is.hits(); d+j != 0 {
		t.Fatal("the issuer was asked")
	}
}

// The log names the workload and its chosen claims on success, and on a
// refusal what the rules wanted (which the caller is not told).
func TestOIDCLogs(t *testing.T) {
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	is := newTestIssuer(t, clk.Now)
	var buf syncBuffer
	s := newTestService(t, func(o *Options) {
		o.Now = clk.Now
		o.Logger = slog.New(slog.NewTextHandler(&buf, nil))
		o.Auth.OIDC = config.OIDC{Trust: oidcRules(is.URL()), LogClaims: []string{"repository", "ref", "workflow"}}
	})
	h := engine(s)
	if _, code := tokenOf(t, h, http.MethodGet, scopeURL(), "", basicHeader("oidc", is.sign(is.claims(testAudience)))...); code != http.StatusOK {
		t.Fatal(code)
	}
	c := is.claims(testAudience)
	c["ref"] = "refs/heads/feature"
	serve(h, http.MethodGet, scopeURL(), "", basicHeader("oidc", is.sign(c))...)
	log := buf.String()
	for _, want := range []string{"ID token accepted", "principal=" + oidcName(is, "repo:acme/api:ref:refs/heads/main"), "claim_repository=acme/api",
		"claim_ref=refs/heads/main", "claim_workflow=build", "rules=[push-main]",
		"ID token refused", `ref want \"refs/tags/v*\"`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "eyJ") {
		t.Error("a token is in the log")
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Exchanges in parallel from the start (run with -race): one discovery,
// one or two key fetches, every exchange served.
func TestOIDCConcurrent(t *testing.T) {
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	is := newTestIssuer(t, clk.Now)
	s := newOIDCService(t, is, clk)
	h := engine(s)
	first := is.sign(is.claims(testAudience))
	is.addKey("ec-2", true) // both published
	second := is.sign(is.claims(testAudience))
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				idt := first
				if (g+i)%2 == 0 {
					idt = second
				}
				if rec := serve(h, http.MethodGet, scopeURL("repository:staging/acme/api:pull"), "", basicHeader("oidc", idt)...); rec.Code != http.StatusOK {
					errs <- rec.Body.String()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if d, j := is.hits(); d != 1 || j > 2 {
		t.Errorf("discovery fetched %d times, keys %d times", d, j)
	}
}
