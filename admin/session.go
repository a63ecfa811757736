package admin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/internal/httpbody"
)

// Sessions are signed cookies, not records on the server. Slipway runs as
// several stateless replicas behind a load balancer, so a session kept in
// one process's memory would vanish on the next replica; one kept in the
// object store would cost a store read (and writes at login and logout)
// on every page. The cookie holds {user, credential binding, expiry, CSRF
// nonce}, MACed with HMAC-SHA-256 under a key every replica shares. The
// account is still looked up on every request, so a removed user or a
// revoked robot is out at once, and so is a session from before a password
// change (the binding changes). The price of statelessness: logging out
// drops the cookie from the browser, but a copy stolen before stays valid
// until it expires; the TTL bounds that.

const (
	sessionCookie = "slipway_session"
	loginCookie   = "slipway_login" // the login form's CSRF nonce
	// cookieGrace keeps an expired session's cookie in the browser a
	// while, so the login page can say "your session expired" instead of
	// just appearing.
	cookieGrace = 24 * time.Hour
	loginTTL    = time.Hour
)

var b64 = base64.RawURLEncoding

// session is what the cookie carries.
type session struct {
	User    string `json:"u"`
	Binding string `json:"b"`
	Expires int64  `json:"e"` // Unix seconds
	Nonce   string `json:"n"`
	// Kind "oidc": signed in through the OpenID provider (oidc.go), with
	// no account to look up; Display is the person's name or email and
	// Groups the ID token's groups that the mapping names.
	Kind    string   `json:"k,omitempty"`
	Display string   `json:"d,omitempty"`
	Groups  []string `json:"g,omitempty"`
}

// maxSessionCookie bounds the cookie (browsers keep about 4KB).
const maxSessionCookie = 4096

// request is one authenticated page request.
type request struct {
	sess    session
	user    auth.Principal
	csrf    string
	display string // the name shown instead of user.Name ("": that)
}

var (
	errNoSession      = errors.New("no session")
	errSessionExpired = errors.New("session expired")
)

func (a *Admin) mac(purpose, value string) []byte {
	m := hmac.New(sha256.New, a.opts.SessionKey)
	m.Write([]byte(purpose + "\x00" + value))
	return m.Sum(nil)
}

func randomToken() string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return b64.EncodeToString(b[:])
}

// encodeSession signs s into a cookie value: payload "." MAC.
func (a *Admin) encodeSession(s session) string {
	body, _ := json.Marshal(s)
	p := b64.EncodeToString(body)
	return p + "." + b64.EncodeToString(a.mac("session", p))
}

// decodeSession checks the MAC and the expiry.
func (a *Admin) decodeSession(v string) (session, error) {
	p, sig, ok := strings.Cut(v, ".")
	if !ok || len(v) > maxSessionCookie {
		return session{}, errNoSession
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, a.mac("session", p)) {
		return session{}, errNoSession
	}
	body, err := b64.DecodeString(p)
	if err != nil {
		return session{}, errNoSession
	}
	var s session
	if json.Unmarshal(body, &s) != nil || s.User == "" || s.Nonce == "" {
		return session{}, errNoSession
	}
	if !a.now().Before(time.Unix(s.Expires, 0)) {
		return s, errSessionExpired
	}
	return s, nil
}

// csrfToken is the token forms of a session carry: derived from the
// cookie's nonce, which script cannot read (HttpOnly).
func (a *Admin) csrfToken(s session) string {
	return b64.EncodeToString(a.mac("csrf", s.Nonce)[:18])
}

