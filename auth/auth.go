// Package auth is Slipway's token service and its enforcement: the Docker
// token endpoint (/auth/token, GET and OAuth2 POST), the signing keys and
// their JWKS (/auth/jwks.json), user and robot accounts, the policy that
// decides what each may do (grants, anonymous pull, stage rules), login
// throttling, and the middleware that checks tokens on /v2/ and identifies
// callers on /api/.
//
// Tokens are JWTs signed with the configured key (ES256 by default); their
// "kid" is the key's RFC 7638 thumbprint. An access token carries exactly
// the intersection of what was asked for and what the account may do.
// Refresh tokens (what `docker login` stores instead of the password) are
// JWTs of another type and audience, bound to the account's credentials.
// API tokens (asked for with the scope api:v1:*) are a third type and
// audience: /api/ accepts them and Basic credentials, never registry
// tokens, and /v2/ never accepts them.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/internal/origin"
	"github.com/slipway/slipway/storage"
)

// Options configure a Service.
type Options struct {
	Auth   config.Auth
	Stages []config.Stage
	// PublicURL ("https://registry.example.com") is where clients reach
	// this server; the token realm is PublicURL + "/auth/token". Empty:
	// built from each request's origin (scheme and Host, or what a trusted
	// proxy forwarded: internal/origin).
	PublicURL string
	// Remote says whether the store is shared by hosts that do not share
	// this one's disk (S3): a generated signing key then gets a warning.
	Remote bool
	Logger *slog.Logger
	// Now is the clock (nil: time.Now); tests pass a fake one.
	Now func() time.Time
	// CompareHash checks a password against a bcrypt hash (nil:
	// bcrypt.CompareHashAndPassword); tests count calls through it.
	CompareHash func(hash, password []byte) error
}

// Service is the token service. Build it with New; Close it when done.
type Service struct {
	opts    Options
	store   storage.Store
	log     *slog.Logger
	now     func() time.Time
	compare func(hash, password []byte) error
	keys    *keySet
	tokens  *tokens
	policy  *Policy
	users   map[string]*user
	// dummyHash is compared with when a login names no account.
	dummyHash func() []byte
	robots    *robots
	creds     *credCache
	throttle  *throttle
	// oidc trusts CI platforms' ID tokens (oidc.go); nil: none.
	oidc *oidcTrust
}

// New loads (or on first start generates) the signing key, reads the
// verification keys, and loads the accounts (on first start with no users
// configured, creating the admin in the store).
func New(ctx context.Context, store storage.Store, opts Options) (*Service, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CompareHash == nil {
		opts.CompareHash = bcrypt.CompareHashAndPassword
	}
	a := opts.Auth
	s := &Service{
		opts:     opts,
		store:    store,
		log:      opts.Logger,
		now:      opts.Now,
		compare:  opts.CompareHash,
		policy:   NewPolicy(a.AnonymousPull, opts.Stages),
		creds:    newCredCache(a.CredentialCacheTTL, opts.Now),
		throttle: newThrottle(a.Lockout.MaxFailures, a.Lockout.AddressMaxFailures, a.Lockout.Window, opts.Now),
		robots:   &robots{store: store, now: opts.Now, log: opts.Logger, touched: map[string]time.Time{}},
		oidc:     newOIDCTrust(a.OIDC, opts.Now),
	}
	signing, generated, err := loadSigningKey(a.SigningKey, a.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	if generated {
		// On a shared bucket, other hosts will not see this file: say so.
		level, msg := slog.LevelInfo, "generated a new token signing key"
		if opts.Remote {
			level, msg = slog.LevelWarn, msg+"; every replica must use this same file (copy it, or point auth.signing_key at a shared secret)"
		}
		s.log.Log(ctx, level, msg, "path", a.SigningKey, "kid", signing.kid, "algorithm", signing.alg)
	} else if fi, err := os.Stat(a.SigningKey); err == nil && fi.Mode().Perm()&0o077 != 0 {
		s.log.Warn("the token signing key is readable by other users: chmod 600 it", "path", a.SigningKey)
	}
	others, err := loadVerificationKeys(a.VerificationKeys)
	if err != nil {
		return nil, fmt.Errorf("auth: verification key: %w", err)
	}
	s.keys = newKeySet(signing, others)
	s.tokens = newTokens(s.keys, a.Issuer, a.Service, a.TokenTTL, a.RefreshTTL, opts.Now)
	if s.users, err = s.loadUsers(ctx); err != nil {
		return nil, err
	}
	s.dummyHash = dummyHash(s.users)
	return s, nil
}

// Close waits for background writes (robots' last-used times).
func (s *Service) Close() { s.robots.close() }

// Principal is the caller a request was authenticated as. The /v2/ and
// /api/ middleware put it in the request's context (see PrincipalFrom).
type Principal struct {
	Name  string // login name ("ci", "robot$ci"); "" for an anonymous token
	Admin bool
	Robot bool
	// Detail: Account.Detail (an ID token's chosen claims), or "".
	Detail string
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller the middleware authenticated.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Verify checks an access token and returns its claims.
func (s *Service) Verify(token string) (*Claims, error) { return s.tokens.verify(token) }

// realm is the token endpoint's URL as clients must see it: the public URL,
// else the request's own scheme and host (go-containerregistry refuses a
// loopback realm that is not the registry's own host:port).
//
// The request's scheme and host are its origin (origin.FromRequest): the
// connection's, or what a trusted proxy forwarded.
func (s *Service) realm(r *http.Request) string {
	if s.opts.PublicURL != "" {
		return strings.TrimSuffix(s.opts.PublicURL, "/") + "/auth/token"
	}
	return origin.FromRequest(r).BaseURL() + "/auth/token"
}

// isUnavailable reports whether err is a store outage (storage.ErrUnavailable),
// which the token and API endpoints answer with 503.
func isUnavailable(err error) bool { return errors.Is(err, storage.ErrUnavailable) }
