package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
)

// leeway is the clock skew tolerated between replicas and clients.
const leeway = 30 * time.Second

// refreshType marks refresh tokens in their JWT header ("typ"); access
// tokens have "JWT". A refresh token also has its own audience, so neither
// kind is ever accepted as the other.
const refreshType = "refresh+jwt"

// apiType marks API tokens (see issueAPI) the same way: their own "typ"
// and audience, so a registry token never opens /api/ and an API token
// never opens /v2/.
const apiType = "api+jwt"

// The scope that asks /auth/token for an API token instead of a registry
// one: "api:v1:*", alone in its request.
const (
	TypeAPI = "api"
	NameAPI = "v1"
)

// Access is one entry of a token's "access" claim, as in the Docker token
// specification: the actions granted on one resource.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Claims are the claims of an access token.
type Claims struct {
	jwt.RegisteredClaims
	Access []Access `json:"access"`
}

// Allows reports whether the token grants action on typ:name.
func (c *Claims) Allows(typ, name, action string) bool {
	for _, a := range c.Access {
		if a.Type != typ || a.Name != name {
			continue
		}
		for _, got := range a.Actions {
			if got == action || got == "*" {
				return true
			}
		}
	}
	return false
}

// refreshClaims are the claims of a refresh token: whom it is for, and the
// binding ("bnd") that must still match the account when it is used (a
// robot's random id, a user's credential fingerprint).
type refreshClaims struct {
	jwt.RegisteredClaims
	Bind string `json:"bnd"`
}

// tokens issues and verifies both kinds of token.
type tokens struct {
	keys            *keySet
	issuer, service string
	ttl, refreshTTL time.Duration
	now             func() time.Time
	access, refresh *jwt.Parser
	api             *jwt.Parser
	// verified remembers access tokens whose signature and claims were
	// checked, by SHA-256 of the token: docker and containerd reuse one
	// token for every request of a pull, and an ES256 verification costs
	// more than the rest of a manifest HEAD (BENCHMARKS.md). The times are
	// checked again on every use. Keys only change with a restart, which
	// empties it.
	verified *lru.Cache[[32]byte, *Claims]
}

// verifiedEntries bounds the verified-token cache (~200 bytes an entry).
const verifiedEntries = 8192

func newTokens(keys *keySet, issuer, service string, ttl, refreshTTL time.Duration, now func() time.Time) *tokens {
	opts := func(aud string) []jwt.ParserOption {
		return []jwt.ParserOption{
			jwt.WithValidMethods(keys.algs),
			jwt.WithIssuer(issuer),
			jwt.WithAudience(aud),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(leeway),
			jwt.WithTimeFunc(now),
		}
	}
	verified, _ := lru.New[[32]byte, *Claims](verifiedEntries)
	return &tokens{
		keys: keys, issuer: issuer, service: service, ttl: ttl, refreshTTL: refreshTTL, now: now,
		verified: verified,
		access:   jwt.NewParser(opts(service)...),
		refresh:  jwt.NewParser(opts(refreshAudience(service))...),
		api:      jwt.NewParser(opts(apiAudience(service))...),
	}
}

func refreshAudience(service string) string { return service + "#refresh" }

func apiAudience(service string) string { return service + "#api" }

// apiAccess is the access claim of every API token.
func apiAccess() []Access {
	return []Access{{Type: TypeAPI, Name: NameAPI, Actions: []string{"*"}}}
}

// apiScope is the scope that asks for an API token: "api:v1:*".
func apiScope() string { return FormatScope(apiAccess()[0]) }

func (t *tokens) registered(sub, aud string, now time.Time, ttl time.Duration) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{
		Issuer:    t.issuer,
		Subject:   sub,
		Audience:  jwt.ClaimStrings{aud},
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		NotBefore: jwt.NewNumericDate(now),
		IssuedAt:  jwt.NewNumericDate(now),
		ID:        rand.Text(),
	}
}

func (t *tokens) sign(claims jwt.Claims, typ string) (string, error) {
	k := t.keys.signing
	tok := jwt.NewWithClaims(k.method, claims)
	tok.Header["kid"] = k.kid
	tok.Header["typ"] = typ
	return tok.SignedString(k.private)
}

