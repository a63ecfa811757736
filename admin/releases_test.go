package admin

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/slipway/slipway/admin/admintest"
	"github.com/slipway/slipway/promote"
)

func TestReleaseCreateListDetailRollback(t *testing.T) {
	e := newEnv(t, nil)
	gatedApp(e, "api")
	e.fake.SeedApp("worker", e.clock.Now())
	b := e.browser()
	b.login("rel", relPass)
	l := b.get("/admin/releases")
	wantStatus(t, l, http.StatusOK)
	mustContain(t, l, `href="/admin/releases" aria-current="page">Releases</a>`, "No releases yet.", `<option value="production"`)

	// api:latest fails its gate: nothing moves, the failures are listed
	// and the form keeps what was typed.
	form := url.Values{"to": {"production"}, "images": {"staging/api:latest\nstaging/worker:latest"}, "reason": {"1.4"}}
	r := b.post("/admin/releases", form)
	wantStatus(t, r, http.StatusConflict)
	v2 := string(admintest.Digest("api-v2"))
	mustContain(t, r, `<p class="error" role="alert">Nothing was released: the gates of production refused these images.</p>`,
		"<li><code>staging/api:latest</code>: <code>signed_by</code>: no signature by key ci-2026 over "+v2+"</li>",
		"staging/api:latest\nstaging/worker:latest</textarea>", `value="1.4"`, "<details class=\"card new-release\" open>")
	if len(e.fake.Ledger()) != 0 || len(e.fake.ReleaseList()) != 0 {
		t.Fatalf("a refused release moved something: %+v", e.fake.Ledger())
	}
	// Nonsense is refused in words.
	r = b.post("/admin/releases", url.Values{"to": {"production"}, "images": {"a b c"}})
	wantStatus(t, r, http.StatusBadRequest)
	mustContain(t, r, "A release needs a target stage and one image a line")

	// api:v1 passes (signed by ci-2026): both move, as one release.
	form.Set("images", "staging/api:v1 latest\n\nstaging/worker:latest")
	r = b.post("/admin/releases", form)
	wantStatus(t, r, http.StatusSeeOther)
	if r.location() != "/admin/releases/rel-1?done=1" {
		t.Fatalf("went to %q", r.location())
	}
	d := b.get(r.location())
	wantStatus(t, d, http.StatusOK)
	api1, w2 := admintest.Digest("api-v1"), admintest.Digest("worker-v2")
	mustContain(t, d, "Released 2 images to production.", "<h1>Release rel-1</h1>", `id="release-state">complete`,
		"<code>staging/api:v1</code>", "production/api</a>:<strong>latest</strong>", "signed: ci-2026",
		"<code>staging/worker:latest</code>", shortDigest(w2), `action="/admin/releases/rollback"`, `name="id" value="rel-1"`)
	if got := e.fake.Ledger(); len(got) != 2 || got[0].Release != "rel-1" || got[0].Digest != api1 {
		t.Fatalf("ledger after the release: %+v", got)
	}
	l = b.get("/admin/releases")
	mustContain(t, l, `<tr data-release="rel-1" class="state-complete">`, `<td><a href="/admin/releases/rel-1">rel-1</a></td>`,
		"<td>production</td>", "<td>complete</td>", "<td>2</td>", "<td>rel</td>")
	// The ledger links its members to the release, with their keys.
	h := b.get("/admin/history")
	mustContain(t, h, `<a href="/admin/releases/rel-1" class="small release-link">release rel-1</a>`, "signed: ci-2026")

	// Roll back: the button asks first, then the service is called.
	c := b.post("/admin/releases/rollback", url.Values{"id": {"rel-1"}})
	wantStatus(t, c, http.StatusOK)
	mustContain(t, c, "Roll back release rel-1?", "<code>production/api:latest</code>", `name="confirmed" value="1"`)
	if len(e.fake.ReleaseList()) != 1 {
		t.Fatal("the confirmation step rolled back")
	}
	done := b.post("/admin/releases/rollback", url.Values{"id": {"rel-1"}, "confirmed": {"1"}, "reason": {"bad"}})
	wantStatus(t, done, http.StatusSeeOther)
	if done.location() != "/admin/releases/rel-2?done=1" {
		t.Fatalf("went to %q", done.location())
	}
	rels := e.fake.ReleaseList()
	if len(rels) != 2 || rels[1].RollbackOf != "rel-1" || rels[1].Reason != "bad" || len(rels[1].Members) != 2 {
		t.Fatalf("releases after the rollback: %+v", rels)
	}
	d = b.get(done.location())
	mustContain(t, d, "Rolled back release rel-1", `<a href="/admin/releases/rel-1">release rel-1</a>`, "rolled_back")
	mustContain(t, b.get("/admin/releases"), `<td class="opt"><a href="/admin/releases/rel-1">rel-1</a></td>`)
}

