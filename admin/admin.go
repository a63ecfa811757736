// Package admin serves Slipway's web pages under /admin/: every stage of a
// repository side by side, promotion and rollback from the browser, the
// ledger, and robot accounts. Pages are rendered on the server
// (html/template, templates and assets embedded); every action is a plain
// form post, a little JavaScript only adds copy buttons and confirmations.
//
// Sessions are signed cookies, not server state, because replicas are
// stateless (see session.go). The promotion service and the token service
// enforce every permission themselves; the pages only hide what the caller
// may not do.
package admin

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gate"
	"github.com/slipway/slipway/gc"
	"github.com/slipway/slipway/internal/origin"
	"github.com/slipway/slipway/promote"
)

// Promoter is what the pages need of the promotion service
// (*promote.Service). Every method reads the caller from the context and
// enforces its permissions, answering *promote.Error for refusals.
type Promoter interface {
	Promote(ctx context.Context, req promote.Request) (promote.Record, bool, error)
	Rollback(ctx context.Context, id, reason string) (promote.Record, error)
	History(ctx context.Context, q promote.Query) (promote.Page, error)
	Get(ctx context.Context, id string) (promote.Record, error)
	Repositories(ctx context.Context, q promote.RepositoryQuery) (promote.RepositoryPage, error)
	// TagDigest: what repo:tag names now (ok false: no such tag).
	TagDigest(ctx context.Context, repo, tag string) (digest.Digest, bool, error)
	// AppTags: an app's tags in every stage, by stage name (a stage
	// without the repository has no entry).
	AppTags(ctx context.Context, app string) (map[string][]promote.TagInfo, error)
	StageCounts(ctx context.Context) (map[string]int, error)
	Stages() []config.Stage
	CanPromote(ctx context.Context, sourceRepo, toStage string) bool
	CanRollback(ctx context.Context, rec promote.Record) bool
}

// TagDeleter deletes tags for the pages (*promote.Service). DeleteTag
// enforces the caller's permissions and the immutable stages itself,
// answering *promote.Error for refusals; CanDeleteTag only decides which
// buttons to show.
type TagDeleter interface {
	DeleteTag(ctx context.Context, repo, tag string, expect digest.Digest) error
	CanDeleteTag(ctx context.Context, repo string) bool
}

// Gates shows what the promotion gates say of a digest (*promote.Service).
// Both enforce the caller's pull permission on repo (a 404 without it);
// a gate that does not pass is a Failure in the verdict, not an error.
type Gates interface {
	// GateStatus: the verdict of every gated stage repo's stage promotes
	// into (nil when none is gated).
	GateStatus(ctx context.Context, repo string, d digest.Digest) ([]promote.StageGateStatus, error)
	// Evidence: every signature and attestation attached to d in repo,
	// with the configured key each verifies under ("" for none).
	Evidence(ctx context.Context, repo string, d digest.Digest) ([]gate.Proof, error)
}

// Releases is what the release pages need of the promotion service
// (*promote.Service). Every method enforces the caller's permissions,
// answering *promote.Error for refusals; CanRollbackRelease only decides
// whether to show the button.
type Releases interface {
	CreateRelease(ctx context.Context, req promote.ReleaseRequest) (promote.Release, error)
	GetRelease(ctx context.Context, id string) (promote.Release, error)
	Releases(ctx context.Context, limit int, cursor string) (promote.ReleasePage, error)
	RollbackRelease(ctx context.Context, id, reason string) (promote.Release, error)
	CanRollbackRelease(ctx context.Context, rel promote.Release) bool
}

// Accounts is what the pages need of the token service (*auth.Service).
type Accounts interface {
	Login(ctx context.Context, name, password, clientIP string) (auth.Principal, error)
	Lookup(ctx context.Context, name string) (auth.Principal, string, error)
	CreateRobotAccount(ctx context.Context, req auth.CreateRobotRequest) (auth.CreatedRobot, error)
	ListRobotAccounts(ctx context.Context) ([]auth.RobotView, error)
	RevokeRobotAccount(ctx context.Context, name string) error
}

// Options configure the pages.
type Options struct {
	Promote  Promoter
	Accounts Accounts
	// Tags deletes tags (nil: no Delete buttons).
	Tags TagDeleter
	// Gates shows gate badges and the evidence pages (nil: neither).
	Gates Gates
	// Releases serves the release pages (nil: none, and no menu entry).
	Releases Releases
	// SessionKey signs session cookies (at least 32 bytes); every replica
	// must use the same one. The server derives it from http.secret, or
	// from the token signing key (auth.Service.DeriveKey).
	SessionKey []byte
	// OIDC adds sign-in through an OpenID provider (nil: passwords only).
	OIDC *OIDC
	// SessionTTL is how long a login lasts (default 12h).
	SessionTTL time.Duration
	// PublicURL ("https://registry.example.com"): an https URL makes the
	// cookie Secure, and its host goes into the `docker login` line.
	PublicURL string
	// Ping checks that storage answers (nil: not shown).
	Ping func(ctx context.Context) error
	// LastGC is the newest finished garbage collection's report (ok
	// false: none yet; nil: the card is not shown).
	LastGC  func(ctx context.Context) (rep gc.Report, ok bool, err error)
	Version string
	Started time.Time // uptime is measured from it (zero: from New)
	Logger  *slog.Logger
	Now     func() time.Time // tests pass a fake clock
}

// Admin serves the pages. Build it with New.
type Admin struct {
	opts  Options
	log   *slog.Logger
	now   func() time.Time
	pages *pages
	mux   *http.ServeMux
	oidc  *oidcSignIn // nil: no provider sign-in
	// gateBudget bounds the wait for gate verdicts (gates.go; tests
	// shorten it).
	gateBudget time.Duration
}

// defaultSessionTTL: a working day.
const defaultSessionTTL = 12 * time.Hour

// New builds the pages; it panics only if the embedded templates do not
// parse (a build defect that every test catches).
func New(opts Options) *Admin {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = defaultSessionTTL
	}
	if opts.Started.IsZero() {
		opts.Started = opts.Now()
	}
	a := &Admin{opts: opts, log: opts.Logger, now: opts.Now, pages: mustParsePages(), gateBudget: gateBudget}
	if opts.OIDC != nil {
		a.oidc = newOIDCSignIn(opts.OIDC, opts.PublicURL, a.mac)
	}
	a.mux = a.routes()
	return a
}

// Register mounts the pages under /admin/ on r. The admin has its own
// http.ServeMux behind one catch-all route: app names hold slashes, and
// unknown paths get the admin's own 404 page.
func (a *Admin) Register(r gin.IRouter) {
	h := func(c *gin.Context) { a.ServeHTTP(c.Writer, c.Request) }
	r.Any("/admin/*path", h)
}

// ServeHTTP serves every /admin/ request, with the security headers set
// first so that error pages carry them too.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	if r.URL.Path == "/admin" {
		http.Redirect(w, r, "/admin/", http.StatusMovedPermanently)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/admin/static/") {
		// Pages show per-user data and one-time secrets: never cached.
		h.Set("Cache-Control", "no-store")
	}
	a.mux.ServeHTTP(w, r)
}

// secure reports whether cookies must be Secure: the request came over
// https (TLS here, or at a trusted proxy that says so), or the public URL
// is https.
func (a *Admin) secure(r *http.Request) bool {
	return origin.FromRequest(r).Secure() || strings.HasPrefix(strings.ToLower(a.opts.PublicURL), "https://")
}
