package admin

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/crypto/bcrypt"

	"github.com/slipway/slipway/admin/admintest"
	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/storage/fs"
)

// Accounts of the test token service: ops is an admin, rel may promote
// (through the fake's promoters), dev may only look.
const (
	opsPass = "ops-password"
	relPass = "rel-password"
	devPass = "dev-password"
)

// clock is a settable fake time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is an admin on a real token service and the fake promoter, behind
// a real HTTP server.
type env struct {
	t     testing.TB
	clock *clock
	auth  *auth.Service
	fake  *admintest.Fake
	admin *Admin
	srv   *httptest.Server
	pings int
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newEnv(tb testing.TB, edit func(*Options)) *env {
	tb.Helper()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	dir := tb.TempDir()
	store, err := fs.New(filepath.Join(dir, "store"))
	if err != nil {
		tb.Fatal(err)
	}
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			tb.Fatal(err)
		}
		return string(h)
	}
	a := config.Default().Auth
	a.SigningKey = filepath.Join(dir, "keys", "token.pem")
	a.Lockout = config.Lockout{MaxFailures: 3, AddressMaxFailures: 100, Window: time.Minute}
	a.Users = []config.User{
		{Name: "ops", PasswordHash: hash(opsPass), Admin: true},
		{Name: "rel", PasswordHash: hash(relPass), Grants: []config.Grant{{Repos: "*", Actions: []string{"pull", "promote"}}}},
		{Name: "dev", PasswordHash: hash(devPass), Grants: []config.Grant{{Repos: "*", Actions: []string{"pull"}}}},
	}
	svc, err := auth.New(context.Background(), store, auth.Options{Auth: a, Stages: config.Default().Stages, Logger: quiet, Now: clk.Now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(svc.Close)
	e := &env{t: tb, clock: clk, auth: svc, fake: admintest.New(clk.Now)}
	e.fake.Promoters["rel"] = true
	opts := Options{
		Promote: e.fake, Accounts: svc, Tags: e.fake, Gates: e.fake, Releases: e.fake, SessionKey: svc.DeriveKey("admin-session"),
		Ping:    func(context.Context) error { e.pings++; return nil },
		Version: "v0.test", Logger: quiet, Now: clk.Now, Started: clk.Now().Add(-90 * time.Minute),
	}
	if edit != nil {
		edit(&opts)
	}
	e.admin = New(opts)
	gin.SetMode(gin.TestMode)
	g := gin.New()
	e.admin.Register(g)
	e.srv = httptest.NewServer(g)
	tb.Cleanup(e.srv.Close)
	return e
}

// browser is a client with cookies that does not follow redirects, so
// tests see each answer.
type browser struct {
	t    testing.TB
	e    *env
	c    *http.Client
	csrf string // the last page's CSRF token
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	body   string
	header http.Header
}

func (p page) location() string { return p.header.Get("Location") }

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, body: string(body), header: resp.Header}
	if m := csrfRE.FindStringSubmatch(p.body); m != nil {
		b.csrf = m[1]
	}
	return p
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.e.srv.URL+path, nil)
	return b.do(req)
}

// post sends a form; the CSRF token of the last page is added unless the
// form has one.
func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// login signs in and fails the test unless it worked.
func (b *browser) login(user, pass string) {
	b.t.Helper()
	b.get("/admin/login")
	p := b.post("/admin/login", url.Values{"username": {user}, "password": {pass}})
	if p.status != http.StatusSeeOther || p.location() != "/admin/" {
		b.t.Fatalf("login %s: %d %q\n%s", user, p.status, p.location(), p.body)
	}
	b.get("/admin/") // for the CSRF token
}

func mustContain(tb testing.TB, p page, subs ...string) {
	tb.Helper()
	for _, s := range subs {
		if !strings.Contains(p.body, s) {
			tb.Fatalf("page (status %d) lacks %q:\n%s", p.status, s, p.body)
		}
	}
}

func mustNotContain(tb testing.TB, p page, subs ...string) {
	tb.Helper()
	for _, s := range subs {
		if strings.Contains(p.body, s) {
			tb.Fatalf("page (status %d) has %q:\n%s", p.status, s, p.body)
		}
	}
}

func wantStatus(tb testing.TB, p page, status int) {
	tb.Helper()
	if p.status != status {
		tb.Fatalf("status %d, want %d; location %q\n%s", p.status, status, p.location(), p.body)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

var (
	_ Promoter   = (*admintest.Fake)(nil)
	_ TagDeleter = (*admintest.Fake)(nil)
	_ Gates      = (*admintest.Fake)(nil)
	_ Releases   = (*admintest.Fake)(nil)
	_ Promoter   = (*promote.Service)(nil)
	_ TagDeleter = (*promote.Service)(nil)
	_ Gates      = (*promote.Service)(nil)
	_ Releases   = (*promote.Service)(nil)
	_ Accounts   = (*auth.Service)(nil)
)
