package admin

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/internal/httpbody"
	"github.com/slipway/slipway/internal/origin"
)

// loginView is the login form's data.
type loginView struct {
	Next string
	User string
	// Provider is the OpenID provider's button label ("": no button);
	// Password shows the password form.
	Provider string
	Password bool
}

// passwordLogin reports whether the password form is offered.
func (a *Admin) passwordLogin() bool {
	return a.oidc == nil || a.oidc.cfg.PasswordLoginAllowed()
}

func (a *Admin) loginData(next, user string) loginView {
	v := loginView{Next: next, User: user, Password: a.passwordLogin()}
	if a.oidc != nil {
		v.Provider = a.oidc.label
	}
	return v
}

// Messages the login page shows for the reasons toLogin gives.
var loginReasons = map[string]string{
	"expired": "Your session has expired. Please sign in again.",
	"gone":    "Your account no longer exists or has expired. Sign in with another account.",
	"changed": "Your password or secret changed since you signed in. Please sign in again.",
	"out":     "You have signed out.",
}

// loginNonce returns the login form's CSRF nonce from its cookie, setting a
// new one when there is none. Before login there is no session to tie a
// token to, so the form carries a MAC of a random cookie value (double
// submit): a page on another site can neither read the cookie nor, with
// SameSite=Strict, send it.
func (a *Admin) loginNonce(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) >= 16 && len(c.Value) <= 64 {
		return c.Value
	}
	n := randomToken()
	a.setCookie(w, r, loginCookie, n, loginTTL)
	return n
}

func (a *Admin) loginToken(nonce string) string {
	return b64.EncodeToString(a.mac("login", nonce)[:18])
}

// loginPage serves GET /admin/login.
func (a *Admin) loginPage(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if _, err := a.decodeSession(c.Value); err == nil {
			http.Redirect(w, r, "/admin/", http.StatusSeeOther)
			return
		}
	}
	v := a.newView(r, nil, "Sign in")
	v.CSRF = a.loginToken(a.loginNonce(w, r))
	v.Flash = loginReasons[r.URL.Query().Get("why")]
	v.Data = a.loginData(safeNext(r.URL.Query().Get("next")), "")
	a.render(w, r, http.StatusOK, "login", v)
}

// login serves POST /admin/login.
func (a *Admin) login(w http.ResponseWriter, r *http.Request) {
	if e := httpbody.ParseForm(w, r, maxForm); e != nil {
		a.formError(w, r, nil, e)
		return
	}
	name, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	next := safeNext(r.PostForm.Get("next"))
	if !a.passwordLogin() {
		a.errorPage(w, r, nil, http.StatusForbidden, "Password sign-in is switched off",
			"Sign in with "+a.oidc.label+" instead.")
		return
	}
	again := func(status int, msg string) {
		v := a.newView(r, nil, "Sign in")
		v.CSRF = a.loginToken(a.loginNonce(w, r))
		v.Error = msg
		v.Data = a.loginData(next, name)
		a.render(w, r, status, "login", v)
	}
	c, err := r.Cookie(loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(a.loginToken(c.Value))) != 1 {
		again(http.StatusForbidden, "The sign-in form had expired. Please try again.")
		return
	}
	if name == "" || password == "" {
		again(http.StatusBadRequest, "Enter your username and password.")
		return
	}
	ctx := r.Context()
	p, err := a.opts.Accounts.Login(ctx, name, password, clientIP(r))
	var throttled *auth.ThrottledError
	switch {
	case errors.As(err, &throttled):
		w.Header().Set("Retry-After", fmt.Sprint(int(throttled.Wait.Round(time.Second)/time.Second)+1))
		again(http.StatusTooManyRequests, "Too many failed sign-in attempts. Wait "+humanDuration(throttled.Wait)+" and try again.")
		return
	case errors.Is(err, auth.ErrBadCredentials):
		again(http.StatusUnauthorized, "Incorrect username or password.")
		return
	case err != nil:
		a.fail(w, r, nil, err)
		return
	}
	// The binding comes from the same lookup every later request makes.
	_, binding, err := a.opts.Accounts.Lookup(ctx, p.Name)
	if err != nil {
		a.fail(w, r, nil, err)
		return
	}
	a.startSession(w, r, p.Name, binding)
	a.setCookie(w, r, loginCookie, "", 0)
	a.log.InfoContext(ctx, "admin sign-in", "account", p.Name, "remote", clientIP(r))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout serves POST /admin/logout (behind the session and its CSRF check,
// so another site cannot sign a person out).
func (a *Admin) logout(w http.ResponseWriter, r *http.Request, req *request) {
	a.setCookie(w, r, sessionCookie, "", 0)
	if req.sess.Kind == kindOIDC && a.oidc != nil {
		a.setCookie(w, r, idTokenCookie, "", 0) // oidcLogout reads the request's
		if a.oidcLogout(w, r) {
			return
		}
	}
	http.Redirect(w, r, "/admin/login?why=out", http.StatusSeeOther)
}

// clientIP is the client's address: the connection's, or the one a
// trusted proxy forwarded (origin.FromRequest); login throttling counts
// failures by it.
func clientIP(r *http.Request) string { return origin.FromRequest(r).ClientIP }
