package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/slipway/slipway/config"
)

// Sign-in through an OpenID Connect provider (admin.oidc): the
// authorization-code flow with PKCE (S256), a random state and nonce. The
// three secrets of a flow (state, nonce, PKCE verifier) live in a signed,
// short-lived cookie of the browser that started it, so any replica can
// finish it; the callback refuses an answer whose state is not that
// cookie's, and an ID token whose nonce is not.
//
// A person signed in this way has no account in the token service: the
// session names them oidc:<issuer host>:<sub> and carries the groups of
// the ID token that the mapping mentions (membership as of sign-in, for
// at most session_ttl). What those groups make them (administrator,
// grants) is worked out from the current mapping on every request.

// OIDC configures provider sign-in (Options.OIDC).
type OIDC struct {
	Config config.AdminOIDC
	// Secret is the client secret (config.AdminOIDC.Secret; "" for a
	// public client).
	Secret string
	// HTTPClient talks to the provider (nil: one with a 15s timeout).
	HTTPClient *http.Client
}

const (
	oidcCookie    = "slipway_oidc"     // a flow's state, nonce and verifier
	idTokenCookie = "slipway_id_token" // the ID token, for the provider's logout
	oidcFlowTTL   = 10 * time.Minute   // time to sign in at the provider
	kindOIDC      = "oidc"             // session.Kind of provider sign-ins
	// maxIDTokenCookie: an ID token longer than this is not kept (the
	// logout then goes without id_token_hint).
	maxIDTokenCookie = 3500
	maxSubject       = 255
)

// oidcSignIn is the configured provider; discovery happens at the first
// sign-in (and again after a failure), so Slipway starts, and password
// sign-in works, while the provider is down.
type oidcSignIn struct {
	cfg      config.AdminOIDC
	secret   string
	redirect string // the callback URL registered at the provider
	base     string // redirect without the callback path: this site's URL
	host     string // the issuer's host, in principal names
	label    string // "Sign in with <label>"
	client   *http.Client
	binding  string // sessions of another issuer or client are void

	mu         sync.Mutex
	provider   *oidc.Provider
	endSession string
}

func newOIDCSignIn(o *OIDC, publicURL string, mac func(purpose, value string) []byte) *oidcSignIn {
	s := &oidcSignIn{cfg: o.Config, secret: o.Secret, redirect: o.Config.Redirect(publicURL), client: o.HTTPClient, label: o.Config.Name}
	if s.client == nil {
		s.client = &http.Client{Timeout: 15 * time.Second}
	}
	s.base = strings.TrimSuffix(s.redirect, config.AdminOIDCCallbackPath)
	if u, err := url.Parse(o.Config.Issuer); err == nil {
		s.host = u.Host
	}
	if s.label == "" {
		s.label = s.host
	}
	s.binding = "oidc:" + b64.EncodeToString(mac("oidc binding", o.Config.Issuer+"\x00"+o.Config.ClientID)[:12])
	return s
}

// discover returns the provider, fetching its discovery document once
// (ctx bounds that fetch only: the provider keeps just the client, and
// fetches its keys later with a background context).
func (s *oidcSignIn) discover(ctx context.Context) (*oidc.Provider, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.provider != nil {
		return s.provider, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, s.client), s.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := p.Claims(&extra); err == nil {
		s.endSession = extra.EndSession
	}
	s.provider = p
	return p, nil
}

func (s *oidcSignIn) oauth2(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: s.cfg.ClientID, ClientSecret: s.secret, Endpoint: p.Endpoint(),
		RedirectURL: s.redirect, Scopes: s.cfg.ScopesOrDefault()}
}

// mapped is what a set of groups makes a person under the current
// mapping: an administrator, and the grants of every mapped group.
func (s *oidcSignIn) mapped(groups []string) (admin bool, grants []config.Grant) {
	for _, g := range groups {
		if slices.Contains(s.cfg.AdminGroups, g) {
			admin = true
		}
		grants = append(grants, s.cfg.Grants[g]...)
	}
	return admin, grants
}

