package admin

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/admin/admintest"
	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
)

func TestLoginOverviewLogout(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	p := b.get("/admin/")
	wantStatus(t, p, http.StatusSeeOther)
	if p.location() != "/admin/login" {
		t.Fatalf("location %q", p.location())
	}
	login := b.get("/admin/login")
	wantStatus(t, login, http.StatusOK)
	mustContain(t, login, `name="username"`, `name="password"`, `name="csrf"`)
	for h, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
		"Cache-Control":           "no-store",
	} {
		if got := login.header.Get(h); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	p = b.post("/admin/login", url.Values{"username": {"ops"}, "password": {opsPass}})
	wantStatus(t, p, http.StatusSeeOther)
	var sess *http.Cookie
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == sessionCookie {
			sess = c
		}
	}
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Secure || sess.Path != "/admin/" {
		t.Fatalf("session cookie %+v", sess)
	}
	ov := b.get("/admin/")
	wantStatus(t, ov, http.StatusOK)
	mustContain(t, ov, "Overview", "staging", "production", "reachable", "v0.test", "1 hour 30 minutes", "ops (admin)", "No promotions yet")
	if e.pings != 1 {
		t.Errorf("storage pinged %d times", e.pings)
	}
	out := b.post("/admin/logout", nil)
	wantStatus(t, out, http.StatusSeeOther)
	if out.location() != "/admin/login?why=out" {
		t.Fatalf("logout went to %q", out.location())
	}
	mustContain(t, b.get("/admin/login?why=out"), "You have signed out")
	if p := b.get("/admin/"); p.status != http.StatusSeeOther {
		t.Fatalf("after logout: %d", p.status)
	}
}

func TestSessionCookieSecureWithHTTPSPublicURL(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.PublicURL = "https://registry.example.com" })
	b := e.browser()
	b.get("/admin/login")
	// The test server is plain HTTP, so the jar will not send a Secure
	// cookie back: look at the Set-Cookie itself.
	p := b.post("/admin/login", url.Values{"username": {"ops"}, "password": {opsPass}})
	wantStatus(t, p, http.StatusSeeOther)
	if sc := p.header.Values("Set-Cookie"); len(sc) == 0 || !strings.Contains(strings.Join(sc, "\n"), "Secure") {
		t.Fatalf("Set-Cookie %q lacks Secure", sc)
	}
}

func TestLoginBadPassword(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.get("/admin/login")
	p := b.post("/admin/login", url.Values{"username": {"ops"}, "password": {"wrong"}})
	wantStatus(t, p, http.StatusUnauthorized)
	mustContain(t, p, "Incorrect username or password.", `value="ops"`)
	mustNotContain(t, p, "wrong")
	if strings.Contains(strings.Join(p.header.Values("Set-Cookie"), ""), sessionCookie+"=") {
		t.Fatal("a failed login set a session")
	}
	p = b.post("/admin/login", url.Values{"username": {"nobody"}, "password": {"x"}})
	wantStatus(t, p, http.StatusUnauthorized)
	p = b.post("/admin/login", url.Values{"username": {""}, "password": {""}})
	wantStatus(t, p, http.StatusBadRequest)
}

func TestLoginThrottled(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.get("/admin/login")
	for range 3 {
		wantStatus(t, b.post("/admin/login", url.Values{"username": {"ops"}, "password": {"wrong"}}), http.StatusUnauthorized)
	}
	// Locked now, the right password included.
	p := b.post("/admin/login", url.Values{"username": {"ops"}, "password": {opsPass}})
	wantStatus(t, p, http.StatusTooManyRequests)
	mustContain(t, p, "Too many failed sign-in attempts. Wait 1 minute and try again.")
	if p.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	e.clock.Add(61 * time.Second)
	b.login("ops", opsPass)
}

func TestLoginFormCSRF(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	// No login cookie: a form posted from another site.
	p := b.post("/admin/login", url.Values{"username": {"ops"}, "password": {opsPass}, "csrf": {"forged"}})
	wantStatus(t, p, http.StatusForbidden)
	mustContain(t, p, "The sign-in form had expired")
	b.get("/admin/login")
	p = b.post("/admin/login", url.Values{"username": {"ops"}, "password": {opsPass}, "csrf": {"forged"}})
	wantStatus(t, p, http.StatusForbidden)
}

