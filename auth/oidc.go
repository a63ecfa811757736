package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/internal/names"
)

// ID tokens from CI platforms (auth.oidc.trust): a job presents the token
// its platform signed for it — as the password of the login "oidc", as the
// subject_token of an RFC 8693 exchange, or to /api/ — and gets what the
// trust rules it matches grant, under the name oidc:<issuer host>:<sub>.
//
// go-oidc does the verification: discovery, the issuer's keys (cached,
// fetched again when a token names a key id the cache lacks, which
// boundedFetch bounds), signature and algorithm, issuer, expiry. This file
// adds what is Slipway's: the audience and claims of each rule, nbf within
// the tokens' usual leeway (go-oidc allows 5 minutes), the grants, and
// refusals that say what was wrong.

// maxIDToken bounds an ID token's length: real ones are 1-2 KiB.
const maxIDToken = 16 << 10

// signingAlgs are the algorithms an issuer may sign with (what go-oidc
// supports, asymmetric only).
var signingAlgs = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}

// oidcTrust holds the trust rules, by issuer.
type oidcTrust struct {
	issuers   map[string]*oidcIssuer // by the exact "iss"
	logClaims []string
	now       func() time.Time
}

type trustRule struct {
	name string // its configured name, or "auth.oidc.trust[i]"
	cfg  config.TrustRule
}

// oidcIssuer is one trusted issuer: its rules and, once discovery has
// succeeded, its verifier.
type oidcIssuer struct {
	url, host   string
	rules       []trustRule
	fetch       *boundedFetch
	ctx         context.Context // carries the HTTP client for go-oidc
	minInterval time.Duration
	now         func() time.Time

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	jwksURL  string
	tried    time.Time // the last discovery attempt that failed
	failed   error
}

// newOIDCTrust builds the rules of o (nil when there are none). Nothing
// is fetched yet: an issuer down at start delays nobody's password login.
func newOIDCTrust(o config.OIDC, now func() time.Time) *oidcTrust {
	if len(o.Trust) == 0 {
		return nil
	}
	t := &oidcTrust{issuers: map[string]*oidcIssuer{}, logClaims: o.ClaimsToLog(), now: now}
	base := http.DefaultTransport.(*http.Transport).Clone()
	for i, r := range o.Trust {
		name := r.Name
		if name == "" {
			name = fmt.Sprintf("auth.oidc.trust[%d]", i)
		}
		is, ok := t.issuers[r.Issuer]
		if !ok {
			u, _ := url.Parse(r.Issuer) // validated by config
			fetch := newBoundedFetch(base, o.RefreshMinInterval(), now)
			client := &http.Client{Transport: fetch, Timeout: issuerFetchTimeout}
			is = &oidcIssuer{url: r.Issuer, host: u.Host, fetch: fetch, minInterval: o.RefreshMinInterval(), now: now,
				ctx: oidc.ClientContext(context.Background(), client)}
			t.issuers[r.Issuer] = is
		}
		is.rules = append(is.rules, trustRule{name: name, cfg: r})
	}
	return t
}

// oidcError is a refused ID token: msg is for the caller (what was wrong,
// nothing of the configuration beyond rule and claim names), detail for
// the log. unavailable: the issuer could not be asked (503).
type oidcError struct {
	unavailable bool
	msg, detail string
}

func (e *oidcError) Error() string { return e.msg }

func refuse(format string, args ...any) *oidcError {
	return &oidcError{msg: fmt.Sprintf(format, args...)}
}

// oidcIdentity is an ID token that trust rules accepted.
type oidcIdentity struct {
	account *Account // the principal and its grants
	expiry  time.Time
	rules   []string
	log     []any // slog attributes: issuer, rules, chosen claims
}

// ttl is how long an access token for id may last: at most max, at most
// the ID token's remaining life (whole seconds).
func (id *oidcIdentity) ttl(now time.Time, max time.Duration) time.Duration {
	return min(max, id.expiry.Sub(now).Truncate(time.Second))
}

// peekIssuer reads a JWT's "iss" without verifying anything: it only
// chooses which issuer's verifier to ask.
func peekIssuer(raw string) (string, bool) {
	if len(raw) > maxIDToken || strings.Count(raw, ".") != 2 {
		return "", false
	}
	payload := raw[strings.IndexByte(raw, '.')+1 : strings.LastIndexByte(raw, '.')]
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return "", false
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(b, &c) != nil || c.Iss == "" {
		return "", false
	}
	return c.Iss, true
}

// peekKID reads a JWT's header "kid", for refusals only.
func peekKID(raw string) string {
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return ""
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(b, &hdr)
	return hdr.Kid
}

