package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/slipway/slipway/admin/admintest"
	"github.com/slipway/slipway/storage"
)

var promoteButton = regexp.MustCompile(`(?s)<tr[^>]*data-tag="([^"]+)".*?</tr>`)

// rowOf returns the table row of a tag on the repository page.
func rowOf(t *testing.T, p page, tag string) string {
	t.Helper()
	for _, m := range promoteButton.FindAllStringSubmatch(p.body, -1) {
		if m[1] == tag {
			return m[0]
		}
	}
	t.Fatalf("no row for %q in\n%s", tag, p.body)
	return ""
}

func TestRepositoryPageStagesSideBySide(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SeedApp("team/app", e.clock.Now())
	b := e.browser()
	b.login("ops", opsPass)
	p := b.get("/admin/repositories/team/app")
	wantStatus(t, p, http.StatusOK)
	mustContain(t, p, "<h1>team/app</h1>", "4 tags", "3 not in every stage", "11.8 MiB", "linux/amd64")
	v1 := rowOf(t, p, "v1")
	if strings.Contains(v1, "Promote") || strings.Count(v1, `class="cell present"`) != 2 {
		t.Errorf("v1 is in both stages, without a button:\n%s", v1)
	}
	v2 := rowOf(t, p, "v2")
	if !strings.Contains(v2, `value="staging/team/app:v2|production|`+string(admintest.Digest("team/app-v2"))+`"`) || !strings.Contains(v2, `class="cell missing"`) || !strings.Contains(v2, `class="gap"`) {
		t.Errorf("v2 lacks production and has a button:\n%s", v2)
	}
	short := shortDigest(admintest.Digest("team/app-v2"))
	if !strings.Contains(v2, short) || !strings.Contains(v2, `data-copy="`+string(admintest.Digest("team/app-v2"))+`"`) {
		t.Errorf("v2 lacks its short digest %s and copy button:\n%s", short, v2)
	}
	// A full repository name leads to the app's page.
	r := b.get("/admin/repositories/production/team/app?tag=v")
	if r.status != http.StatusMovedPermanently || r.location() != "/admin/repositories/team/app?tag=v" {
		t.Fatalf("full name: %d %q", r.status, r.location())
	}
	// The filter keeps matching tags only.
	f := b.get("/admin/repositories/team/app?tag=lat")
	mustContain(t, f, `data-tag="latest"`)
	mustNotContain(t, f, `data-tag="v1"`)
}

