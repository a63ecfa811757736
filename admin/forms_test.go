package admin

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Issue 10, finding 4: a form over its limit is 413 (it was a 400 "could
// not be read" at login, and a 403 "form has expired" behind the session),
// and nothing is done.
func TestOversizedForms(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SeedApp("app", e.clock.Now())
	big := strings.Repeat("a", maxForm)

	b := e.browser()
	b.get("/admin/login")
	p := b.post("/admin/login", url.Values{"username": {"ops"}, "password": {opsPass}, "next": {"/admin/" + big}})
	wantStatus(t, p, http.StatusRequestEntityTooLarge)
	mustContain(t, p, "That form is too large", "Nothing was changed")

	b.login("ops", opsPass)
	for _, path := range []string{"/admin/promote", "/admin/rollback", "/admin/robots", "/admin/robots/revoke", "/admin/logout"} {
		p := b.post(path, url.Values{"source": {"staging/app:v2"}, "to": {"production"}, "confirmed": {"1"},
			"name": {"ci"}, "repos": {"*"}, "actions": {"pull"}, "reason": {big}})
		wantStatus(t, p, http.StatusRequestEntityTooLarge)
		mustContain(t, p, "That form is too large", "Nothing was changed")
	}
	if len(e.fake.Ledger()) != 0 {
		t.Fatalf("an oversized form promoted: %+v", e.fake.Ledger())
	}
	wantStatus(t, b.get("/admin/"), http.StatusOK) // still signed in
}
