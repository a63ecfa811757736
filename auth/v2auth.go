package auth

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gin-gonic/gin"

	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/registry"
)

// requirement is what a /v2/ request needs its token to grant.
type requirement struct {
	typ, name string
	actions   []string // every one of them; none: any valid token will do
	// mountFrom is the source of a cross-repository mount: its pull is
	// not required (without it the mount is dropped), but challenges ask
	// for it, so that a client can get a token that mounts.
	mountFrom string
}

// accessDetail is the "detail" of an UNAUTHORIZED or DENIED error, shaped
// as distribution's.
type accessDetail struct {
	Type   string `json:"Type"`
	Name   string `json:"Name"`
	Action string `json:"Action"`
}

// required maps a /v2/ request to the access it needs:
//
//	GET /v2/                      any valid token
//	GET /v2/_catalog              registry:catalog:*
//	GET, HEAD                     pull
//	POST, PUT, PATCH              pull + push
//	DELETE                        delete (of an upload session: push,
//	                              since cancelling one's own upload is
//	                              part of pushing)
//
// A cross-repository mount also needs pull on "from"; see checkMount.
// rt and ok are the request's route (registry.RouteOf).
func required(rt registry.Route, ok bool, method string) requirement {
	if !ok || rt.Kind == registry.KindBase {
		return requirement{}
	}
	if rt.Kind == registry.KindCatalog {
		return requirement{typ: TypeRegistry, name: NameCatalog, actions: []string{"*"}}
	}
	if !names.ValidRepository(rt.Name) {
		return requirement{} // the registry answers NAME_INVALID
	}
	r := requirement{typ: TypeRepository, name: rt.Name}
	switch method {
	case http.MethodGet, http.MethodHead:
		r.actions = []string{ActionPull}
	case http.MethodDelete:
		r.actions = []string{ActionDelete}
		if rt.Kind == registry.KindUpload {
			r.actions = []string{ActionPush}
		}
	default:
		r.actions = []string{ActionPull, ActionPush}
	}
	return r
}

func (r requirement) scope() string {
	if len(r.actions) == 0 {
		return ""
	}
	s := FormatScope(Access{Type: r.typ, Name: r.name, Actions: r.actions})
	if r.mountFrom != "" {
		s += " " + FormatScope(Access{Type: TypeRepository, Name: r.mountFrom, Actions: []string{ActionPull}})
	}
	return s
}

// mountSource is the repository a POST ?mount=&from= reads, when it is a
// valid name other than the target's ("" otherwise).
func mountSource(r *http.Request, need requirement) string {
	if need.typ != TypeRepository || r.Method != http.MethodPost {
		return ""
	}
	q := r.URL.Query()
	from := q.Get("from")
	if q.Get("mount") == "" || from == "" || from == need.name {
		return ""
	}
	if !names.ValidRepository(from) {
		return ""
	}
	return from
}

func (r requirement) satisfiedBy(c *Claims) bool {
	for _, a := range r.actions {
		if !c.Allows(r.typ, r.name, a) {
			return false
		}
	}
	return true
}

func (r requirement) detail() []accessDetail {
	var d []accessDetail
	for _, a := range r.actions {
		d = append(d, accessDetail{Type: r.typ, Name: r.name, Action: a})
	}
	return d
}

// V2 is the /v2/ middleware. Without a token it answers 401 with the
// Bearer challenge naming the scope the request needs, as clients expect;
// with an invalid one, 401 with error="invalid_token". A valid token that
// lacks the scope gets 401 error="insufficient_scope" when the account
// could get that scope (the client fetches a new token and retries), and
// 403 DENIED when policy forbids it (docker prints "denied: …"): a
// repository the account has no grant on, or push/delete in an immutable
// stage, which even admins never get. A cross-repository mount's
// challenges also ask for pull on "from" (see checkMount).
func (s *Service) V2(c *gin.Context) {
	c.Header("Docker-Distribution-API-Version", "registry/2.0")
	rt, ok := registry.RouteOf(c)
	req := c.Request
	need := required(rt, ok, req.Method)
	need.mountFrom = mountSource(req, need)
	raw, ok := bearerToken(req)
	if !ok {
		s.challenge(c, need, "", "authentication required")
		return
	}
	claims, err := s.tokens.verify(raw)
	if err != nil {
		s.challenge(c, need, "invalid_token", "invalid or expired token")
		return
	}
	if !need.satisfiedBy(claims) {
		s.insufficient(c, need, claims)
		return
	}
	if need.typ == TypeRepository && req.Method == http.MethodPost && !s.checkMount(c, need, claims) {
		return
	}
	c.Request = req.WithContext(WithPrincipal(req.Context(), s.principal(claims.Subject)))
	c.Next()
}