func TestPromoteConfirmAndRollback(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SeedApp("app", e.clock.Now())
	b := e.browser()
	b.login("rel", relPass)
	b.get("/admin/repositories/app")
	d := string(admintest.Digest("app-v2"))
	// What the row's button sends.
	c := b.post("/admin/promote", url.Values{"pick": {"staging/app:v2|production|" + d}})
	wantStatus(t, c, http.StatusOK)
	mustContain(t, c, "Promote staging/app:v2?", "production/app:v2", "the tag does not exist yet", d, `name="confirmed" value="1"`,
		`name="expect_previous" value="none"`, "fixed tag")
	form := url.Values{"source": {"staging/app:v2"}, "digest": {d}, "to": {"production"}, "tag": {"v2"}}
	if len(e.fake.Ledger()) != 0 {
		t.Fatal("the confirmation step promoted")
	}
	form.Set("confirmed", "1")
	form.Set("expect_previous", "none")
	form.Set("reason", "release 2")
	done := b.post("/admin/promote", form)
	wantStatus(t, done, http.StatusSeeOther)
	if !strings.HasPrefix(done.location(), "/admin/repositories/app?done=1") {
		t.Fatalf("went to %q", done.location())
	}
	p := b.get(done.location())
	mustContain(t, p, "Promoted staging/app:v2 to production/app:v2")
	v2 := rowOf(t, p, "v2")
	if strings.Contains(v2, "Promote") || strings.Count(v2, `class="cell present"`) != 2 || !strings.Contains(v2, "by rel") {
		t.Fatalf("v2 not in production after promotion:\n%s", v2)
	}
	h := b.get("/admin/history?repository=app")
	mustContain(t, h, "production/app</a>:<strong>v2</strong>", "release 2")
	// v2 is a fixed tag that did not exist before: nothing to roll back.
	mustNotContain(t, h, `class="rollback"`)

	// latest moves (production had v1 there): promote, then roll back.
	b.get("/admin/repositories/app")
	c = b.post("/admin/promote", url.Values{"pick": {"staging/app:latest|production|" + d}})
	wantStatus(t, c, http.StatusOK)
	v1 := string(admintest.Digest("app-v1"))
	mustContain(t, c, "Promote staging/app:latest?", `name="expect_previous" value="`+v1+`"`)
	form = url.Values{"source": {"staging/app:latest"}, "digest": {d}, "to": {"production"}, "tag": {"latest"},
		"confirmed": {"1"}, "expect_previous": {v1}, "reason": {"release 2 as latest"}}
	wantStatus(t, b.post("/admin/promote", form), http.StatusSeeOther)
	h = b.get("/admin/history?repository=app")
	mustContain(t, h, "release 2 as latest", "Roll back")
	rb := b.post("/admin/rollback", url.Values{"id": {"2"}})
	wantStatus(t, rb, http.StatusOK)
	mustContain(t, rb, "Roll back production/app:latest?", "Goes back to", shortDigest(admintest.Digest("app-v1")))
	rb = b.post("/admin/rollback", url.Values{"id": {"2"}, "confirmed": {"1"}, "reason": {"bad build"}})
	wantStatus(t, rb, http.StatusSeeOther)
	h = b.get(rb.location())
	mustContain(t, h, "Rolled back production/app:latest", "rolled_back", "bad build")
	after := b.get("/admin/repositories/app")
	var back bool
	for _, m := range promoteButton.FindAllStringSubmatch(after.body, -1) {
		if m[1] == "latest" && strings.Contains(m[0], d) {
			back = strings.Contains(m[0], `aria-label="Promote to production"`)
		}
	}
	if !back {
		t.Fatalf("latest still names v2 in production after the rollback:\n%s", after.body)
	}
	// The overview lists both.
	mustContain(t, b.get("/admin/"), "rolled_back", "promoted")
}

func TestPromoteRefusalShownInPage(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SeedApp("app", e.clock.Now())
	// production/app:v2 names something else: v2 is a fixed tag.
	e.fake.Push("production/app", "v2", admintest.Digest("other"), e.clock.Now())
	b := e.browser()
	b.login("ops", opsPass)
	b.get("/admin/")
	form := url.Values{"source": {"staging/app:v2"}, "digest": {string(admintest.Digest("app-v2"))}, "to": {"production"}, "tag": {"v2"}}
	c := b.post("/admin/promote", form)
	mustContain(t, c, "it will be re-pointed")
	form.Set("confirmed", "1")
	form.Set("expect_previous", string(admintest.Digest("other")))
	p := b.post("/admin/promote", form)
	wantStatus(t, p, http.StatusConflict)
	mustContain(t, p, "v2 is a fixed tag in production and already names another image", "Promote staging/app:v2?")
	// A stale confirmation (the target moved meanwhile) is refused too.
	form.Set("tag", "v9")
	form.Set("expect_previous", string(admintest.Digest("other")))
	p = b.post("/admin/promote", form)
	wantStatus(t, p, http.StatusConflict)
	mustContain(t, p, "changed since you looked")
	// Nonsense gets a page in words.
	p = b.post("/admin/promote", url.Values{"source": {"nope"}})
	wantStatus(t, p, http.StatusBadRequest)
	mustContain(t, p, "That promotion request is not valid")
}

func TestNoPromotePermission(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SeedApp("app", e.clock.Now())
	e.fake.AddRecord(admintest.Record("1", "app", "v1", e.clock.Now()))
	b := e.browser()
	b.login("dev", devPass)
	p := b.get("/admin/repositories/app")
	wantStatus(t, p, http.StatusOK)
	mustNotContain(t, p, "Promote to", `action="/admin/promote"`)
	mustNotContain(t, b.get("/admin/history"), "Roll back")
	form := url.Values{"source": {"staging/app:v2"}, "digest": {string(admintest.Digest("app-v2"))}, "to": {"production"}, "tag": {"v2"}}
	for _, confirmed := range []string{"", "1"} {
		form.Set("confirmed", confirmed)
		r := b.post("/admin/promote", form)
		wantStatus(t, r, http.StatusForbidden)
		mustContain(t, r, "may not promote from staging/app to the production stage")
	}
	r := b.post("/admin/rollback", url.Values{"id": {"1"}, "confirmed": {"1"}})
	wantStatus(t, r, http.StatusForbidden)
	if len(e.fake.Ledger()) != 1 {
		t.Fatalf("ledger changed: %+v", e.fake.Ledger())
	}
}