// relevant keeps the groups the mapping names (the session carries
// nothing else: a directory may list hundreds).
func (s *oidcSignIn) relevant(groups []string) []string {
	var out []string
	for _, g := range groups {
		_, granted := s.cfg.Grants[g]
		if (granted || slices.Contains(s.cfg.AdminGroups, g)) && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return out
}

// OIDCPrincipal is a person signed in through the provider, as the
// services must see them: the server's Authorizer gives them what Admin
// and Grants allow (they have no account to look up).
type OIDCPrincipal struct {
	Name   string // oidc:<issuer host>:<sub>
	Admin  bool
	Grants []config.Grant
}

type oidcPrincipalKey struct{}

// OIDCPrincipalFrom returns the provider-signed-in person the admin
// pages put in ctx (ok false: none; the caller is an account).
func OIDCPrincipalFrom(ctx context.Context) (OIDCPrincipal, bool) {
	p, ok := ctx.Value(oidcPrincipalKey{}).(OIDCPrincipal)
	return p, ok
}

// oidcFlow is the flow cookie's content.
type oidcFlow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"x"`
	Expires  int64  `json:"e"`
}

func (a *Admin) encodeFlow(f oidcFlow) string {
	body, _ := json.Marshal(f)
	p := b64.EncodeToString(body)
	return p + "." + b64.EncodeToString(a.mac("oidc flow", p))
}

func (a *Admin) decodeFlow(v string) (oidcFlow, bool) {
	p, sig, ok := strings.Cut(v, ".")
	if !ok || len(v) > 2048 {
		return oidcFlow{}, false
	}
	got, err := b64.DecodeString(sig)
	if err != nil || subtle.ConstantTimeCompare(got, a.mac("oidc flow", p)) != 1 {
		return oidcFlow{}, false
	}
	body, err := b64.DecodeString(p)
	var f oidcFlow
	if err != nil || json.Unmarshal(body, &f) != nil || f.State == "" || f.Nonce == "" || f.Verifier == "" {
		return oidcFlow{}, false
	}
	return f, a.now().Before(time.Unix(f.Expires, 0))
}

// setFlowCookie is SameSite=Lax, unlike the others: the provider sends
// the browser back with a cross-site navigation, on which a Strict cookie
// would not come along.
func (a *Admin) setFlowCookie(w http.ResponseWriter, r *http.Request, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: oidcCookie, Value: value, Path: "/admin/oidc/", HttpOnly: true, Secure: a.secure(r), SameSite: http.SameSiteLaxMode, MaxAge: -1}
	if maxAge > 0 {
		c.MaxAge, c.Expires = int(maxAge/time.Second), a.now().Add(maxAge)
	}
	http.SetCookie(w, c)
}

// oidcLogin serves GET /admin/oidc/login: a new flow, and off to the
// provider. (A GET, so the button is a link; another site starting a flow
// for someone only shows them the provider's login page.)
func (a *Admin) oidcLogin(w http.ResponseWriter, r *http.Request) {
	o := a.oidc
	p, err := o.discover(r.Context())
	if err != nil {
		a.log.WarnContext(r.Context(), "admin sign-in: the OpenID provider's discovery failed", "issuer", o.cfg.Issuer, "error", err.Error())
		a.errorPage(w, r, nil, http.StatusServiceUnavailable, o.label+" cannot be reached",
			"Sign-in through "+o.label+" is not available right now (the server log says why). Try again in a moment.")
		return
	}
	f := oidcFlow{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(),
		Next: safeNext(r.URL.Query().Get("next")), Expires: a.now().Add(oidcFlowTTL).Unix()}
	a.setFlowCookie(w, r, a.encodeFlow(f), oidcFlowTTL)
	u := o.oauth2(p).AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// oidcCallback serves GET /admin/oidc/callback: the provider's answer.
func (a *Admin) oidcCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	o := a.oidc
	q := r.URL.Query()
	failed := func(status int, detail string) {
		a.errorPage(w, r, nil, status, "Sign-in through "+o.label+" failed", detail+" Start again from the sign-in page.")
	}
	c, err := r.Cookie(oidcCookie)
	if err != nil {
		failed(http.StatusBadRequest, "This browser did not start a sign-in (or it took more than 10 minutes).")
		return
	}
	a.setFlowCookie(w, r, "", 0) // one answer per flow
	f, ok := a.decodeFlow(c.Value)
	if !ok {
		failed(http.StatusBadRequest, "The sign-in took too long or its cookie was altered.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		a.log.WarnContext(ctx, "admin sign-in: state mismatch on the OpenID callback", "remote", clientIP(r))
		failed(http.StatusBadRequest, "The answer does not belong to the sign-in this browser started (state mismatch).")
		return
	}
	if e := q.Get("error"); e != "" {
		msg := e
		if d := q.Get("error_description"); d != "" {
			msg += ": " + d
		}
		failed(http.StatusUnauthorized, o.label+" refused the sign-in ("+clip(msg, 200)+").")
		return
	}
	p, err := o.discover(ctx)
	if err != nil {
		failed(http.StatusServiceUnavailable, o.label+" cannot be reached.")
		return
	}
	tok, err := o.oauth2(p).Exchange(oidc.ClientContext(ctx, o.client), q.Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		a.log.WarnContext(ctx, "admin sign-in: code exchange failed", "issuer", o.cfg.Issuer, "error", err.Error())
		failed(http.StatusBadGateway, o.label+" did not accept the sign-in code (the server log says why).")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		failed(http.StatusBadGateway, o.label+" answered without an ID token.")
		return
	}
	// The provider's key set is cached (fetched again for an unknown kid).
	idt, err := p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID, Now: a.now}).Verify(ctx, raw)
	if err != nil {
		a.log.WarnContext(ctx, "admin sign-in: ID token refused", "issuer", o.cfg.Issuer, "error", err.Error())
		failed(http.StatusUnauthorized, "The ID token from "+o.label+" did not verify (the server log says why).")
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		a.log.WarnContext(ctx, "admin sign-in: nonce mismatch in the ID token", "issuer", o.cfg.Issuer, "remote", clientIP(r))
		failed(http.StatusUnauthorized, "The ID token was not issued for this sign-in (nonce mismatch).")
		return
	}
	id, problem := o.identity(idt)
	if problem != "" {
		failed(http.StatusUnauthorized, problem)
		return
	}
	s := session{User: id.name, Binding: o.binding, Kind: kindOIDC, Display: id.display, Groups: id.groups}
	if err := a.startSessionFor(w, r, s); err != nil {
		failed(http.StatusUnauthorized, "Your groups make the session too large for a cookie.")
		return
	}
	if len(raw) <= maxIDTokenCookie {
		a.setCookie(w, r, idTokenCookie, raw, a.opts.SessionTTL)
	}
	a.setCookie(w, r, loginCookie, "", 0)
	admin, _ := o.mapped(id.groups)
	a.log.InfoContext(ctx, "admin sign-in", "account", id.name, "via", "oidc", "groups", id.groups, "admin", admin, "remote", clientIP(r))
	// A page, not a redirect: after a cross-site redirect chain the
	// browser would not send the SameSite=Strict session cookie; a
	// navigation this page starts is same-site.
	v := a.newView(r, nil, "Signed in")
	v.Data = continueData{Heading: "Signed in", Next: f.Next, Link: "Continue to the admin pages"}
	a.render(w, r, http.StatusOK, "oidc_continue", v)
}

// continueData is a page that moves on to Next by itself.
type continueData struct{ Heading, Next, Link string }

// identity is a signed-in person.
type identity struct {
	name, display string
	groups        []string
}

// identity is who a verified ID token names; problem, when not "", says
// (to the person) why it names nobody usable.
func (o *oidcSignIn) identity(idt *oidc.IDToken) (id identity, problem string) {
	if idt.Subject == "" || len(idt.Subject) > maxSubject || strings.ContainsFunc(idt.Subject, unicode.IsControl) {
		return identity{}, "The ID token's subject is empty or not a plain name."
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return identity{}, "The ID token's claims could not be read."
	}
	// A token for several audiences must name Slipway as the party it was
	// issued to (OpenID Connect Core 3.1.3.7); go-oidc checks only that
	// Slipway is among the audiences.
	if azp, _ := claims["azp"].(string); len(idt.Audience) > 1 && azp != o.cfg.ClientID {
		return identity{}, "The ID token was issued to another party (azp)."
	}
	id = identity{name: "oidc:" + o.host + ":" + idt.Subject}
	for _, k := range []string{"name", "email", "preferred_username"} {
		if v, ok := claims[k].(string); ok && v != "" && !strings.ContainsFunc(v, unicode.IsControl) {
			id.display = clip(v, 100)
			break
		}
	}
	var groups []string
	switch g := claims[o.cfg.GroupsClaimOrDefault()].(type) {
	case string:
		groups = []string{g}
	case []any:
		for _, x := range g {
			if s, ok := x.(string); ok {
				groups = append(groups, s)
			}
		}
	}
	id.groups = o.relevant(groups)
	return id, ""
}

// oidcPrincipal is the principal of an OIDC session under the current
// mapping.
func (a *Admin) oidcPrincipal(s session) OIDCPrincipal {
	admin, grants := a.oidc.mapped(s.Groups)
	return OIDCPrincipal{Name: s.User, Admin: admin, Grants: grants}
}

// oidcLogout ends a provider session too, when the provider offers
// RP-initiated logout: the browser goes to its end_session_endpoint and
// comes back to the login page.
func (a *Admin) oidcLogout(w http.ResponseWriter, r *http.Request) bool {
	o := a.oidc
	if _, err := o.discover(r.Context()); err != nil {
		return false
	}
	o.mu.Lock()
	end := o.endSession
	o.mu.Unlock()
	if end == "" {
		return false
	}
	u, err := url.Parse(end)
	if err != nil {
		return false
	}
	q := u.Query()
	q.Set("client_id", o.cfg.ClientID)
	q.Set("post_logout_redirect_uri", o.base+"/admin/login?why=out")
	if c, err := r.Cookie(idTokenCookie); err == nil && c.Value != "" {
		q.Set("id_token_hint", c.Value)
	}
	u.RawQuery = q.Encode()
	// A page, not a redirect: the logout form's redirect to another
	// origin would break the pages' CSP (form-action 'self').
	v := a.newView(r, nil, "Signing out")
	v.Data = continueData{Heading: "Signing out", Next: u.String(), Link: "Continue to sign out at " + o.label}
	a.render(w, r, http.StatusOK, "oidc_continue", v)
	return true
}

// clip shortens s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
