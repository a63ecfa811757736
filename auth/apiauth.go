package auth

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/slipway/slipway/internal/origin"
)

// API is the /api/ middleware: it identifies the caller from
// "Authorization: Bearer <API token>" (from /auth/token with the scope
// api:v1:*) or from HTTP Basic credentials (throttled like every login),
// checks the account still exists, and puts the Principal in the request's
// context. Handlers decide what the principal may do (RequireAdmin).
//
// A registry token is refused: it was asked for to pull or push, often by
// a tool that holds it in places an API credential would not be kept, and
// an anonymous one names nobody.
func (s *Service) API(c *gin.Context) {
	ctx := c.Request.Context()
	var acct *Account
	if raw, ok := s.idToken(c.Request); ok {
		if acct = s.apiOIDC(c, raw); acct == nil {
			return
		}
	} else if raw, ok := bearerToken(c.Request); ok {
		claims, err := s.tokens.verifyAPI(raw)
		if err != nil {
			msg := "invalid or expired token"
			if _, regErr := s.tokens.verify(raw); regErr == nil {
				msg = "a registry token does not open the API: ask /auth/token for the scope " + apiScope() + ", or use Basic credentials"
			}
			s.apiUnauthorized(c, msg)
			return
		}
		if acct, err = s.account(ctx, claims.Subject); err != nil {
			s.apiStoreFail(c, err)
			return
		}
		if acct == nil {
			s.apiUnauthorized(c, "the token's account no longer exists")
			return
		}
	} else if user, pw, ok := c.Request.BasicAuth(); ok {
		var err error
		acct, err = s.authenticate(ctx, user, pw, origin.FromRequest(c.Request).ClientIP)
		var throttled *throttledError
		switch {
		case errors.As(err, &throttled):
			retryAfter(c, throttled.wait)
			apiFail(c, http.StatusTooManyRequests, "too many failed logins: try again later")
			return
		case errors.Is(err, errBadCredentials):
			s.apiUnauthorized(c, "incorrect username or password")
			return
		case err != nil:
			s.apiStoreFail(c, err)
			return
		}
	} else {
		s.apiUnauthorized(c, "authentication required: Basic credentials, or a Bearer token from /auth/token for the scope "+apiScope())
		return
	}
	p := Principal{Name: acct.Name, Admin: acct.Admin, Robot: acct.Robot, Detail: acct.Detail}
	ctx = context.WithValue(WithPrincipal(ctx, p), requestAccountKey{}, acct)
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

// idToken returns the ID token a request presents to /api/, when trust
// rules are configured: a Bearer JWT from another issuer than this
// registry (its "iss" tells it from an API token; an untrusted one is
// then refused as such), or Basic "oidc:<ID token>".
func (s *Service) idToken(r *http.Request) (string, bool) {
	if s.oidc == nil {
		return "", false
	}
	if raw, ok := bearerToken(r); ok {
		iss, ok := peekIssuer(raw)
		return raw, ok && iss != s.opts.Auth.Issuer
	}
	if user, pw, ok := r.BasicAuth(); ok && s.oidcLoginName(user) {
		return pw, true
	}
	return "", false
}

// apiOIDC checks an ID token for /api/: its account (the principal and
// the grants of the rules it matched), or nil once it has answered.
func (s *Service) apiOIDC(c *gin.Context, raw string) *Account {
	id, err := s.oidcLogin(c.Request.Context(), raw, origin.FromRequest(c.Request).ClientIP)
	var throttled *throttledError
	var refused *oidcError
	switch {
	case errors.As(err, &throttled):
		retryAfter(c, throttled.wait)
		apiFail(c, http.StatusTooManyRequests, "too many failed logins: try again later")
	case errors.As(err, &refused) && refused.unavailable:
		apiFail(c, http.StatusServiceUnavailable, refused.msg)
	case errors.As(err, &refused):
		s.apiUnauthorized(c, refused.msg)
	case err != nil:
		s.apiStoreFail(c, err)
	default:
		return id.account
	}
	return nil
}

// RequireAdmin lets only admins through (after API).
func (s *Service) RequireAdmin(c *gin.Context) {
	if p, ok := PrincipalFrom(c.Request.Context()); !ok || !p.Admin {
		apiFail(c, http.StatusForbidden, "only administrators may do this")
		return
	}
	c.Next()
}

func (s *Service) apiUnauthorized(c *gin.Context, msg string) {
	c.Header("WWW-Authenticate", `Bearer realm="`+quoteEscape(s.realm(c.Request))+
		`",service="`+quoteEscape(s.opts.Auth.Service)+`",scope="`+apiScope()+`"`)
	c.Writer.Header().Add("WWW-Authenticate", `Basic realm="`+quoteEscape(s.opts.Auth.Service)+`"`)
	apiFail(c, http.StatusUnauthorized, msg)
}

func (s *Service) apiStoreFail(c *gin.Context, err error) {
	s.log.ErrorContext(c.Request.Context(), "api request failed", "path", c.Request.URL.Path, "error", err.Error())
	if isUnavailable(err) {
		apiFail(c, http.StatusServiceUnavailable, "storage is unavailable, try again later")
		return
	}
	apiFail(c, http.StatusInternalServerError, "internal error")
}

// requestAccountKey carries the account API found for the request.
type requestAccountKey struct{}

// Permissions returns what the request's principal (see API) may do, as
// a function of the repository name: the account is looked up once, so a
// caller checking thousands of repositories (a listing) reads it once. No
// principal: what anonymous callers may do.
func (s *Service) Permissions(ctx context.Context) (func(repo string) []string, error) {
	var acct *Account
	if a, ok := ctx.Value(requestAccountKey{}).(*Account); ok {
		// The middleware's lookup for this very request: no second read.
		acct = a
	} else if p, ok := PrincipalFrom(ctx); ok && p.Name != "" {
		a, err := s.account(ctx, p.Name)
		if err != nil {
			return nil, err
		}
		if a == nil {
			return func(string) []string { return nil }, nil
		}
		acct = a
	}
	return func(repo string) []string { return s.policy.Allowed(acct, TypeRepository, repo) }, nil
}
