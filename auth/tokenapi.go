package auth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gin-gonic/gin"

	"github.com/slipway/slipway/internal/httpbody"
	"github.com/slipway/slipway/internal/origin"
)

// maxTokenRequest bounds a token request's query string and its form
// body, each: MaxScopes scopes of 255-character names, URL-encoded, fit in
// ~10 KiB. Anything longer is refused before it is parsed, so a request
// reaches the scope limits cheaply whatever it sends.
const maxTokenRequest = 16 << 10

// TokenResponse is the answer of /auth/token (Docker token specification;
// "access_token" and "scope" for OAuth2 clients).
type TokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	// RFC 8693 §2.2.1, in answers to a token exchange only.
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	TokenType       string `json:"token_type,omitempty"`
}

// RFC 8693 names: the token-exchange grant and the token types it reads
// (an ID token; a JWT, which is what some platforms call theirs) and
// issues (an access token).
const (
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeIDToken   = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"
)

// tokenRequest is a GET or POST token request, read.
type tokenRequest struct {
	oauth    bool   // POST: errors also carry the OAuth2 fields
	grant    string // "anonymous", "password", "refresh_token" or GrantTokenExchange
	service  string
	scopes   []string
	offline  bool // also return a refresh token
	username string
	password string
	refresh  string
	subject  string // the ID token of a token exchange
}

// errBadRequest is a malformed token request: 400, or status when set (a
// body too large or too slow).
type errBadRequest struct {
	status     int
	msg, oauth string
}

func (e *errBadRequest) Error() string { return e.msg }

// Token serves GET and POST /auth/token.
//
// GET (Docker token specification): ?service=&scope=…&scope=…, with HTTP
// Basic credentials or anonymously; offline_token=true also returns a
// refresh token. POST (OAuth2 form, as `docker login` and containerd use):
// grant_type=password (username, password) or grant_type=refresh_token
// (refresh_token); access_type=offline returns a refresh token with a
// password grant. The token grants the intersection of the scopes asked
// for and what the account may do.
//
// With auth.oidc.trust rules, a CI job's ID token is accepted as the
// password of the login "oidc", and as the subject_token of an RFC 8693
// exchange (grant_type=GrantTokenExchange): its token grants what the
// rules it matches grant, lasts at most the ID token's remaining life,
// and comes without a refresh token (oidc.go).
//
// The scope api:v1:*, alone, asks for an API token instead: it names the
// account for /api/v1 and opens nothing on /v2/ (see issueAPI); it needs
// credentials.
func (s *Service) Token(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Header("Pragma", "no-cache")
	req, err := readTokenRequest(c)
	if err == nil && req.service != "" && req.service != s.opts.Auth.Service {
		err = &errBadRequest{msg: "unknown service " + quoteShort(req.service), oauth: "invalid_request"}
	}
	var requested []Access
	if err == nil {
		if requested, err = ParseScopes(req.scopes); err != nil {
			oauth := "invalid_scope"
			if errors.Is(err, ErrScopeLimit) {
				oauth = "invalid_request"
			}
			err = &errBadRequest{msg: err.Error(), oauth: oauth}
		}
	}
	var api bool
	if err == nil {
		api, err = wantsAPI(requested)
	}
	if err != nil {
		s.tokenFail(c, req, err)
		return
	}
	ctx, addr := c.Request.Context(), origin.FromRequest(c.Request).ClientIP
	var acct *Account
	var id *oidcIdentity // an ID token's: it grants, and bounds the token's life
	switch req.grant {
	case "password":
		if s.oidcLoginName(req.username) {
			id, err = s.oidcLogin(ctx, req.password, addr)
		} else {
			acct, err = s.authenticate(ctx, req.username, req.password, addr)
		}
	case "refresh_token":
		acct, err = s.refreshAccount(ctx, req.refresh, addr)
	case GrantTokenExchange:
		if s.oidc == nil {
			err = &errBadRequest{msg: "this registry trusts no ID tokens (auth.oidc.trust is empty)", oauth: "unsupported_grant_type"}
			break
		}
		id, err = s.oidcLogin(ctx, req.subject, addr)
	}
	if id != nil {
		acct = id.account
		if api {
			err = &errBadRequest{msg: "an ID token is not exchanged for an API token: send it to /api/v1 itself (Authorization: Bearer <ID token>)", oauth: "invalid_scope"}
		}
	}
	if err == nil && api && acct == nil {
		err = errAPIAnonymous
	}
	if err != nil {
		s.tokenFail(c, req, err)
		return
	}
	sub := ""
	if acct != nil {
		sub = acct.Name
		// The access log names who got the token.
		c.Request = c.Request.WithContext(WithPrincipal(ctx, Principal{Name: acct.Name, Admin: acct.Admin, Robot: acct.Robot}))
	}
	var granted []Access
	var token string
	var issued time.Time
	ttl := s.tokens.ttl
	if id != nil {
		ttl = id.ttl(s.now(), ttl)
	}
	if api {
		granted = apiAccess()
		token, issued, err = s.tokens.issueAPI(sub)
	} else {
		granted = s.policy.Grant(acct, requested)
		token, issued, err = s.tokens.issueTTL(sub, granted, ttl)
	}
	if err != nil {
		s.tokenFail(c, req, err)
		return
	}
	resp := TokenResponse{
		Token: token, AccessToken: token,
		ExpiresIn: int(ttl / time.Second),
		IssuedAt:  issued.UTC().Format(time.RFC3339),
		Scope:     grantedScope(granted),
	}
	if req.grant == GrantTokenExchange {
		resp.IssuedTokenType, resp.TokenType = TokenTypeAccess, "Bearer"
	}
	// An ID token gets no refresh token: the job asks its platform for a
	// new ID token instead.
	if req.offline && req.grant == "password" && id == nil {
		if resp.RefreshToken, err = s.tokens.issueRefresh(acct.Name, acct.bind); err != nil {
			s.tokenFail(c, req, err)
			return
		}
	}
	c.JSON(http.StatusOK, resp)
}

