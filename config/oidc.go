package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// OIDC configures the exchange of ID tokens from CI platforms (GitHub
// Actions, GitLab CI, Buildkite, Kubernetes service accounts…) for
// registry and API access: a job logs in with its platform's short-lived
// ID token instead of a stored secret. Package auth verifies the tokens.
type OIDC struct {
	// Trust lists the rules an ID token is checked against; the token gets
	// the union of the grants of every rule it matches. Empty: no ID token
	// is accepted, and "oidc" is an ordinary login name.
	Trust []TrustRule `yaml:"trust"`
	// JWKSRefreshMinInterval bounds how often one issuer's discovery
	// document or keys are fetched: a token signed with a key the cached
	// set lacks triggers a fetch, at most one per interval (tokens with
	// made-up key ids cannot make Slipway hammer the issuer). 0: 30s.
	JWKSRefreshMinInterval time.Duration `yaml:"jwks_refresh_min_interval"`
	// LogClaims are the claims named in the log of each exchange, beside
	// the principal. Empty: DefaultLogClaims.
	LogClaims []string `yaml:"log_claims"`
}

// TrustRule trusts ID tokens of one issuer and audience whose claims match.
type TrustRule struct {
	// Name identifies the rule in logs and refusals (default: its index).
	Name string `yaml:"name"`
	// Issuer is the token's "iss" exactly, and where discovery is read:
	// Issuer + "/.well-known/openid-configuration". https, or http on a
	// loopback address (tests).
	Issuer string `yaml:"issuer"`
	// Audience must be one of the token's "aud" values.
	Audience string `yaml:"audience"`
	// Claims the token must carry, each matching its value: exact, or a
	// glob where '*' matches any run of characters ("refs/tags/v*"). At
	// least one is required: an issuer like GitHub's signs tokens for
	// every repository on it.
	Claims map[string]string `yaml:"claims"`
	// Grants are what a matching token may do, in the users' grant
	// language; "{claim}" in repos is replaced with that claim's value
	// (only a string claim that is a valid repository name; the grant is
	// dropped otherwise), never in the first path segment.
	Grants []Grant `yaml:"grants"`
}

// Defaults of the OIDC section.
const (
	DefaultJWKSRefreshMinInterval = 30 * time.Second
	minJWKSRefresh                = time.Second
	maxJWKSRefresh                = time.Hour
)

// DefaultLogClaims: what identifies a GitHub Actions or GitLab CI job.
var DefaultLogClaims = []string{"repository", "ref", "workflow", "environment", "run_id", "project_path", "pipeline_id"}

// RefreshMinInterval is JWKSRefreshMinInterval, or its default.
func (o OIDC) RefreshMinInterval() time.Duration {
	if o.JWKSRefreshMinInterval == 0 {
		return DefaultJWKSRefreshMinInterval
	}
	return o.JWKSRefreshMinInterval
}

// ClaimsToLog is LogClaims, or DefaultLogClaims.
func (o OIDC) ClaimsToLog() []string {
	if len(o.LogClaims) == 0 {
		return DefaultLogClaims
	}
	return o.LogClaims
}

// OIDCLogin is the login name whose password is an ID token
// (`docker login -u oidc`) when trust rules are configured.
const OIDCLogin = "oidc"

// SplitGrantPattern cuts a grant's repos pattern into literal text and
// "{claim}" placeholders: parts alternate literal, claim, literal, …
// (parts[1], parts[3], … are claim names). ok is false for an unclosed
// or empty brace.
func SplitGrantPattern(p string) (parts []string, ok bool) {
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			if strings.IndexByte(p, '}') >= 0 {
				return nil, false
			}
			return append(parts, p), true
		}
		j := strings.IndexByte(p[i:], '}')
		if j < 0 || j == 1 || strings.IndexByte(p[:i], '}') >= 0 {
			return nil, false
		}
		parts = append(parts, p[:i], p[i+1:i+j])
		p = p[i+j+1:]
	}
}