// The service has the last word: a page that believed the caller may
// promote still shows the service's refusal.
func TestServiceRefusalWins(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SeedApp("app", e.clock.Now())
	b := e.browser()
	b.login("rel", relPass)
	b.get("/admin/")
	form := url.Values{"source": {"staging/app:v2"}, "digest": {string(admintest.Digest("app-v2"))}, "to": {"production"}, "tag": {"v2"}, "confirmed": {"1"}}
	e.fake.Promoters["rel"] = false
	r := b.post("/admin/promote", form)
	wantStatus(t, r, http.StatusForbidden)
}

func TestRepositoriesSearchAndPages(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 250 {
		e.fake.Push(fmt.Sprintf("staging/svc%03d", i), "v1", admintest.Digest("x"), e.clock.Now())
	}
	b := e.browser()
	b.login("dev", devPass)
	p := b.get("/admin/repositories")
	wantStatus(t, p, http.StatusOK)
	if n := strings.Count(p.body, "<tr><td><a "); n != reposPerPage {
		t.Fatalf("%d rows on the first page", n)
	}
	next := regexp.MustCompile(`href="([^"]+)" rel="next"`).FindStringSubmatch(p.body)
	if next == nil {
		t.Fatal("no next page link")
	}
	p2 := b.get(strings.ReplaceAll(next[1], "&amp;", "&"))
	mustContain(t, p2, "staging/svc100", "First page")
	mustNotContain(t, p2, "staging/svc099")
	s := b.get("/admin/repositories?q=svc12")
	if n := strings.Count(s.body, "<tr><td><a "); n != 10 { // svc120..svc129
		t.Fatalf("search found %d", n)
	}
	mustContain(t, b.get("/admin/repositories?q=nothing"), "No repository matches.")
	ov := b.get("/admin/")
	mustContain(t, ov, `<a href="/admin/repositories?stage=staging">250</a>`)
}

func TestRobotsAdminOnly(t *testing.T) {
	e := newEnv(t, nil)
	dev := e.browser()
	dev.login("dev", devPass)
	mustNotContain(t, dev.get("/admin/"), `href="/admin/robots"`)
	p := dev.get("/admin/robots")
	wantStatus(t, p, http.StatusForbidden)
	mustContain(t, p, "Only administrators manage robot accounts.")
	wantStatus(t, dev.post("/admin/robots", url.Values{"name": {"x"}, "repos": {"*"}, "actions": {"pull"}}), http.StatusForbidden)
	wantStatus(t, dev.post("/admin/robots/revoke", url.Values{"name": {"x"}}), http.StatusForbidden)

	ops := e.browser()
	ops.login("ops", opsPass)
	mustContain(t, ops.get("/admin/"), `href="/admin/robots"`)
	mustContain(t, ops.get("/admin/robots"), "No robot accounts yet.")
	c := ops.post("/admin/robots", url.Values{"name": {"ci"}, "description": {"the CI"}, "repos": {"staging/*\nqa/*"},
		"actions": {"pull", "push"}, "expires_in": {"720h"}})
	wantStatus(t, c, http.StatusCreated)
	secret := regexp.MustCompile(`<code id="secret">([^<]+)</code>`).FindStringSubmatch(c.body)
	if secret == nil {
		t.Fatalf("no secret in\n%s", c.body)
	}
	host := strings.TrimPrefix(e.srv.URL, "http://")
	mustContain(t, c, "shown only this once", "docker login "+host+" -u &#39;robot$ci&#39; --password-stdin", "2026-03-31")
	if _, err := e.auth.Login(t.Context(), "robot$ci", secret[1], "127.0.0.1"); err != nil {
		t.Fatalf("the shown secret does not log in: %v", err)
	}
	l := ops.get("/admin/robots")
	mustContain(t, l, "robot$ci", "the CI", "staging/*</code>: pull, push", "qa/*", "2026-03-31", "by ops")
	mustNotContain(t, l, secret[1])
	// Refusals in words, the form kept.
	dup := ops.post("/admin/robots", url.Values{"name": {"ci"}, "repos": {"*"}, "actions": {"pull"}})
	wantStatus(t, dup, http.StatusConflict)
	mustContain(t, dup, "The robot was not created: a robot named &#34;ci&#34; exists.")
	bad := ops.post("/admin/robots", url.Values{"name": {"Bad Name"}, "repos": {"*"}, "actions": {"pull"}})
	wantStatus(t, bad, http.StatusBadRequest)
	mustContain(t, bad, "name must be", `value="Bad Name"`)
	noAct := ops.post("/admin/robots", url.Values{"name": {"x"}, "repos": {"*"}})
	wantStatus(t, noAct, http.StatusBadRequest)
	// Revoke.
	r := ops.post("/admin/robots/revoke", url.Values{"name": {"ci"}})
	wantStatus(t, r, http.StatusSeeOther)
	mustContain(t, ops.get(r.location()), "Revoked robot$ci", "No robot accounts yet.")
	gone := ops.post("/admin/robots/revoke", url.Values{"name": {"ci"}})
	wantStatus(t, gone, http.StatusNotFound)
	mustContain(t, gone, "There is no robot named robot$ci")
}

