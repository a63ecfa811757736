package admin

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/internal/origin"
)

// robotActions are the actions the creation form offers.
var robotActions = []string{"pull", "push", "delete", "promote"}

// expiryChoices are the creation form's expiries (Go durations; "" never).
var expiryChoices = []struct{ Value, Label string }{
	{"", "never"}, {"720h", "30 days"}, {"2160h", "90 days"}, {"8760h", "1 year"},
}

type robotsData struct {
	Robots  []auth.RobotView
	Form    robotForm
	Actions []string
	Expiry  []struct{ Value, Label string }
}

// robotForm is the creation form, kept when it is shown again with an
// error.
type robotForm struct {
	Name, Description, Repos, ExpiresIn string
	Actions                             []string
}

func (f robotForm) Has(action string) bool { return slices.Contains(f.Actions, action) }

type robotCreatedData struct {
	Robot  auth.CreatedRobot
	Login  string // a ready `docker login` line
	Secret string
}

// robots serves GET /admin/robots (admins): every robot with last use and
// expiry, a creation form, revoke buttons.
func (a *Admin) robots(w http.ResponseWriter, r *http.Request, req *request) {
	if !req.user.Admin {
		a.forbidden(w, r, req, "Only administrators manage robot accounts.")
		return
	}
	v := a.newView(r, req, "Robot accounts")
	if name := r.URL.Query().Get("revoked"); name != "" {
		v.Flash = "Revoked " + auth.RobotPrefix + name + ". It gets no new token from now on."
	}
	a.showRobots(w, r, req, v, http.StatusOK, robotForm{Actions: []string{"pull"}})
}

func (a *Admin) showRobots(w http.ResponseWriter, r *http.Request, req *request, v *view, status int, form robotForm) {
	list, err := a.opts.Accounts.ListRobotAccounts(r.Context())
	if err != nil {
		a.fail(w, r, req, err)
		return
	}
	v.Nav = "robots"
	v.Data = robotsData{Robots: list, Form: form, Actions: robotActions, Expiry: expiryChoices}
	a.render(w, r, status, "robots", v)
}

// createRobot serves POST /admin/robots: name, description, repos (one
// glob per line), actions, expires_in. The answer shows the secret, once.
func (a *Admin) createRobot(w http.ResponseWriter, r *http.Request, req *request) {
	if !req.user.Admin {
		a.forbidden(w, r, req, "Only administrators manage robot accounts.")
		return
	}
	f := r.PostForm
	form := robotForm{Name: strings.TrimSpace(f.Get("name")), Description: strings.TrimSpace(f.Get("description")),
		Repos: f.Get("repos"), ExpiresIn: f.Get("expires_in"), Actions: f["actions"]}
	cr := auth.CreateRobotRequest{Name: form.Name, Description: form.Description, ExpiresIn: form.ExpiresIn}
	for _, line := range strings.Split(form.Repos, "\n") {
		if g := strings.TrimSpace(line); g != "" {
			cr.Grants = append(cr.Grants, config.Grant{Repos: g, Actions: form.Actions})
		}
	}
	created, err := a.opts.Accounts.CreateRobotAccount(r.Context(), cr)
	var re *auth.RobotError
	if errors.As(err, &re) {
		v := a.newView(r, req, "Robot accounts")
		v.Error = "The robot was not created: " + re.Message + "."
		a.showRobots(w, r, req, v, re.Status, form)
		return
	}
	if err != nil {
		a.fail(w, r, req, err)
		return
	}
	v := a.newView(r, req, "Robot created")
	v.Nav = "robots"
	v.Data = robotCreatedData{Robot: created, Secret: created.Secret,
		Login: "docker login " + a.registryHost(r) + " -u '" + created.Login + "' --password-stdin"}
	a.render(w, r, http.StatusCreated, "robot_created", v)
}

// revokeRobot serves POST /admin/robots/revoke (name).
func (a *Admin) revokeRobot(w http.ResponseWriter, r *http.Request, req *request) {
	if !req.user.Admin {
		a.forbidden(w, r, req, "Only administrators manage robot accounts.")
		return
	}
	name := strings.TrimPrefix(r.PostForm.Get("name"), auth.RobotPrefix)
	err := a.opts.Accounts.RevokeRobotAccount(r.Context(), name)
	if errors.Is(err, auth.ErrRobotNotFound) {
		v := a.newView(r, req, "Robot accounts")
		v.Error = "There is no robot named " + auth.RobotPrefix + name + " (perhaps it was revoked already)."
		a.showRobots(w, r, req, v, http.StatusNotFound, robotForm{Actions: []string{"pull"}})
		return
	}
	if err != nil {
		a.fail(w, r, req, err)
		return
	}
	http.Redirect(w, r, "/admin/robots?"+url.Values{"revoked": {name}}.Encode(), http.StatusSeeOther)
}

// registryHost is what `docker login` takes: the public URL's host, else
// the host the browser called (origin.FromRequest: forwarded by a trusted
// proxy, or the request's Host).
func (a *Admin) registryHost(r *http.Request) string {
	if u, err := url.Parse(a.opts.PublicURL); err == nil && u.Host != "" {
		return u.Host
	}
	return origin.FromRequest(r).Host
}