// wantsAPI reports whether requested asks for an API token: the scope
// api:v1:* and no other. Mixed with registry scopes it is refused, since
// one token is never both kinds.
func wantsAPI(requested []Access) (bool, error) {
	for _, r := range requested {
		if r.Type != TypeAPI {
			continue
		}
		if r.Name != NameAPI || !slices.Equal(r.Actions, []string{"*"}) || len(requested) != 1 {
			return false, &errBadRequest{msg: "an API token is asked for with the scope " + apiScope() + " alone", oauth: "invalid_scope"}
		}
		return true, nil
	}
	return false, nil
}

// errAPIAnonymous: an API token names an account, so it needs credentials.
var errAPIAnonymous = errors.New("an API token needs credentials: HTTP Basic, or a refresh token")

func readTokenRequest(c *gin.Context) (tokenRequest, error) {
	r := c.Request
	if len(r.URL.RawQuery) > maxTokenRequest {
		return tokenRequest{oauth: r.Method != http.MethodGet}, &errBadRequest{
			msg: fmt.Sprintf("query string longer than %d bytes", maxTokenRequest), oauth: "invalid_request"}
	}
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		req := tokenRequest{grant: "anonymous", service: q.Get("service"), scopes: q["scope"], offline: q.Get("offline_token") == "true"}
		if r.Header.Get("Authorization") != "" {
			user, pw, ok := r.BasicAuth()
			if !ok {
				return req, errBadCredentials
			}
			req.grant, req.username, req.password = "password", user, pw
		}
		return req, nil
	}
	req := tokenRequest{oauth: true}
	if e := httpbody.ParseForm(c.Writer, r, maxTokenRequest); e != nil {
		return req, &errBadRequest{status: e.Status, msg: e.Message, oauth: "invalid_request"}
	}
	f := r.PostForm
	req.grant, req.service, req.scopes = f.Get("grant_type"), f.Get("service"), f["scope"]
	req.offline = f.Get("access_type") == "offline"
	switch req.grant {
	case "password":
		req.username, req.password = f.Get("username"), f.Get("password")
		if req.username == "" {
			return req, &errBadRequest{msg: "grant_type=password needs username and password", oauth: "invalid_request"}
		}
	case "refresh_token":
		req.refresh = f.Get("refresh_token")
		if req.refresh == "" {
			return req, &errBadRequest{msg: "grant_type=refresh_token needs refresh_token", oauth: "invalid_request"}
		}
	case GrantTokenExchange:
		if err := readExchange(&req, f); err != nil {
			return req, err
		}
	default:
		return req, &errBadRequest{msg: "grant_type must be password, refresh_token or " + GrantTokenExchange, oauth: "unsupported_grant_type"}
	}
	return req, nil
}

