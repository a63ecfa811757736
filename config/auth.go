package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Auth configures the token service: who may log in, what each account may
// do, and how the tokens /v2/ accepts are signed. Authentication is always
// on: with no users configured, the first start creates an "admin".
type Auth struct {
	// Issuer is the tokens' "iss"; Service their "aud" and the "service"
	// of the /v2/ challenge.
	Issuer  string `yaml:"issuer"`
	Service string `yaml:"service"`
	// SigningKey is the PEM file (PKCS#8 private key) tokens are signed
	// with; generated (0600) on first start when absent. Every replica must
	// use the same file. Unset: <storage.filesystem.root>/keys/token.pem.
	SigningKey string `yaml:"signing_key"`
	// Algorithm of the signing key: ES256 (P-256), EdDSA (Ed25519) or
	// RS256 (RSA).
	Algorithm string `yaml:"algorithm"`
	// VerificationKeys are further PEM files (public or private keys)
	// whose tokens are still accepted: the previous signing key during a
	// rotation.
	VerificationKeys []string `yaml:"verification_keys"`
	// TokenTTL is the life of an access token; RefreshTTL that of the
	// refresh tokens `docker login` stores instead of the password.
	TokenTTL   time.Duration `yaml:"token_ttl"`
	RefreshTTL time.Duration `yaml:"refresh_ttl"`
	// CredentialCacheTTL is how long a verified password is remembered
	// (as a keyed hash, in memory) so that repeated logins skip bcrypt.
	CredentialCacheTTL time.Duration `yaml:"credential_cache_ttl"`
	// AnonymousPull lists repository globs anyone may pull without
	// logging in. Empty: nothing is public.
	AnonymousPull []string `yaml:"anonymous_pull"`
	Lockout       Lockout  `yaml:"lockout"`
	Users         []User   `yaml:"users"`
	// OIDC trusts CI platforms' ID tokens in place of passwords (oidc.go).
	OIDC OIDC `yaml:"oidc"`

	// AdminPassword comes from SLIPWAY_ADMIN_PASSWORD only, never from a
	// file: the password of the "admin" created on first start when no
	// users are configured.
	AdminPassword string `yaml:"-"`
}

// AdminPasswordEnv is the variable Load reads Auth.AdminPassword from.
const AdminPasswordEnv = "SLIPWAY_ADMIN_PASSWORD"

// Lockout throttles failed logins, per account and per client address.
type Lockout struct {
	// MaxFailures failed logins of one account within Window lock it
	// until the window ends (429 with Retry-After).
	MaxFailures int `yaml:"max_failures"`
	// AddressMaxFailures failed logins from one client address (any
	// accounts) within Window lock that address out the same way.
	AddressMaxFailures int           `yaml:"address_max_failures"`
	Window             time.Duration `yaml:"window"`
}

// User is an account from the configuration.
type User struct {
	Name string `yaml:"name"`
	// PasswordHash is a bcrypt hash, as `slipway passwd` prints it.
	PasswordHash string `yaml:"password_hash"`
	// Admin accounts may do everything (except what stage rules forbid
	// to everyone) and manage robot accounts.
	Admin  bool    `yaml:"admin"`
	Grants []Grant `yaml:"grants"`
}

// Grant allows actions on the repositories a glob matches. In a glob, '*'
// matches any run of characters, '/' included ("production/*" covers
// "production/team/app"); every other character matches itself.
type Grant struct {
	Repos   string   `yaml:"repos" json:"repos"`
	Actions []string `yaml:"actions" json:"actions"`
}

// Actions a grant may name.
var grantActions = map[string]bool{"pull": true, "push": true, "delete": true, "promote": true}

var (
	userName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)
	bcryptHash = regexp.MustCompile(`^\$2[aby]?\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$`)
)

var algorithms = map[string]bool{"ES256": true, "EdDSA": true, "RS256": true}

func defaultAuth() Auth {
	return Auth{
		Issuer:             "slipway",
		Service:            "slipway",
		SigningKey:         "./data/keys/token.pem",
		Algorithm:          "ES256",
		TokenTTL:           5 * time.Minute,
		RefreshTTL:         720 * time.Hour,
		CredentialCacheTTL: 5 * time.Minute,
		Lockout:            Lockout{MaxFailures: 10, AddressMaxFailures: 50, Window: time.Minute},
	}
}