// verifier returns the issuer's verifier, running discovery on first need.
// After a failure, discovery is tried again only minInterval later; until
// then every exchange is answered 503 at once.
func (is *oidcIssuer) verifierFor() (*oidc.IDTokenVerifier, string, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.verifier != nil {
		return is.verifier, is.jwksURL, nil
	}
	if is.failed != nil && is.now().Sub(is.tried) < is.minInterval {
		return nil, "", is.failed
	}
	ctx, cancel := context.WithTimeout(is.ctx, issuerFetchTimeout)
	defer cancel()
	p, err := oidc.NewProvider(ctx, is.url)
	var meta struct {
		JWKS string   `json:"jwks_uri"`
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	if err == nil {
		err = p.Claims(&meta)
	}
	if err == nil && meta.JWKS == "" {
		err = errors.New("the discovery document has no jwks_uri")
	}
	if err != nil {
		is.tried, is.failed = is.now(), err
		return nil, "", err
	}
	algs := slices.DeleteFunc(meta.Algs, func(a string) bool { return !slices.Contains(signingAlgs, a) })
	if len(algs) == 0 {
		algs = []string{"RS256"} // the one OpenID Connect requires
	}
	keys := oidc.NewRemoteKeySet(is.ctx, meta.JWKS)
	is.verifier = oidc.NewVerifier(is.url, keys, &oidc.Config{SkipClientIDCheck: true, SupportedSigningAlgs: algs, Now: is.now})
	is.jwksURL, is.failed = meta.JWKS, nil
	return is.verifier, is.jwksURL, nil
}

// verify checks raw and matches it against the rules. Every refusal is an
// *oidcError.
func (t *oidcTrust) verify(ctx context.Context, raw string) (*oidcIdentity, error) {
	iss, ok := peekIssuer(raw)
	if !ok {
		return nil, refuse("not an ID token (a signed JWT with an issuer)")
	}
	is := t.issuers[iss]
	if is == nil {
		return nil, refuse("untrusted issuer %s: no auth.oidc.trust rule names it", quoteShort(iss))
	}
	v, jwksURL, err := is.verifierFor()
	if err != nil {
		return nil, &oidcError{unavailable: true, msg: "the ID token's issuer " + is.url + " cannot be reached now (discovery): try again later", detail: err.Error()}
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, is.verifyError(err, jwksURL, peekKID(raw))
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, refuse("unreadable ID token claims")
	}
	now := t.now()
	if tok.Subject == "" {
		return nil, refuse("the ID token has no sub claim")
	}
	if nbf, ok := claims["nbf"].(float64); ok {
		if at := time.Unix(int64(nbf), 0); at.After(now.Add(leeway)) {
			return nil, refuse("the ID token is not valid before %s (nbf is in the future)", at.UTC().Format(time.RFC3339))
		}
	}
	if tok.Expiry.Sub(now) < time.Second {
		return nil, refuse("the ID token expired at %s", tok.Expiry.UTC().Format(time.RFC3339))
	}
	matched, err := is.match(tok.Audience, claims)
	if err != nil {
		return nil, err
	}
	acct := &Account{Name: oidcPrefix + is.host + ":" + tok.Subject}
	id := &oidcIdentity{account: acct, expiry: tok.Expiry}
	var dropped []string
	for _, r := range matched {
		id.rules = append(id.rules, r.name)
		for _, g := range r.cfg.Grants {
			repos, why := substitute(g.Repos, claims)
			if why != "" {
				dropped = append(dropped, r.name+": "+g.Repos+": "+why)
				continue
			}
			acct.Grants = append(acct.Grants, config.Grant{Repos: repos, Actions: g.Actions})
		}
	}
	id.log = []any{slog.String("principal", acct.Name), slog.String("issuer", is.url), slog.Any("rules", id.rules),
		slog.Time("id_token_expires", tok.Expiry)}
	var detail []string
	for _, c := range t.logClaims {
		if s, ok := claimString(claims[c]); ok {
			id.log = append(id.log, slog.String("claim_"+c, truncate(s, 200)))
			detail = append(detail, c+"="+truncate(s, 200))
		}
	}
	acct.Detail = strings.Join(detail, " ")
	if len(dropped) > 0 {
		id.log = append(id.log, slog.Any("grants_dropped", dropped))
	}
	return id, nil
}

// verifyError words go-oidc's refusal. Its errors are strings, so the
// kind is told by type (expiry) or by what the fetch layer saw.
func (is *oidcIssuer) verifyError(err error, jwksURL, kid string) error {
	var expired *oidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &expired):
		return &oidcError{msg: "the ID token expired at " + expired.Expiry.UTC().Format(time.RFC3339), detail: msg}
	case strings.HasPrefix(msg, "failed to verify signature"):
		kids, fetched, ferr := is.fetch.last(jwksURL)
		var down *errIssuerUnreachable
		if errors.As(ferr, &down) {
			return &oidcError{unavailable: true, msg: "the ID token's issuer " + is.url + " cannot be reached now (keys): try again later", detail: down.Error()}
		}
		if fetched && kid != "" && !slices.Contains(kids, kid) {
			return &oidcError{msg: fmt.Sprintf("the ID token is signed with key id %s, which the issuer's key set does not list (fetched again at most every %s)",
				quoteShort(kid), is.minInterval), detail: msg}
		}
		return &oidcError{msg: "the ID token's signature does not verify with the issuer's keys", detail: msg}
	case strings.Contains(msg, "nbf"):
		return &oidcError{msg: "the ID token is not valid yet (nbf is in the future)", detail: msg}
	case strings.Contains(msg, "malformed jwt"):
		return &oidcError{msg: "malformed ID token, or signed with an algorithm the issuer does not use", detail: msg}
	}
	return &oidcError{msg: "invalid ID token", detail: msg}
}