// readExchange reads an RFC 8693 token exchange (§2.1): an ID token as
// subject_token, for an access token; no delegation (actor_token).
func readExchange(req *tokenRequest, f url.Values) error {
	req.subject = f.Get("subject_token")
	bad := func(msg string) error { return &errBadRequest{msg: msg, oauth: "invalid_request"} }
	switch tt := f.Get("subject_token_type"); {
	case req.subject == "":
		return bad("a token exchange needs subject_token (the CI job's ID token)")
	case tt != TokenTypeIDToken && tt != TokenTypeJWT:
		return bad("subject_token_type must be " + TokenTypeIDToken + " (or " + TokenTypeJWT + "), got " + quoteShort(tt))
	case f.Get("requested_token_type") != "" && f.Get("requested_token_type") != TokenTypeAccess:
		return bad("requested_token_type may only be " + TokenTypeAccess)
	case f.Get("actor_token") != "":
		return bad("delegation (actor_token) is not supported")
	}
	return nil
}

// refreshAccount checks a refresh token and the account it names as it is
// now: a robot revoked (or re-created: another id) or a user whose password
// changed gets nothing, at once.
func (s *Service) refreshAccount(ctx context.Context, token, addr string) (*Account, error) {
	if wait := s.throttle.waitAddress(addr); wait > 0 {
		return nil, &throttledError{wait: wait}
	}
	claims, err := s.tokens.verifyRefresh(token)
	if err != nil {
		s.throttle.failAddress(addr)
		return nil, errBadRefresh
	}
	acct, err := s.account(ctx, claims.Subject)
	if err != nil {
		return nil, err
	}
	if acct == nil || acct.bind != claims.Bind {
		s.log.InfoContext(ctx, "refresh token refused: account revoked or changed", "account", claims.Subject, "remote", addr)
		return nil, errBadRefresh
	}
	if acct.Robot {
		s.robots.touch(strings.TrimPrefix(acct.Name, RobotPrefix), acct.bind)
	}
	return acct, nil
}

// errBadRefresh: invalid, expired or revoked refresh token.
var errBadRefresh = errors.New("invalid, expired or revoked refresh token")

func (s *Service) tokenFail(c *gin.Context, req tokenRequest, err error) {
	var status int
	var code errcode.ErrorCode
	var oauth string
	msg := err.Error()
	var bad *errBadRequest
	var throttled *throttledError
	var refused *oidcError
	switch {
	case errors.As(err, &refused) && refused.unavailable:
		status, code, oauth = http.StatusServiceUnavailable, errcode.ErrorCodeUnavailable, "temporarily_unavailable"
	case errors.As(err, &refused) && req.grant == GrantTokenExchange:
		// RFC 8693 §2.2.2: an unacceptable subject_token is invalid_request.
		status, code, oauth = http.StatusBadRequest, errcode.ErrorCodeUnauthorized, "invalid_request"
	case errors.As(err, &refused):
		status, code, oauth = http.StatusUnauthorized, errcode.ErrorCodeUnauthorized, "invalid_grant"
	case errors.As(err, &bad):
		status, code, oauth = cmp.Or(bad.status, http.StatusBadRequest), errcode.ErrorCodeUnsupported, bad.oauth
	case errors.As(err, &throttled):
		retryAfter(c, throttled.wait)
		status, code, oauth = http.StatusTooManyRequests, errcode.ErrorCodeTooManyRequests, "invalid_grant"
		msg = "too many failed logins: try again later"
	case errors.Is(err, errBadCredentials), errors.Is(err, errBadRefresh), errors.Is(err, errAPIAnonymous):
		status, code, oauth = http.StatusUnauthorized, errcode.ErrorCodeUnauthorized, "invalid_grant"
	case isUnavailable(err):
		status, code, oauth = http.StatusServiceUnavailable, errcode.ErrorCodeUnavailable, "temporarily_unavailable"
		msg = "storage is unavailable, try again later"
		s.log.ErrorContext(c.Request.Context(), "token request failed", "error", err.Error())
	default:
		status, code, oauth = http.StatusInternalServerError, errcode.ErrorCodeUnknown, "server_error"
		msg = "internal error"
		s.log.ErrorContext(c.Request.Context(), "token request failed", "error", err.Error())
	}
	body := ociBody{Errors: []errcode.Error{{Code: code, Message: msg}}}
	if req.oauth {
		body.OAuthError, body.Description = oauth, msg
	}
	writeOCI(c, status, body)
}

// grantedScope is the OAuth2 "scope" of an answer: the granted entries.
func grantedScope(granted []Access) string {
	var parts []string
	for _, a := range granted {
		if len(a.Actions) > 0 {
			parts = append(parts, FormatScope(a))
		}
	}
	return strings.Join(parts, " ")
}

func quoteShort(s string) string {
	return `"` + truncate(s, 64) + `"`
}

// JWKS serves the public keys tokens verify against.
func (s *Service) JWKS(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=300")
	c.JSON(http.StatusOK, s.keys.jwks)
}