func TestCSRFRejected(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SeedApp("app", e.clock.Now())
	b := e.browser()
	b.login("ops", opsPass)
	for _, tc := range []struct{ path, csrf string }{
		{"/admin/promote", "wrong"},
		{"/admin/promote", ""},
		{"/admin/rollback", "wrong"},
		{"/admin/robots", "wrong"},
		{"/admin/robots/revoke", "wrong"},
		{"/admin/logout", ""},
	} {
		p := b.post(tc.path, url.Values{"csrf": {tc.csrf}, "source": {"staging/app:v2"}, "digest": {string(admintest.Digest("app-v2"))},
			"to": {"production"}, "confirmed": {"1"}, "name": {"ci"}, "repos": {"*"}, "actions": {"pull"}})
		wantStatus(t, p, http.StatusForbidden)
		mustContain(t, p, "This form has expired or did not come from this site", "Nothing was changed")
	}
	if len(e.fake.Ledger()) != 0 {
		t.Fatalf("a forged form promoted: %+v", e.fake.Ledger())
	}
	wantStatus(t, b.get("/admin/"), http.StatusOK) // still signed in
}

func TestSessionExpired(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.SessionTTL = time.Hour })
	b := e.browser()
	b.login("ops", opsPass)
	e.clock.Add(59 * time.Minute)
	wantStatus(t, b.get("/admin/repositories"), http.StatusOK)
	e.clock.Add(2 * time.Minute)
	p := b.get("/admin/repositories?q=x")
	wantStatus(t, p, http.StatusSeeOther)
	loc, _ := url.Parse(p.location())
	if loc.Path != "/admin/login" || loc.Query().Get("why") != "expired" || loc.Query().Get("next") != "/admin/repositories?q=x" {
		t.Fatalf("went to %q", p.location())
	}
	lp := b.get(p.location())
	mustContain(t, lp, "Your session has expired. Please sign in again.", `value="/admin/repositories?q=x"`)
	// A post with an expired session changes nothing either.
	wantStatus(t, b.post("/admin/logout", nil), http.StatusSeeOther)
	// Signing in again goes back where the person was.
	p = b.post("/admin/login", url.Values{"username": {"ops"}, "password": {opsPass}, "next": {"/admin/repositories?q=x"}})
	if p.location() != "/admin/repositories?q=x" {
		t.Fatalf("after login: %d %q", p.status, p.location())
	}
}

func TestSessionTampered(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.login("dev", devPass)
	u, _ := url.Parse(e.srv.URL + "/admin/")
	var forged string
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			payload, sig, _ := strings.Cut(c.Value, ".")
			body, _ := b64.DecodeString(payload)
			// Claim to be ops, with dev's signature.
			body = []byte(strings.Replace(string(body), `"u":"dev"`, `"u":"ops"`, 1))
			forged = b64.EncodeToString(body) + "." + sig
		}
	}
	b = e.browser()
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: forged, Path: "/admin/"}})
	wantStatus(t, b.get("/admin/"), http.StatusSeeOther)
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/admin/history?x=1":   "/admin/history?x=1",
		"//evil.example/":      "/admin/",
		"https://evil.example": "/admin/",
		"/admin/\\evil":        "/admin/",
		"":                     "/admin/",
		"/v2/":                 "/admin/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
	e := newEnv(t, nil)
	b := e.browser()
	b.get("/admin/login")
	p := b.post("/admin/login", url.Values{"username": {"ops"}, "password": {opsPass}, "next": {"//evil.example/x"}})
	if p.location() != "/admin/" {
		t.Fatalf("went to %q", p.location())
	}
}

// A robot signed in to the pages is out as soon as it is revoked: the
// account is looked up on every request.
func TestRevokedRobotSessionEnds(t *testing.T) {
	e := newEnv(t, nil)
	adminCtx := auth.WithPrincipal(context.Background(), auth.Principal{Name: "ops", Admin: true})
	created, err := e.auth.CreateRobotAccount(adminCtx, auth.CreateRobotRequest{Name: "viewer",
		Grants: []config.Grant{{Repos: "*", Actions: []string{"pull"}}}})
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.login(created.Login, created.Secret)
	wantStatus(t, b.get("/admin/repositories"), http.StatusOK)
	if err := e.auth.RevokeRobotAccount(adminCtx, "viewer"); err != nil {
		t.Fatal(err)
	}
	p := b.get("/admin/repositories")
	wantStatus(t, p, http.StatusSeeOther)
	if !strings.Contains(p.location(), "why=gone") {
		t.Fatalf("went to %q", p.location())
	}
	mustContain(t, b.get(p.location()), "Your account no longer exists")
	// Re-created under the same name: the old session does not come back.
	if _, err := e.auth.CreateRobotAccount(adminCtx, auth.CreateRobotRequest{Name: "viewer",
		Grants: []config.Grant{{Repos: "*", Actions: []string{"pull"}}}}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, b.get("/admin/repositories"), http.StatusSeeOther)
}

func TestAdminWithoutSlashRedirects(t *testing.T) {
	e := newEnv(t, nil)
	p := e.browser().get("/admin")
	if p.status/100 != 3 || !strings.HasSuffix(p.location(), "/admin/") {
		t.Fatalf("GET /admin: %d %q", p.status, p.location())
	}
}