// match returns the rules whose audience the token has and whose claims
// it matches. None: a refusal naming, for each rule of the right audience,
// the claims that did not match and the token's values (the caller's own,
// not the rule's).
func (is *oidcIssuer) match(aud []string, claims map[string]any) ([]trustRule, error) {
	var matched []trustRule
	var why, detail []string
	audOK := false
	for _, r := range is.rules {
		if !slices.Contains(aud, r.cfg.Audience) {
			continue
		}
		audOK = true
		var miss, missDetail []string
		for _, name := range sortedClaimNames(r.cfg.Claims) {
			want := r.cfg.Claims[name]
			got, present := claims[name]
			s, ok := claimString(got)
			switch {
			case !present:
				miss = append(miss, name+" (missing)")
			case !ok:
				miss = append(miss, name+" (not a single value)")
			case MatchGlob(want, s):
				continue
			default:
				miss = append(miss, name+"="+strconv.Quote(truncate(s, 64)))
			}
			missDetail = append(missDetail, fmt.Sprintf("%s want %q", name, want))
		}
		if len(miss) == 0 {
			matched = append(matched, r)
			continue
		}
		why = append(why, fmt.Sprintf("rule %q: %s", r.name, strings.Join(miss, ", ")))
		detail = append(detail, fmt.Sprintf("rule %q: %s", r.name, strings.Join(missDetail, ", ")))
	}
	if !audOK {
		return nil, &oidcError{msg: fmt.Sprintf("the ID token's audience %s is not accepted from issuer %s", quoteShort(strings.Join(aud, " ")), is.url)}
	}
	if len(matched) == 0 {
		return nil, &oidcError{msg: "no auth.oidc.trust rule matches the ID token's claims: " + strings.Join(why, "; "), detail: strings.Join(detail, "; ")}
	}
	return matched, nil
}

func sortedClaimNames(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// claimString is a claim's value as text: a string, number or boolean.
func claimString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// substitute fills a grant's "{claim}" placeholders. Only a string claim
// that is a valid repository name may stand in a grant: it can add path
// components, never wildcards or "..". why says what was wrong otherwise.
func substitute(pattern string, claims map[string]any) (out, why string) {
	parts, ok := config.SplitGrantPattern(pattern)
	if !ok {
		return "", "bad placeholder"
	}
	var b strings.Builder
	for i, p := range parts {
		if i%2 == 0 {
			b.WriteString(p)
			continue
		}
		s, ok := claims[p].(string)
		if !ok || !names.ValidRepository(s) {
			return "", "claim " + p + " is missing or not a repository name"
		}
		b.WriteString(s)
	}
	return b.String(), ""
}

// oidcLogin checks an ID token presented to log in, throttled per client
// address like a refresh token (the account is not known before).
func (s *Service) oidcLogin(ctx context.Context, raw, addr string) (*oidcIdentity, error) {
	if s.oidc == nil {
		return nil, errBadCredentials
	}
	if wait := s.throttle.waitAddress(addr); wait > 0 {
		return nil, &throttledError{wait: wait}
	}
	id, err := s.oidc.verify(ctx, strings.TrimSpace(raw)) // a token pasted or read from a file ends with a newline
	var oe *oidcError
	switch {
	case errors.As(err, &oe) && oe.unavailable:
		s.log.WarnContext(ctx, "ID token not checked: issuer unreachable", "reason", oe.msg, "error", oe.detail, "remote", addr)
		return nil, err
	case errors.As(err, &oe):
		s.throttle.failAddress(addr)
		s.log.InfoContext(ctx, "ID token refused", "reason", oe.msg, "detail", oe.detail, "remote", addr)
		return nil, err
	case err != nil:
		return nil, err
	}
	s.log.InfoContext(ctx, "ID token accepted", append(id.log, slog.String("remote", addr))...)
	return id, nil
}

// oidcPrefix starts every ID token's principal name.
const oidcPrefix = "oidc:"

// oidcUpperBound stands for an ID token's principal (nil for any other
// name) when /v2/ must tell "the token lacks this" (401: ask again) from
// "policy forbids it" (403): its grants are not stored anywhere, only its
// next exchange knows them, so anything that policy would allow someone
// is worth asking for — but not push into an immutable stage.
func oidcUpperBound(sub string) *Account {
	if !strings.HasPrefix(sub, oidcPrefix) {
		return nil
	}
	return &Account{Name: sub, Grants: []config.Grant{{Repos: "*", Actions: allActions}}}
}

// oidcLoginName reports whether a Basic login name means "the password is
// an ID token": "oidc", when trust rules are configured.
func (s *Service) oidcLoginName(name string) bool {
	return s.oidc != nil && name == config.OIDCLogin
}
