package admin

import (
	"context"
	"net/http"
	"time"

	"github.com/slipway/slipway/promote"
)

// routes maps every admin path. Unknown paths (and known paths with the
// wrong method) fall to "/admin/": a 404 page for people signed in, the
// login page for others, so nothing is revealed before login.
func (a *Admin) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("GET /admin/static/", staticHandler())
	m.HandleFunc("GET /admin/login", a.loginPage)
	m.HandleFunc("POST /admin/login", a.login)
	m.HandleFunc("POST /admin/logout", a.authed(a.logout))
	if a.oidc != nil {
		m.HandleFunc("GET /admin/oidc/login", a.oidcLogin)
		m.HandleFunc("GET /admin/oidc/callback", a.oidcCallback)
	}
	m.HandleFunc("GET /admin/{$}", a.authed(a.overview))
	m.HandleFunc("GET /admin/repositories", a.authed(a.repositories))
	m.HandleFunc("GET /admin/repositories/{app...}", a.authed(a.repository))
	m.HandleFunc("GET /admin/history", a.authed(a.history))
	m.HandleFunc("POST /admin/promote", a.authed(a.promote))
	m.HandleFunc("POST /admin/rollback", a.authed(a.rollback))
	m.HandleFunc("POST /admin/tags/delete", a.authed(a.deleteTag))
	m.HandleFunc("GET /admin/releases", a.authed(a.releases))
	m.HandleFunc("POST /admin/releases", a.authed(a.createRelease))
	m.HandleFunc("POST /admin/releases/rollback", a.authed(a.rollbackRelease))
	m.HandleFunc("GET /admin/releases/{id}", a.authed(a.release))
	m.HandleFunc("GET /admin/robots", a.authed(a.robots))
	m.HandleFunc("POST /admin/robots", a.authed(a.createRobot))
	m.HandleFunc("POST /admin/robots/revoke", a.authed(a.revokeRobot))
	m.HandleFunc("/admin/", a.authed(a.notFound))
	return m
}

// overviewData is the overview page's content.
type overviewData struct {
	Stages  []stageCount
	Recent  []recordRow
	Health  health
	GC      gcCard
	History string // link to the whole ledger
}

type stageCount struct {
	Name, Prefix string
	Count        int
	Immutable    bool
	From         []string
}

type health struct {
	Checked    bool // a ping was configured
	StorageOK  bool
	StorageMsg string
	Version    string
	Uptime     string
	Since      time.Time
}

// pingTimeout bounds the storage check, so a hung store shows as such
// instead of hanging the page.
const pingTimeout = 3 * time.Second

// overview serves GET /admin/: stages with their repository counts, the
// last 20 promotions, and health.
func (a *Admin) overview(w http.ResponseWriter, r *http.Request, req *request) {
	ctx := r.Context()
	svc := a.opts.Promote
	counts, err := svc.StageCounts(ctx)
	if err != nil {
		a.fail(w, r, req, err)
		return
	}
	recent, err := svc.History(ctx, promote.Query{Limit: 20})
	if err != nil {
		a.fail(w, r, req, err)
		return
	}
	d := overviewData{Health: a.health(ctx), GC: a.gcCard(ctx, req.user.Admin), History: "/admin/history"}
	for _, s := range svc.Stages() {
		d.Stages = append(d.Stages, stageCount{Name: s.Name, Prefix: s.Prefix, Count: counts[s.Name], Immutable: s.Immutable, From: s.PromoteFrom})
	}
	d.Recent = a.recordRows(ctx, recent.Records, false)
	v := a.newView(r, req, "Overview")
	v.Nav, v.Data = "overview", d
	a.render(w, r, http.StatusOK, "overview", v)
}

func (a *Admin) health(ctx context.Context) health {
	h := health{Version: a.opts.Version, Since: a.opts.Started, Uptime: humanDuration(a.now().Sub(a.opts.Started))}
	if h.Version == "" {
		h.Version = "unknown"
	}
	if a.opts.Ping != nil {
		h.Checked = true
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		defer cancel()
		if err := a.opts.Ping(pctx); err != nil {
			// The reason (addresses, credentials' names) goes to the log,
			// not to every signed-in user.
			a.log.WarnContext(ctx, "admin overview: storage check failed", "error", err.Error())
			h.StorageMsg = "not reachable: the server log says why"
		} else {
			h.StorageOK, h.StorageMsg = true, "reachable"
		}
	}
	return h
}
