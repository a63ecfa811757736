package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"
	"golang.org/x/crypto/bcrypt"

	"github.com/slipway/slipway/admin"
	"github.com/slipway/slipway/admin/admintest"
	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gate"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/storage/fs"
)

// TestAdminBrowserPages walks the flow in Chromium through the
// admin pages served in this process: the real token service (accounts,
// sessions, robots on a folder) and the in-memory promotion service of
// admintest, with a few repositories and a ledger to show. It needs no
// registry, so it checks the pages, the browser plumbing and the phone
// layout on their own; TestAdminBrowserDocker walks the same flow on the
// real server.
func TestAdminBrowserPages(t *testing.T) {
	ctx := newBrowser(t)
	srv, user, pass := fakeAdmin(t, nil)
	flow{base: srv, user: user, pass: pass, app: "team/web", tag: "latest", digest: string(admintest.Digest("team/web-v2")), shots: true}.run(t, ctx)
}

// fakeAdmin serves the admin pages on the real token service (one admin
// account) and admintest's promotion service, seeded with a few
// repositories and a ledger; seed adds to the fake. It returns the base
// URL and the account.
func fakeAdmin(t *testing.T, seed func(*admintest.Fake)) (base, user, pass string) {
	user, pass = "ops", "browser-test-password"
	dir := t.TempDir()
	store, err := fs.New(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	ac := config.Default().Auth
	ac.SigningKey = filepath.Join(dir, "token.pem")
	ac.Users = []config.User{{Name: user, PasswordHash: string(hash), Admin: true}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	accounts, err := auth.New(context.Background(), store, auth.Options{Auth: ac, Stages: config.Default().Stages, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(accounts.Close)

	now := time.Now().UTC()
	fake := admintest.New(time.Now)
	fake.SeedApp("team/web", now)
	for i, app := range []string{"team/api", "team/worker", "billing/invoices", "search/indexer"} {
		fake.SeedApp(app, now.Add(-time.Duration(i+1)*24*time.Hour))
		rec := admintest.Record(fmt.Sprint(100+i), app, "v1", now.Add(-time.Duration(i+1)*20*time.Hour))
		rec.Reason = "weekly release"
		fake.AddRecord(rec)
	}
	if seed != nil {
		seed(fake)
	}
	a := admin.New(admin.Options{
		Promote: fake, Accounts: accounts, Gates: fake, Releases: fake, SessionKey: accounts.DeriveKey("admin-session"),
		Ping: func(context.Context) error { return nil }, Version: "v0.9.0-dev", Logger: quiet,
		Started: now.Add(-26 * time.Hour),
	})
	gin.SetMode(gin.TestMode)
	e := gin.New()
	a.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv.URL, user, pass
}

// TestAdminBrowserGatesAndReleases checks in Chromium, at both widths,
// the gate badges (a failed one opened without JavaScript's help: it is
// a <details>), the evidence page and a release rolled back from its
// page.
func TestAdminBrowserGatesAndReleases(t *testing.T) {
	ctx := newBrowser(t)
	v1, v2 := admintest.Digest("team/api-v1"), admintest.Digest("team/api-v2")
	base, user, pass := fakeAdmin(t, func(f *admintest.Fake) {
		f.SetStageGates("production", config.Gates{SignedBy: []config.GateKey{{Name: "ci-2026", Key: "pem"}}})
		f.SetGates("staging/team/api", v1, []promote.StageGateStatus{{Stage: "production", Result: gate.Result{
			Evidence: []gate.Proof{{Kind: gate.KindSignature, Subject: v1, Manifest: admintest.Digest("sig"), KeyID: "ci-2026", Via: "referrers"}}}}})
		f.SetGates("staging/team/api", v2, []promote.StageGateStatus{{Stage: "production", Result: gate.Result{Failures: []gate.Failure{
			{Gate: "signed_by", Subject: v2, Message: "no signature by key ci-2026 over " + string(v2)},
			{Gate: "attestations", Subject: v2, Message: "no https://slsa.dev/provenance/v1 attestation signed by ci-2026 for " + string(v2)},
		}}}})
		f.SetEvidence("staging/team/api", v2, []gate.Proof{
			{Kind: gate.KindSignature, Subject: v2, Manifest: admintest.Digest("sig-other"), Via: "tag"},
		})
	})
	pageRun(t, ctx, "signing in",
		chromedp.Navigate(base+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), pass),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#logout")))

	row := `tr[data-tag="v2"][data-digest="` + string(v2) + `"]`
	pageRun(t, ctx, "opening the repository",
		chromedp.Navigate(base+"/admin/repositories/team/api"),
		chromedp.WaitVisible(chromedp.CSS(row+" details.gate.fail")))
	wantText(t, ctx, "✓ production gates", "✗ production: signed_by, attestations")
	checkWidths(t, ctx, "repository-gates")
	pageRun(t, ctx, "opening the failed badge",
		chromedp.Click(chromedp.CSS(row+" details.gate.fail summary")),
		chromedp.WaitVisible(chromedp.CSS(row+" details.gate.fail li")))
	wantText(t, ctx, "no signature by key ci-2026 over "+string(v2))

	pageRun(t, ctx, "following the evidence link",
		chromedp.Click(chromedp.CSS(row+" a.evidence")),
		chromedp.WaitVisible(chromedp.CSS("#proofs")))
	wantText(t, ctx, "Evidence of staging/team/api", "verifies under no configured key", "✗ production: refused", "attestations")
	checkWidths(t, ctx, "evidence")

	pageRun(t, ctx, "opening Releases",
		chromedp.Navigate(base+"/admin/releases"),
		chromedp.WaitVisible(chromedp.CSS("#releases")),
		chromedp.Click(chromedp.CSS("details.new-release summary")),
		chromedp.WaitVisible(chromedp.CSS(`textarea[name="images"]`)),
		chromedp.SendKeys(chromedp.CSS(`textarea[name="images"]`), "staging/team/api:latest\nstaging/team/worker:latest"),
		chromedp.Click(chromedp.CSS("#create-release")),
		chromedp.WaitVisible(chromedp.CSS("#gate-failures")))
	wantText(t, ctx, "staging/team/api:latest: signed_by: no signature by key ci-2026")
	checkWidths(t, ctx, "release-refused")
	pageRun(t, ctx, "releasing what passes",
		chromedp.SetValue(chromedp.CSS(`textarea[name="images"]`), "staging/team/api:v1 latest\nstaging/team/worker:latest"),
		chromedp.Click(chromedp.CSS("#create-release")),
		chromedp.WaitVisible(chromedp.CSS("#members")))
	wantText(t, ctx, "Released 2 images to production.", "signed: ci-2026", "production/team/worker:latest")
	checkWidths(t, ctx, "release")
	pageRun(t, ctx, "rolling the release back",
		chromedp.Click(chromedp.CSS("#rollback-release")),
		chromedp.WaitVisible(chromedp.CSS("#confirm")),
		chromedp.Click(chromedp.CSS("#confirm")),
		chromedp.WaitVisible(chromedp.CSS("p.flash")))
	wantText(t, ctx, "Rolled back release rel-1", "rolled_back")
	pageRun(t, ctx, "opening the list",
		chromedp.Navigate(base+"/admin/releases"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-release="rel-2"]`)))
	checkWidths(t, ctx, "releases")
}