func (a *Admin) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/admin/",
		HttpOnly: true,
		Secure:   a.secure(r),
		SameSite: http.SameSiteStrictMode,
	}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
		c.Expires = a.now().Add(maxAge)
	} else {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// startSession sets the cookie for a login that succeeded.
func (a *Admin) startSession(w http.ResponseWriter, r *http.Request, user, binding string) {
	_ = a.startSessionFor(w, r, session{User: user, Binding: binding})
}

// errSessionTooLarge: the cookie would exceed maxSessionCookie.
var errSessionTooLarge = errors.New("session too large for a cookie")

// startSessionFor sets the cookie for s, with a new expiry and nonce.
func (a *Admin) startSessionFor(w http.ResponseWriter, r *http.Request, s session) error {
	s.Expires, s.Nonce = a.now().Add(a.opts.SessionTTL).Unix(), randomToken()
	v := a.encodeSession(s)
	if len(v) > maxSessionCookie {
		return errSessionTooLarge
	}
	a.setCookie(w, r, sessionCookie, v, a.opts.SessionTTL+cookieGrace)
	return nil
}

// authed wraps a page that needs a login: it reads and checks the session,
// looks the account up again, checks the CSRF token of every POST, and
// puts the principal in the request's context for the services.
func (a *Admin) authed(h func(http.ResponseWriter, *http.Request, *request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		c, err := r.Cookie(sessionCookie)
		if err != nil {
			a.toLogin(w, r, "")
			return
		}
		s, err := a.decodeSession(c.Value)
		switch {
		case errors.Is(err, errSessionExpired):
			a.setCookie(w, r, sessionCookie, "", 0)
			a.toLogin(w, r, "expired")
			return
		case err != nil:
			a.setCookie(w, r, sessionCookie, "", 0)
			a.toLogin(w, r, "")
			return
		}
		if s.Kind == kindOIDC {
			a.authedOIDC(w, r, s, h)
			return
		}
		p, binding, err := a.opts.Accounts.Lookup(ctx, s.User)
		switch {
		case errors.Is(err, auth.ErrNoAccount):
			a.setCookie(w, r, sessionCookie, "", 0)
			a.toLogin(w, r, "gone")
			return
		case err != nil:
			a.fail(w, r, nil, err)
			return
		case subtle.ConstantTimeCompare([]byte(binding), []byte(s.Binding)) != 1:
			a.setCookie(w, r, sessionCookie, "", 0)
			a.toLogin(w, r, "changed")
			return
		}
		req := &request{sess: s, user: p, csrf: a.csrfToken(s)}
		if !a.checkForm(w, r, req) {
			return
		}
		r = r.WithContext(auth.WithPrincipal(ctx, p))
		h(w, r, req)
	}
}

// authedOIDC is authed for a session signed in through the provider:
// nothing to look up, what the person may do follows from the groups the
// session carries under the current mapping (OIDCPrincipal, which the
// services' Authorizer reads).
func (a *Admin) authedOIDC(w http.ResponseWriter, r *http.Request, s session, h func(http.ResponseWriter, *http.Request, *request)) {
	if a.oidc == nil || subtle.ConstantTimeCompare([]byte(s.Binding), []byte(a.oidc.binding)) != 1 {
		// Provider sign-in switched off, or another issuer or client.
		a.setCookie(w, r, sessionCookie, "", 0)
		a.toLogin(w, r, "changed")
		return
	}
	op := a.oidcPrincipal(s)
	p := auth.Principal{Name: op.Name, Admin: op.Admin}
	req := &request{sess: s, user: p, csrf: a.csrfToken(s), display: s.Display}
	if !a.checkForm(w, r, req) {
		return
	}
	ctx := auth.WithPrincipal(r.Context(), p)
	h(w, r.WithContext(context.WithValue(ctx, oidcPrincipalKey{}, op)), req)
}

// checkForm reads a POST's form and checks its CSRF token, answering
// (and returning false) when either fails.
func (a *Admin) checkForm(w http.ResponseWriter, r *http.Request, req *request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	if e := httpbody.ParseForm(w, r, maxForm); e != nil {
		a.formError(w, r, req, e)
		return false
	}
	if !a.checkCSRF(r, req.csrf) {
		a.errorPage(w, r, req, http.StatusForbidden, "This form has expired or did not come from this site",
			"Nothing was changed. Go back, reload the page and try again.")
		return false
	}
	return true
}

// checkCSRF compares the parsed form's token with want, in constant time.
func (a *Admin) checkCSRF(r *http.Request, want string) bool {
	got := r.PostForm.Get("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// maxForm bounds a form post.
const maxForm = 64 << 10

// toLogin sends the browser to the login page, remembering where it was
// going (for a GET) and why ("expired", "gone", "changed", "").
func (a *Admin) toLogin(w http.ResponseWriter, r *http.Request, why string) {
	next := ""
	if r.Method == http.MethodGet && r.URL.Path != "/admin/" {
		next = r.URL.RequestURI()
	}
	http.Redirect(w, r, pageURL("/admin/login", "next", next, "why", why), http.StatusSeeOther)
}

// safeNext accepts only a path inside the admin pages as a place to go
// after login: never another site ("//evil", "https://…").
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/admin/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/admin/"
	}
	return next
}
