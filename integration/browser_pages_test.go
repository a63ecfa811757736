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

	"github.com/gin-gonic/gin"
	"golang.org/x/crypto/bcrypt"

	"github.com/slipway/slipway/admin"
	"github.com/slipway/slipway/admin/admintest"
	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
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
	const user, pass = "ops", "browser-test-password"
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
	a := admin.New(admin.Options{
		Promote: fake, Accounts: accounts, SessionKey: accounts.DeriveKey("admin-session"),
		Ping: func(context.Context) error { return nil }, Version: "v0.9.0-dev", Logger: quiet,
		Started: now.Add(-26 * time.Hour),
	})
	gin.SetMode(gin.TestMode)
	e := gin.New()
	a.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)

	flow{base: srv.URL, user: user, pass: pass, app: "team/web", tag: "latest", digest: string(admintest.Digest("team/web-v2")), shots: true}.run(t, ctx)
}