// issue signs an access token for sub (empty: anonymous) granting access.
func (t *tokens) issue(sub string, access []Access) (token string, issued time.Time, err error) {
	return t.issueTTL(sub, access, t.ttl)
}

// issueTTL is issue with a life of ttl instead of token_ttl (shorter: an
// ID token's remaining life).
func (t *tokens) issueTTL(sub string, access []Access, ttl time.Duration) (token string, issued time.Time, err error) {
	now := t.now().Truncate(time.Second)
	if access == nil {
		access = []Access{}
	}
	token, err = t.sign(&Claims{RegisteredClaims: t.registered(sub, t.service, now, ttl), Access: access}, "JWT")
	return token, now, err
}

// issueAPI signs an API token for sub: what /api/v1 accepts besides Basic
// credentials. It names the account and nothing else; handlers decide
// what the account may do, as they do for Basic.
func (t *tokens) issueAPI(sub string) (token string, issued time.Time, err error) {
	now := t.now().Truncate(time.Second)
	token, err = t.sign(&Claims{RegisteredClaims: t.registered(sub, apiAudience(t.service), now, t.ttl), Access: apiAccess()}, apiType)
	return token, now, err
}

// issueRefresh signs a refresh token for sub bound to bind.
func (t *tokens) issueRefresh(sub, bind string) (string, error) {
	now := t.now().Truncate(time.Second)
	return t.sign(&refreshClaims{RegisteredClaims: t.registered(sub, refreshAudience(t.service), now, t.refreshTTL), Bind: bind}, refreshType)
}

// keyFor is the key function: the token's kid must name a key of the set,
// and its alg must be that key's own (so a public key can never be used
// as an HMAC secret, whatever the header says).
func (t *tokens) keyFor(wantTyp string) jwt.Keyfunc {
	return func(tok *jwt.Token) (any, error) {
		if typ, _ := tok.Header["typ"].(string); typ != wantTyp {
			return nil, fmt.Errorf("token type %q, want %q", typ, wantTyp)
		}
		kid, _ := tok.Header["kid"].(string)
		k, ok := t.keys.byKID[kid]
		if !ok {
			return nil, errors.New("unknown signing key")
		}
		if tok.Method.Alg() != k.alg {
			return nil, fmt.Errorf("algorithm %s does not match key %s (%s)", tok.Method.Alg(), kid, k.alg)
		}
		return k.key, nil
	}
}

// verify checks an access token: signature by a known key with an allowed
// algorithm, issuer, audience, and times (exp required; 30s leeway).
func (t *tokens) verify(s string) (*Claims, error) {
	sum := sha256.Sum256([]byte(s))
	if c, ok := t.verified.Get(sum); ok {
		now := t.now()
		if now.After(c.ExpiresAt.Add(leeway)) || (c.NotBefore != nil && now.Before(c.NotBefore.Add(-leeway))) {
			t.verified.Remove(sum)
			return nil, jwt.ErrTokenExpired
		}
		return c, nil
	}
	var c Claims
	if _, err := t.access.ParseWithClaims(s, &c, t.keyFor("JWT")); err != nil {
		return nil, err
	}
	t.verified.Add(sum, &c)
	return &c, nil
}

// verifyAPI checks an API token: like verify, with the API's type and
// audience, and a subject. Not cached: API calls are few, and the cache
// holds registry tokens only, so neither kind can be taken for the other
// through it.
func (t *tokens) verifyAPI(s string) (*Claims, error) {
	var c Claims
	if _, err := t.api.ParseWithClaims(s, &c, t.keyFor(apiType)); err != nil {
		return nil, err
	}
	if c.Subject == "" || !c.Allows(TypeAPI, NameAPI, "*") {
		return nil, errors.New("API token without subject or API access")
	}
	return &c, nil
}

// verifyRefresh checks a refresh token the same way.
func (t *tokens) verifyRefresh(s string) (*refreshClaims, error) {
	var c refreshClaims
	if _, err := t.refresh.ParseWithClaims(s, &c, t.keyFor(refreshType)); err != nil {
		return nil, err
	}
	if c.Subject == "" || c.Bind == "" {
		return nil, errors.New("refresh token without subject or binding")
	}
	return &c, nil
}