// principal describes a token's subject without a store read: robots are
// never admins, and users are in memory.
func (s *Service) principal(sub string) Principal {
	p := Principal{Name: sub, Robot: strings.HasPrefix(sub, RobotPrefix)}
	if u, ok := s.users[sub]; ok {
		p.Admin = u.Admin
	}
	return p
}

// checkMount: a cross-repository mount reads "from", so it needs pull
// there too. When the token lacks it but the account may pull there, the
// answer is 401 insufficient_scope, whose challenge asks for both scopes
// (the client fetches that token and retries), and checkMount returns
// false. Otherwise the mount is dropped and the request becomes a plain
// upload (202), as when the source does not have the blob.
func (s *Service) checkMount(c *gin.Context, need requirement, claims *Claims) bool {
	q := c.Request.URL.Query()
	if q.Get("mount") == "" {
		return true
	}
	if from := q.Get("from"); from != "" && claims.Allows(TypeRepository, from, ActionPull) {
		return true
	}
	if need.mountFrom != "" && claims.Subject != "" {
		ctx := c.Request.Context()
		acct, err := s.account(ctx, claims.Subject)
		if err != nil {
			s.log.WarnContext(ctx, "looking up an account for a mount; uploading instead", "account", claims.Subject, "error", err.Error())
		} else if acct != nil && slices.Contains(s.policy.Allowed(acct, TypeRepository, need.mountFrom), ActionPull) {
			s.challenge(c, need, "insufficient_scope", "insufficient scope: the token does not grant "+need.scope())
			return false
		}
	}
	q.Del("mount")
	q.Del("from")
	q.Del("digest") // ignored beside a mount; alone it would mean a monolithic upload
	c.Request.URL.RawQuery = q.Encode()
	return true
}

// insufficient answers a valid token that does not grant what is needed.
func (s *Service) insufficient(c *gin.Context, need requirement, claims *Claims) {
	if claims.Subject == "" {
		s.challenge(c, need, "insufficient_scope", "authentication required")
		return
	}
	ctx := c.Request.Context()
	acct, err := s.account(ctx, claims.Subject)
	if err != nil {
		s.log.ErrorContext(ctx, "looking up an account", "account", claims.Subject, "error", err.Error())
		status, code := http.StatusInternalServerError, errcode.ErrorCodeUnknown
		if isUnavailable(err) {
			status, code = http.StatusServiceUnavailable, errcode.ErrorCodeUnavailable
		}
		ociFail(c, status, code, "cannot check access now", nil)
		return
	}
	if acct == nil {
		acct = oidcUpperBound(claims.Subject)
	}
	allowed := s.policy.Allowed(acct, need.typ, need.name)
	var denied []string
	for _, a := range need.actions {
		if !slices.Contains(allowed, a) && !slices.Contains(allowed, "*") {
			denied = append(denied, a)
		}
	}
	if len(denied) == 0 {
		s.challenge(c, need, "insufficient_scope", "insufficient scope: the token does not grant "+need.scope())
		return
	}
	msg := "requested access to the resource is denied"
	if stage, ok := s.policy.ImmutableStage(need.name); ok && (slices.Contains(denied, ActionPush) || slices.Contains(denied, ActionDelete)) {
		msg = fmt.Sprintf("%s is in the immutable stage %q: nobody pushes or deletes there, only promotion writes", need.name, stage)
	}
	ociFail(c, http.StatusForbidden, errcode.ErrorCodeDenied, msg, need.detail())
}

// challenge answers 401 with the Bearer challenge.
func (s *Service) challenge(c *gin.Context, need requirement, errKind, msg string) {
	v := `Bearer realm="` + quoteEscape(s.realm(c.Request)) +
		`",service="` + quoteEscape(s.opts.Auth.Service) + `"`
	if sc := need.scope(); sc != "" {
		v += `,scope="` + quoteEscape(sc) + `"`
	}
	if errKind != "" {
		v += `,error="` + errKind + `"`
	}
	c.Header("WWW-Authenticate", v)
	var detail any
	if d := need.detail(); d != nil {
		detail = d
	}
	ociFail(c, http.StatusUnauthorized, errcode.ErrorCodeUnauthorized, msg, detail)
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// quoteEscape makes s safe inside a quoted-string of a header.
func quoteEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}