func TestNotFoundAndForbiddenPages(t *testing.T) {
	e := newEnv(t, nil)
	anon := e.browser()
	// Before login nothing is revealed: unknown paths lead to the login.
	wantStatus(t, anon.get("/admin/no/such/page"), http.StatusSeeOther)
	b := e.browser()
	b.login("dev", devPass)
	p := b.get("/admin/no/such/page")
	wantStatus(t, p, http.StatusNotFound)
	mustContain(t, p, "Page not found", "There is nothing at /admin/no/such/page", "Back to the overview")
	p = b.get("/admin/repositories/ghost")
	wantStatus(t, p, http.StatusNotFound)
	mustContain(t, p, "No stage has a repository for &#34;ghost&#34;")
	p = b.post("/admin/rollback", url.Values{"id": {"42"}})
	wantStatus(t, p, http.StatusNotFound)
	mustContain(t, p, "no ledger record 42")
	p = b.get("/admin/robots")
	wantStatus(t, p, http.StatusForbidden)
	mustContain(t, p, "You may not do this")
}

func TestFailuresInWordsNoInternals(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SeedApp("app", e.clock.Now())
	b := e.browser()
	b.login("ops", opsPass)
	e.fake.FailTags = errors.New("open /var/lib/slipway/secret-path: input/output error")
	p := b.get("/admin/repositories/app")
	wantStatus(t, p, http.StatusInternalServerError)
	mustContain(t, p, "Something went wrong")
	mustNotContain(t, p, "secret-path", "goroutine", ".go:")
	e.fake.FailTags = fmt.Errorf("s3: %w", storage.ErrUnavailable)
	p = b.get("/admin/repositories/app")
	wantStatus(t, p, http.StatusServiceUnavailable)
	mustContain(t, p, "Storage is unavailable")
	mustNotContain(t, p, "s3:")
}

func TestStorageDownOnOverview(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Ping = func(ctx context.Context) error { return errors.New("dial tcp 10.0.0.7:9000: refused") }
	})
	b := e.browser()
	b.login("dev", devPass)
	p := b.get("/admin/")
	wantStatus(t, p, http.StatusOK)
	mustContain(t, p, `class="bad" id="storage-health">not reachable`)
	mustNotContain(t, p, "10.0.0.7")
}

func TestStaticAssets(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	css := b.get("/admin/static/style.css")
	wantStatus(t, css, http.StatusOK)
	if !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") || !strings.Contains(css.body, "@media (max-width: 600px)") {
		t.Fatalf("css: %q", css.header.Get("Content-Type"))
	}
	js := b.get("/admin/static/app.js")
	wantStatus(t, js, http.StatusOK)
	mustContain(t, js, "clipboard")
	mustContain(t, b.get("/admin/login"), `name="viewport" content="width=device-width, initial-scale=1"`)
}