// oidcProblems checks auth.oidc against the stages (a rule may not grant
// push or delete inside an immutable stage) and the users (none may be
// named "oidc" while rules exist).
func oidcProblems(o OIDC, users []User, stages []Stage) []problem {
	var ps []problem
	add := func(key, format string, args ...any) {
		ps = append(ps, problem{key, fmt.Sprintf(format, args...)})
	}
	if d := o.JWKSRefreshMinInterval; d != 0 && (d < minJWKSRefresh || d > maxJWKSRefresh) {
		add("auth.oidc.jwks_refresh_min_interval", "must be between %s and %s (or 0: %s), got %s", minJWKSRefresh, maxJWKSRefresh, DefaultJWKSRefreshMinInterval, d)
	}
	for i, c := range o.LogClaims {
		if strings.TrimSpace(c) == "" {
			add(fmt.Sprintf("auth.oidc.log_claims[%d]", i), "must be a claim name")
		}
	}
	if len(o.Trust) == 0 {
		return ps
	}
	for i, u := range users {
		if strings.EqualFold(u.Name, OIDCLogin) {
			add(fmt.Sprintf("auth.users[%d].name", i), "%q is the login name of ID tokens while auth.oidc.trust has rules: rename the user", u.Name)
		}
	}
	names := map[string]int{}
	for i, r := range o.Trust {
		key := fmt.Sprintf("auth.oidc.trust[%d]", i)
		if r.Name != "" {
			if !userName.MatchString(r.Name) {
				add(key+".name", "must be 1-64 of A-Z a-z 0-9 . _ @ -, got %q", r.Name)
			} else if j, dup := names[r.Name]; dup {
				add(key+".name", "%q already names auth.oidc.trust[%d]", r.Name, j)
			} else {
				names[r.Name] = i
			}
		}
		if m := checkIssuer(r.Issuer); m != "" {
			add(key+".issuer", "%s", m)
		}
		if strings.TrimSpace(r.Audience) == "" {
			add(key+".audience", "must not be empty (the \"aud\" the CI job asks its platform for)")
		}
		ps = append(ps, claimProblems(key+".claims", r.Claims)...)
		if len(r.Grants) == 0 {
			add(key+".grants", "must list at least one grant")
		}
		for j, g := range r.Grants {
			ps = append(ps, trustGrantProblems(fmt.Sprintf("%s.grants[%d]", key, j), g, stages)...)
		}
	}
	return ps
}

// checkIssuer: an https URL (http only on loopback), as tokens name it.
func checkIssuer(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Sprintf("must be the issuer's URL like \"https://token.actions.githubusercontent.com\", got %q", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopbackHost(u.Hostname()) {
			return fmt.Sprintf("must be https (http only on a loopback address, for tests), got %q", s)
		}
	default:
		return fmt.Sprintf("must be an https URL, got %q", s)
	}
	return ""
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func claimProblems(key string, claims map[string]string) []problem {
	var ps []problem
	add := func(key, format string, args ...any) {
		ps = append(ps, problem{key, fmt.Sprintf(format, args...)})
	}
	narrow := false
	for _, name := range sortedKeys(claims) {
		v := claims[name]
		switch {
		case strings.TrimSpace(name) == "":
			add(key, "a claim name is empty")
		case slices.Contains([]string{"iss", "aud", "exp", "nbf", "iat"}, name):
			add(key+"."+name, "is checked by issuer, audience and the token's times, not here")
		case v == "":
			add(key+"."+name, "must be a value or a glob (\"*\": any value, the claim must be present)")
		case strings.Trim(v, "*") != "":
			narrow = true
		}
	}
	if !narrow && len(ps) == 0 {
		add(key, "must name at least one claim with a value that is not only '*' (like repository: \"acme/api\"): "+
			"an issuer signs tokens for every job on the platform")
	}
	return ps
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// trustGrantProblems: a grant whose repos may hold "{claim}" placeholders
// (not in the first path segment, which chooses the stage), and which
// does not give push or delete inside an immutable stage.
func trustGrantProblems(key string, g Grant, stages []Stage) []problem {
	parts, ok := SplitGrantPattern(g.Repos)
	if !ok {
		return []problem{{key + ".repos", fmt.Sprintf("has an unclosed or empty {claim} placeholder: %q", g.Repos)}}
	}
	// Each placeholder stands for a valid repository name: check the
	// pattern with "x" in its place.
	var b strings.Builder
	for i, p := range parts {
		if i%2 == 1 {
			b.WriteString("x")
		} else {
			b.WriteString(p)
		}
	}
	if field, m := CheckGrant(Grant{Repos: b.String(), Actions: g.Actions}); m != "" {
		return []problem{{key + "." + field, m}}
	}
	if len(parts) > 1 && !strings.Contains(parts[0], "/") {
		return []problem{{key + ".repos", fmt.Sprintf("may not use a {claim} in its first path segment, which chooses the stage: %q", g.Repos)}}
	}
	literal := parts[0]
	if i := strings.IndexByte(literal, '*'); i >= 0 {
		literal = literal[:i]
	}
	for _, a := range g.Actions {
		if a != "push" && a != "delete" {
			continue
		}
		for _, st := range stages {
			if st.Immutable && strings.HasPrefix(literal, st.Prefix) {
				return []problem{{key + ".actions", fmt.Sprintf("grants %s in the immutable stage %q (%s): nobody pushes or deletes there, only promotion writes; grant promote instead", a, st.Name, g.Repos)}}
			}
		}
	}
	return nil
}