func TestReleaseRollbackRefusals(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SeedApp("api", e.clock.Now())
	b := e.browser()
	b.login("rel", relPass)
	b.get("/admin/releases")
	r := b.post("/admin/releases", url.Values{"to": {"production"}, "images": {"staging/api:latest"}})
	wantStatus(t, r, http.StatusSeeOther)
	// production/api:latest moves on after the release: its rollback is
	// refused, in words, in the confirmation page; nothing changes.
	e.fake.Push("production/api", "latest", admintest.Digest("hotfix"), e.clock.Now())
	p := b.post("/admin/releases/rollback", url.Values{"id": {"rel-1"}, "confirmed": {"1"}})
	wantStatus(t, p, http.StatusConflict)
	mustContain(t, p, `<p class="error" role="alert">production/api:latest has moved since release rel-1: nothing was rolled back</p>`,
		"Roll back release rel-1?")
	if n := len(e.fake.ReleaseList()); n != 1 {
		t.Fatalf("%d releases after a refused rollback", n)
	}
	wantStatus(t, b.post("/admin/releases/rollback", url.Values{"id": {"rel-9"}}), http.StatusNotFound)
	wantStatus(t, b.get("/admin/releases/rel-9"), http.StatusNotFound)
	// Without the CSRF token nothing happens.
	p = b.post("/admin/releases/rollback", url.Values{"id": {"rel-1"}, "confirmed": {"1"}, "csrf": {"forged"}})
	if p.status == http.StatusSeeOther || p.status == http.StatusOK {
		t.Fatalf("a forged form was accepted: %d", p.status)
	}

	// An account that may only look sees no button, and is refused.
	dev := e.browser()
	dev.login("dev", devPass)
	d := dev.get("/admin/releases/rel-1")
	wantStatus(t, d, http.StatusOK)
	mustNotContain(t, d, `action="/admin/releases/rollback"`)
	f := dev.post("/admin/releases/rollback", url.Values{"id": {"rel-1"}, "confirmed": {"1"}})
	wantStatus(t, f, http.StatusForbidden)
	mustContain(t, f, "Release rel-1 cannot be rolled back by your account")
	c := dev.post("/admin/releases", url.Values{"to": {"production"}, "images": {"staging/api:v2"}})
	wantStatus(t, c, http.StatusForbidden)
	mustContain(t, c, "you may not promote staging/api to production")
}

func TestReleasePagesOff(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Releases, o.Gates = nil, nil })
	e.fake.SeedApp("app", e.clock.Now())
	e.fake.AddRelease(promote.Release{ID: "rel-1", Stage: "production", State: promote.ReleaseComplete})
	b := e.browser()
	b.login("ops", opsPass)
	p := b.get("/admin/")
	mustNotContain(t, p, `href="/admin/releases"`)
	wantStatus(t, b.get("/admin/releases"), http.StatusNotFound)
	wantStatus(t, b.get("/admin/releases/rel-1"), http.StatusNotFound)
	r := b.get("/admin/repositories/app")
	mustNotContain(t, r, "/digests/")
	wantStatus(t, b.get("/admin/repositories/staging/app/digests/"+string(admintest.Digest("app-v1"))), http.StatusNotFound)
	if !strings.Contains(r.body, "<h1>app</h1>") {
		t.Fatal("repository page broken without gates")
	}
}