// defaultSigningKey is where the key goes when auth.signing_key is unset:
// beside the data, so a custom storage root keeps everything together.
func defaultSigningKey(root string) string {
	return strings.TrimRight(root, "/") + "/keys/token.pem"
}

// ValidBcryptHash reports whether h looks like a bcrypt hash.
func ValidBcryptHash(h string) bool { return bcryptHash.MatchString(h) }

// CheckGrant returns what is wrong with a grant ("" if nothing), in words
// for both config problems and API answers.
func CheckGrant(g Grant) (field, msg string) {
	if m := checkRepoGlob(g.Repos); m != "" {
		return "repos", m
	}
	if len(g.Actions) == 0 {
		return "actions", "must list at least one of pull|push|delete|promote"
	}
	for _, a := range g.Actions {
		if !grantActions[a] {
			return "actions", fmt.Sprintf("must be pull, push, delete or promote, got %q", a)
		}
	}
	return "", ""
}

// checkRepoGlob: a repository name pattern with '*' wildcards.
func checkRepoGlob(s string) string {
	if s == "" {
		return `must be a repository glob like "staging/*"`
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("._-/*", c) >= 0
		if !ok {
			return fmt.Sprintf("must use only a-z 0-9 . _ - / and the wildcard *, got %q", s)
		}
	}
	return ""
}

func (a Auth) problems() []problem {
	var ps []problem
	add := func(key, format string, args ...any) {
		ps = append(ps, problem{key, fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(a.Issuer) == "" {
		add("auth.issuer", "must not be empty")
	}
	if strings.TrimSpace(a.Service) == "" || strings.ContainsAny(a.Service, "\"\\") {
		add("auth.service", "must be a non-empty name without quotes or backslashes")
	}
	if strings.TrimSpace(a.SigningKey) == "" {
		add("auth.signing_key", "must be a file path")
	}
	if !algorithms[a.Algorithm] {
		add("auth.algorithm", "must be one of ES256|EdDSA|RS256, got %q", a.Algorithm)
	}
	for i, k := range a.VerificationKeys {
		if strings.TrimSpace(k) == "" {
			add(fmt.Sprintf("auth.verification_keys[%d]", i), "must be a file path")
		}
	}
	if a.TokenTTL < 30*time.Second || a.TokenTTL > 24*time.Hour {
		add("auth.token_ttl", "must be between 30s and 24h, got %s", a.TokenTTL)
	}
	if a.RefreshTTL < a.TokenTTL || a.RefreshTTL > 8760*time.Hour {
		add("auth.refresh_ttl", "must be between token_ttl and 8760h, got %s", a.RefreshTTL)
	}
	if a.CredentialCacheTTL < 0 || a.CredentialCacheTTL > time.Hour {
		add("auth.credential_cache_ttl", "must be between 0s (off) and 1h, got %s", a.CredentialCacheTTL)
	}
	for i, g := range a.AnonymousPull {
		if m := checkRepoGlob(g); m != "" {
			add(fmt.Sprintf("auth.anonymous_pull[%d]", i), "%s", m)
		}
	}
	if a.Lockout.MaxFailures < 1 {
		add("auth.lockout.max_failures", "must be at least 1, got %d", a.Lockout.MaxFailures)
	}
	if a.Lockout.AddressMaxFailures < 1 {
		add("auth.lockout.address_max_failures", "must be at least 1, got %d", a.Lockout.AddressMaxFailures)
	}
	if a.Lockout.Window <= 0 {
		add("auth.lockout.window", "must be a positive duration like \"1m\", got %s", a.Lockout.Window)
	}
	seen := map[string]bool{}
	for i, u := range a.Users {
		key := fmt.Sprintf("auth.users[%d]", i)
		switch {
		case !userName.MatchString(u.Name):
			add(key+".name", "must be 1-64 of A-Z a-z 0-9 . _ @ - (not starting with a symbol), got %q", u.Name)
		case seen[strings.ToLower(u.Name)]:
			add(key+".name", "%q is configured twice", u.Name)
		}
		seen[strings.ToLower(u.Name)] = true
		if !bcryptHash.MatchString(u.PasswordHash) {
			add(key+".password_hash", "must be a bcrypt hash (make one with `slipway passwd`)")
		}
		for j, g := range u.Grants {
			if field, m := CheckGrant(g); m != "" {
				add(fmt.Sprintf("%s.grants[%d].%s", key, j, field), "%s", m)
			}
		}
	}
	return ps
}
