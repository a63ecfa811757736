package admin

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/slipway/slipway/config"
)

// fakeIdP is an OpenID provider with just the endpoints the flow uses:
// discovery, keys, an authorization endpoint that signs the configured
// person in at once, a token endpoint that checks the PKCE verifier, and
// an end_session endpoint. It records what Slipway sent.
type fakeIdP struct {
	t   *testing.T
	srv *httptest.Server
	key *rsa.PrivateKey
	now func() time.Time

	mu        sync.Mutex
	sub       string
	groups    []string
	name      string
	nonceFor  func(asked string) string // nil: the nonce asked for
	extra     map[string]any            // claims set over the usual ones
	auth      url.Values                // the last authorization request
	verifier  string                    // the last code_verifier
	challenge string
}

func newFakeIdP(t *testing.T, now func() time.Time) *fakeIdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIdP{t: t, key: key, now: now, sub: "u-1", name: "Ada Admin", groups: []string{"platform", "unrelated"}}
	m := http.NewServeMux()
	m.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		u := f.srv.URL
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token",
			"jwks_uri": u + "/keys", "end_session_endpoint": u + "/end_session",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	m.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	m.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f.mu.Lock()
		f.auth, f.challenge = q, q.Get("code_challenge")
		f.mu.Unlock()
		back, _ := url.Parse(q.Get("redirect_uri"))
		bq := url.Values{"code": {"code-1"}, "state": {q.Get("state")}}
		back.RawQuery = bq.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	})
	m.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.verifier = r.PostForm.Get("code_verifier")
		sum := sha256.Sum256([]byte(f.verifier))
		if r.PostForm.Get("code") != "code-1" || b64.EncodeToString(sum[:]) != f.challenge {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		nonce := f.auth.Get("nonce")
		if f.nonceFor != nil {
			nonce = f.nonceFor(nonce)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 300,
			"id_token": f.sign(map[string]any{"nonce": nonce, "name": f.name, "groups": f.groups, "sub": f.sub})})
	})
	f.srv = httptest.NewServer(m)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIdP) sign(claims map[string]any) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: f.key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		f.t.Fatal(err)
	}
	now := f.now()
	claims["iss"], claims["aud"], claims["iat"], claims["exp"] = f.srv.URL, "slipway", now.Unix(), now.Add(5*time.Minute).Unix()
	for k, v := range f.extra {
		claims[k] = v
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// oidcEnv is the admin with provider sign-in against a fake provider.
func oidcEnv(t *testing.T, edit func(*config.AdminOIDC)) (*env, *fakeIdP) {
	t.Helper()
	var idp *fakeIdP
	e := newEnv(t, func(o *Options) {
		idp = newFakeIdP(t, o.Now)
		c := config.AdminOIDC{Issuer: idp.srv.URL, Name: "Acme SSO", ClientID: "slipway", RedirectURL: "http://slipway.test/admin/oidc/callback",
			AdminGroups: []string{"platform"},
			Grants:      map[string][]config.Grant{"qa-team": {{Repos: "staging/*", Actions: []string{"pull", "promote"}}}}}
		if edit != nil {
			edit(&c)
		}
		o.OIDC = &OIDC{Config: c, Secret: "secret"}
	})
	return e, idp
}

// startOIDC follows the button to the provider and returns the
// callback's path and query the provider answered with.
func (b *browser) startOIDC() string {
	b.t.Helper()
	p := b.get("/admin/oidc/login")
	wantStatus(b.t, p, http.StatusSeeOther)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(p.location())
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || back.Path != config.AdminOIDCCallbackPath {
		b.t.Fatalf("provider answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return back.RequestURI()
}

// signInOIDC signs in through the provider and fails the test unless it
// worked.
func (b *browser) signInOIDC() {
	b.t.Helper()
	p := b.get(b.startOIDC())
	wantStatus(b.t, p, http.StatusOK)
	mustContain(b.t, p, `http-equiv="refresh"`, `url=/admin/`)
	b.get("/admin/") // for the CSRF token
}

func (b *browser) session() session {
	b.t.Helper()
	for _, c := range b.c.Jar.Cookies(mustURL(b.e.srv.URL + "/admin/")) {
		if c.Name == sessionCookie {
			s, err := b.e.admin.decodeSession(c.Value)
			if err != nil {
				b.t.Fatal(err)
			}
			return s
		}
	}
	b.t.Fatal("no session cookie")
	return session{}
}

func TestOIDCAdminGroupSignsIn(t *testing.T) {
	e, idp := oidcEnv(t, nil)
	b := e.browser()
	login := b.get("/admin/login")
	mustContain(t, login, `href="/admin/oidc/login"`, "Sign in with Acme SSO", `name="password"`)
	b.signInOIDC()
	host := strings.TrimPrefix(idp.srv.URL, "http://")
	s := b.session()
	if s.Kind != kindOIDC || s.User != "oidc:"+host+":u-1" || !reflect.DeepEqual(s.Groups, []string{"platform"}) {
		t.Fatalf("session %+v (groups the mapping does not name must be left out)", s)
	}
	ov := b.get("/admin/")
	wantStatus(t, ov, http.StatusOK)
	mustContain(t, ov, "Ada Admin (admin)", `title="signed in as oidc:`+host+`:u-1"`)
	wantStatus(t, b.get("/admin/robots"), http.StatusOK)

	idp.mu.Lock()
	q := idp.auth
	idp.mu.Unlock()
	if q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("state") == "" || q.Get("scope") != "openid profile email groups" || q.Get("client_id") != "slipway" {
		t.Fatalf("authorization request %v", q)
	}
}

func TestOIDCPKCEVerifierSent(t *testing.T) {
	e, idp := oidcEnv(t, nil)
	b := e.browser()
	b.signInOIDC()
	idp.mu.Lock()
	defer idp.mu.Unlock()
	sum := sha256.Sum256([]byte(idp.verifier))
	if len(idp.verifier) < 43 || b64.EncodeToString(sum[:]) != idp.challenge {
		t.Fatalf("verifier %q does not match challenge %q", idp.verifier, idp.challenge)
	}
	if strings.Contains(idp.auth.Encode(), idp.verifier) {
		t.Fatal("the verifier went to the authorization endpoint")
	}
}

func TestOIDCGroupMapping(t *testing.T) {
	e, idp := oidcEnv(t, func(c *config.AdminOIDC) {
		c.Grants["devs"] = []config.Grant{{Repos: "dev/*", Actions: []string{"pull", "push"}}}
	})
	idp.sub, idp.name, idp.groups = "u-2", "Quinn QA", []string{"qa-team", "devs", "qa-team"}
	b := e.browser()
	b.signInOIDC()
	s := b.session()
	if !reflect.DeepEqual(s.Groups, []string{"devs", "qa-team"}) {
		t.Fatalf("groups %v", s.Groups)
	}
	p := e.admin.oidcPrincipal(s)
	want := []config.Grant{{Repos: "dev/*", Actions: []string{"pull", "push"}}, {Repos: "staging/*", Actions: []string{"pull", "promote"}}}
	if p.Admin || !reflect.DeepEqual(p.Grants, want) {
		t.Fatalf("principal %+v, want grants %+v and no admin", p, want)
	}
	ov := b.get("/admin/")
	mustContain(t, ov, "Quinn QA")
	mustNotContain(t, ov, "(admin)", `href="/admin/robots"`)
	robots := b.get("/admin/robots")
	wantStatus(t, robots, http.StatusForbidden)
	mustContain(t, robots, "Only administrators manage robot accounts")

	// The mapping applies on every request: a group made admin later
	// makes the same session admin (its membership is from sign-in).
	e.admin.oidc.cfg.AdminGroups = []string{"platform", "devs"}
	wantStatus(t, b.get("/admin/robots"), http.StatusOK)

	// Nobody mapped: signed in, but nothing to do.
	idp.groups = []string{"elsewhere"}
	b2 := e.browser()
	b2.signInOIDC()
	if p := e.admin.oidcPrincipal(b2.session()); p.Admin || len(p.Grants) != 0 {
		t.Fatalf("unmapped person got %+v", p)
	}
}

func TestOIDCStateMismatch(t *testing.T) {
	e, _ := oidcEnv(t, nil)
	b := e.browser()
	back := mustURL(b.startOIDC())
	q := back.Query()
	q.Set("state", "forged-"+q.Get("state"))
	back.RawQuery = q.Encode()
	p := b.get(back.RequestURI())
	wantStatus(t, p, http.StatusBadRequest)
	mustContain(t, p, "Sign-in through Acme SSO failed", "state mismatch")
	wantStatus(t, b.get("/admin/"), http.StatusSeeOther) // not signed in
	// The flow is spent: even the right answer is refused now.
	back2 := mustURL(b.startOIDC())
	wantStatus(t, b.get(back2.RequestURI()), http.StatusOK)
	wantStatus(t, b.get(back2.RequestURI()), http.StatusBadRequest)
}

func TestOIDCCallbackWithoutFlow(t *testing.T) {
	e, _ := oidcEnv(t, nil)
	b := e.browser()
	back := b.startOIDC()
	other := e.browser() // another browser presents the answer
	p := other.get(back)
	wantStatus(t, p, http.StatusBadRequest)
	mustContain(t, p, "did not start a sign-in")
}

func TestOIDCNonceMismatch(t *testing.T) {
	e, idp := oidcEnv(t, nil)
	idp.nonceFor = func(asked string) string { return "replayed-" + asked }
	b := e.browser()
	p := b.get(b.startOIDC())
	wantStatus(t, p, http.StatusUnauthorized)
	mustContain(t, p, "nonce mismatch")
	wantStatus(t, b.get("/admin/"), http.StatusSeeOther) // not signed in
}

func TestOIDCExpiredIDToken(t *testing.T) {
	e, idp := oidcEnv(t, nil)
	b := e.browser()
	back := b.startOIDC()
	// The provider's clock is ten minutes behind: the token it signs is
	// expired by Slipway's.
	idp.now = func() time.Time { return e.clock.Now().Add(-10 * time.Minute) }
	p := b.get(back)
	wantStatus(t, p, http.StatusUnauthorized)
	mustContain(t, p, "did not verify")
}

func TestOIDCPasswordLoginOff(t *testing.T) {
	e, _ := oidcEnv(t, func(c *config.AdminOIDC) { f := false; c.PasswordLogin = &f })
	b := e.browser()
	login := b.get("/admin/login")
	wantStatus(t, login, http.StatusOK)
	mustContain(t, login, "Sign in with Acme SSO")
	mustNotContain(t, login, `name="password"`, `action="/admin/login"`)
	p := b.post("/admin/login", url.Values{"username": {"ops"}, "password": {opsPass}, "csrf": {"x"}})
	wantStatus(t, p, http.StatusForbidden)
	mustContain(t, p, "Password sign-in is switched off")
	for _, c := range b.c.Jar.Cookies(mustURL(e.srv.URL + "/admin/")) {
		if c.Name == sessionCookie {
			t.Fatal("a session was started")
		}
	}
}

func TestPasswordLoginStaysWithOIDC(t *testing.T) {
	e, _ := oidcEnv(t, nil)
	b := e.browser()
	b.login("ops", opsPass)
	mustContain(t, b.get("/admin/"), "ops (admin)")
}

func TestOIDCLogoutEndsProviderSession(t *testing.T) {
	e, idp := oidcEnv(t, nil)
	b := e.browser()
	b.signInOIDC()
	kept := false
	for _, c := range b.c.Jar.Cookies(mustURL(e.srv.URL + "/admin/")) {
		kept = kept || c.Name == idTokenCookie
	}
	if !kept {
		t.Fatal("no ID token kept for the logout")
	}
	out := b.post("/admin/logout", nil)
	// A page that moves on by itself (a redirect would break the form's
	// CSP, form-action 'self').
	wantStatus(t, out, http.StatusOK)
	m := regexp.MustCompile(`<meta http-equiv="refresh" content="0;url=([^"]+)">`).FindStringSubmatch(out.body)
	if m == nil {
		t.Fatalf("no refresh on the logout page:\n%s", out.body)
	}
	u := mustURL(html.UnescapeString(m[1]))
	if u.Scheme+"://"+u.Host != idp.srv.URL || u.Path != "/end_session" {
		t.Fatalf("logout goes to %q", u)
	}
	q := u.Query()
	if q.Get("post_logout_redirect_uri") != "http://slipway.test/admin/login?why=out" || q.Get("client_id") != "slipway" || strings.Count(q.Get("id_token_hint"), ".") != 2 {
		t.Fatalf("end_session query %v", q)
	}
	wantStatus(t, b.get("/admin/"), http.StatusSeeOther)
	for _, c := range b.c.Jar.Cookies(mustURL(e.srv.URL + "/admin/")) {
		if c.Name == idTokenCookie || c.Name == sessionCookie {
			t.Errorf("cookie %s kept after logout", c.Name)
		}
	}
}

func TestOIDCSessionVoidWhenProviderChanges(t *testing.T) {
	e, _ := oidcEnv(t, nil)
	b := e.browser()
	b.signInOIDC()
	e.admin.oidc.binding = "oidc:another-issuer"
	p := b.get("/admin/")
	wantStatus(t, p, http.StatusSeeOther)
	if !strings.Contains(p.location(), "why=changed") {
		t.Fatalf("location %q", p.location())
	}
}

func TestOIDCProviderDown(t *testing.T) {
	e, idp := oidcEnv(t, nil)
	idp.srv.Close()
	b := e.browser()
	p := b.get("/admin/oidc/login")
	wantStatus(t, p, http.StatusServiceUnavailable)
	mustContain(t, p, "Acme SSO cannot be reached")
	b.login("ops", opsPass) // passwords still work
}

func TestOIDCAuthorizedParty(t *testing.T) {
	e, idp := oidcEnv(t, nil)
	idp.extra = map[string]any{"aud": []string{"slipway", "other"}, "azp": "other"}
	b := e.browser()
	p := b.get(b.startOIDC())
	wantStatus(t, p, http.StatusUnauthorized)
	mustContain(t, p, "issued to another party")

	idp.extra["azp"] = "slipway"
	b.signInOIDC()
	wantStatus(t, b.get("/admin/robots"), http.StatusOK)
}

func TestOIDCProviderRefuses(t *testing.T) {
	e, _ := oidcEnv(t, nil)
	b := e.browser()
	back := mustURL(b.startOIDC())
	q := back.Query()
	q.Del("code")
	q.Set("error", "access_denied")
	q.Set("error_description", "<b>not you</b>")
	back.RawQuery = q.Encode()
	p := b.get(back.RequestURI())
	wantStatus(t, p, http.StatusUnauthorized)
	mustContain(t, p, "Acme SSO refused the sign-in (access_denied: &lt;b&gt;not you&lt;/b&gt;)")
	wantStatus(t, b.get("/admin/"), http.StatusSeeOther)
}
