package admin

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/slipway/slipway/admin/admintest"
)

// deleteButton is the Delete button of repo:tag on the repository page.
func deleteButton(repo, tag, d string) string {
	return `name="pick" value="` + repo + `|` + tag + `|` + d + `" class="delete"`
}

func TestDeleteTagConfirmAndDelete(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SeedApp("app", e.clock.Now())
	b := e.browser()
	b.login("ops", opsPass)
	v1, v2 := string(admintest.Digest("app-v1")), string(admintest.Digest("app-v2"))
	p := b.get("/admin/repositories/app")
	// Buttons in staging's cells, none in production's (immutable).
	mustContain(t, p, `action="/admin/tags/delete"`, deleteButton("staging/app", "v2", v2), deleteButton("staging/app", "latest", v2), deleteButton("staging/app", "v1", v1))
	mustNotContain(t, p, `value="production/app|`)

	c := b.post("/admin/tags/delete", url.Values{"pick": {"staging/app|v2|" + v2}})
	wantStatus(t, c, http.StatusOK)
	mustContain(t, c, "Delete the tag staging/app:v2?", v2, "Only this tag goes", `name="confirmed" value="1"`, `name="repo" value="staging/app"`)
	if d, ok, _ := e.fake.TagDigest(t.Context(), "staging/app", "v2"); !ok || string(d) != v2 {
		t.Fatal("the confirmation step deleted")
	}
	done := b.post("/admin/tags/delete", url.Values{"repo": {"staging/app"}, "tag": {"v2"}, "digest": {v2}, "confirmed": {"1"}})
	wantStatus(t, done, http.StatusSeeOther)
	if done.location() != "/admin/repositories/app?deleted=staging%3Av2" {
		t.Fatalf("went to %q", done.location())
	}
	after := b.get(done.location())
	mustContain(t, after, "Deleted the tag staging/app:v2.")
	mustNotContain(t, after, `data-tag="v2"`)
	// The digest's other tag stays.
	if latest := rowOf(t, after, "latest"); !strings.Contains(latest, deleteButton("staging/app", "latest", v2)) {
		t.Fatalf("latest (same digest) is gone from staging:\n%s", latest)
	}
	// The message cannot be made up: latest exists, so no claim.
	mustNotContain(t, b.get("/admin/repositories/app?deleted=staging:latest"), "Deleted the tag")

	// A confirmation gone stale (the tag moved meanwhile): refused in words.
	e.fake.Push("staging/app", "v1", admintest.Digest("rebuilt"), e.clock.Now())
	stale := b.post("/admin/tags/delete", url.Values{"repo": {"staging/app"}, "tag": {"v1"}, "digest": {v1}, "confirmed": {"1"}})
	wantStatus(t, stale, http.StatusConflict)
	mustContain(t, stale, "staging/app:v1 changed since you looked", "Delete the tag staging/app:v1?")
	gone := b.post("/admin/tags/delete", url.Values{"repo": {"staging/app"}, "tag": {"v2"}, "digest": {v2}, "confirmed": {"1"}})
	wantStatus(t, gone, http.StatusNotFound)
	mustContain(t, gone, "does not exist")
}

func TestDeleteTagRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SeedApp("app", e.clock.Now())
	v1 := string(admintest.Digest("app-v1"))
	ops := e.browser()
	ops.login("ops", opsPass)
	// Immutable stage: refused even to an admin, confirmed or not.
	for _, confirmed := range []string{"", "1"} {
		p := ops.post("/admin/tags/delete", url.Values{"pick": {"production/app|v1|" + v1}, "confirmed": {confirmed}})
		wantStatus(t, p, http.StatusForbidden)
		mustContain(t, p, "production/app is in the immutable stage production: nobody deletes tags there")
	}
	// A forged form (no CSRF token of this session) changes nothing.
	p := ops.post("/admin/tags/delete", url.Values{"csrf": {"wrong"}, "repo": {"staging/app"}, "tag": {"v1"}, "digest": {v1}, "confirmed": {"1"}})
	wantStatus(t, p, http.StatusForbidden)
	mustContain(t, p, "Nothing was changed")
	// Nonsense gets a page in words.
	p = ops.post("/admin/tags/delete", url.Values{"repo": {"staging/app"}, "tag": {"bad tag"}, "digest": {v1}})
	wantStatus(t, p, http.StatusBadRequest)
	mustContain(t, p, "That delete request is not valid")

	// Without delete permission: no buttons, and a refusal.
	dev := e.browser()
	dev.login("dev", devPass)
	mustNotContain(t, dev.get("/admin/repositories/app"), `class="delete"`, `action="/admin/tags/delete"`)
	r := dev.post("/admin/tags/delete", url.Values{"repo": {"staging/app"}, "tag": {"v1"}, "digest": {v1}, "confirmed": {"1"}})
	wantStatus(t, r, http.StatusForbidden)
	mustContain(t, r, "may not delete tags of staging/app")
	if d, ok, _ := e.fake.TagDigest(t.Context(), "staging/app", "v1"); !ok || string(d) != v1 {
		t.Fatal("a refused delete deleted")
	}
	// A grant is enough (the fake's Deleters stand for delete on staging).
	e.fake.Deleters["dev"] = true
	mustContain(t, dev.get("/admin/repositories/app"), deleteButton("staging/app", "v1", v1))
}
