package config

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
)

// AdminOIDC signs people in to the admin pages through an OpenID Connect
// provider (authorization-code flow with PKCE) instead of, or beside, the
// password form. Who is an administrator and what others may do comes
// from the groups the provider names in the ID token: membership is read
// at sign-in (it lasts the session, at most admin.session_ttl), the
// mapping below is applied on every request.
type AdminOIDC struct {
	// Issuer is the provider's issuer URL; its discovery document is
	// <issuer>/.well-known/openid-configuration.
	Issuer string `yaml:"issuer"`
	// Name is what the sign-in button says ("Sign in with <name>");
	// default: the issuer's host.
	Name     string `yaml:"name"`
	ClientID string `yaml:"client_id"`
	// ClientSecret, or ClientSecretFile (a file holding it, read at
	// start); neither for a public client (PKCE only).
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// Scopes asked for; default openid, profile, email, groups.
	Scopes []string `yaml:"scopes"`
	// RedirectURL is the callback registered at the provider; default
	// http.public_url + /admin/oidc/callback.
	RedirectURL string `yaml:"redirect_url"`
	// GroupsClaim names the ID token claim listing the person's groups
	// (a list of strings, or one string); default "groups".
	GroupsClaim string `yaml:"groups_claim"`
	// AdminGroups: members of any of them are administrators.
	AdminGroups []string `yaml:"admin_groups"`
	// Grants gives the members of a group what a user's grants give:
	// {"qa-team": [{repos: "staging/*", actions: [pull, promote]}]}.
	Grants map[string][]Grant `yaml:"grants"`
	// PasswordLogin keeps the password form beside the provider's button
	// (default true); false hides it and refuses POST /admin/login.
	PasswordLogin *bool `yaml:"password_login"`
}

// AdminOIDCCallbackPath is where the provider sends the browser back.
const AdminOIDCCallbackPath = "/admin/oidc/callback"

// DefaultAdminOIDCScopes are asked for when scopes is unset.
var DefaultAdminOIDCScopes = []string{"openid", "profile", "email", "groups"}

// ScopesOrDefault returns the scopes to ask for.
func (o AdminOIDC) ScopesOrDefault() []string {
	if len(o.Scopes) == 0 {
		return slices.Clone(DefaultAdminOIDCScopes)
	}
	return slices.Clone(o.Scopes)
}

// Redirect returns the callback URL: redirect_url, else publicURL's.
func (o AdminOIDC) Redirect(publicURL string) string {
	if o.RedirectURL != "" {
		return o.RedirectURL
	}
	return strings.TrimSuffix(publicURL, "/") + AdminOIDCCallbackPath
}

// GroupsClaimOrDefault returns the claim holding the groups.
func (o AdminOIDC) GroupsClaimOrDefault() string {
	if o.GroupsClaim == "" {
		return "groups"
	}
	return o.GroupsClaim
}

// PasswordLoginAllowed reports whether the password form stays.
func (o AdminOIDC) PasswordLoginAllowed() bool { return o.PasswordLogin == nil || *o.PasswordLogin }

// Secret returns the client secret: client_secret, or client_secret_file's
// content without surrounding white space.
func (o AdminOIDC) Secret() (string, error) {
	if o.ClientSecretFile == "" {
		return o.ClientSecret, nil
	}
	b, err := os.ReadFile(o.ClientSecretFile)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

var (
	// oidcScope: RFC 6749 scope-token characters, without space.
	oidcScope = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`)
	// groupName: anything printable without control characters; real
	// directories use spaces, slashes and colons in group names.
	groupName = regexp.MustCompile(`^[^\x00-\x1f\x7f]{1,256}$`)
)

// problems checks admin.oidc; publicURL is http.public_url (the default
// redirect URL needs it).
func (o *AdminOIDC) problems(publicURL string) []problem {
	if o == nil {
		return nil
	}
	var ps []problem
	add := func(key, format string, args ...any) {
		ps = append(ps, problem{"admin.oidc." + key, fmt.Sprintf(format, args...)})
	}
	if u, err := url.Parse(o.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		add("issuer", "must be the provider's issuer URL like \"https://login.example.com\", got %q", o.Issuer)
	}
	if strings.TrimSpace(o.ClientID) == "" {
		add("client_id", "must be the client id registered at the provider")
	}
	switch {
	case o.ClientSecret != "" && o.ClientSecretFile != "":
		add("client_secret_file", "set client_secret or client_secret_file, not both")
	case o.ClientSecretFile != "":
		if s, err := o.Secret(); err != nil {
			add("client_secret_file", "%s", oneLine(err))
		} else if s == "" {
			add("client_secret_file", "%q is empty", o.ClientSecretFile)
		}
	}
	if len(o.Scopes) > 0 && !slices.Contains(o.Scopes, "openid") {
		add("scopes", "must include openid, got %v", o.Scopes)
	}
	for i, s := range o.Scopes {
		if !oidcScope.MatchString(s) {
			add(fmt.Sprintf("scopes[%d]", i), "must be a scope name without spaces or quotes, got %q", s)
		}
	}
	switch {
	case o.RedirectURL == "" && publicURL == "":
		add("redirect_url", "must be set when http.public_url is not (the provider needs the callback's absolute URL)")
	case o.RedirectURL != "":
		u, err := url.Parse(o.RedirectURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != AdminOIDCCallbackPath || u.RawQuery != "" || u.Fragment != "" {
			add("redirect_url", "must be an absolute URL ending in %s, got %q", AdminOIDCCallbackPath, o.RedirectURL)
		}
	}
	if o.GroupsClaim != "" && strings.TrimSpace(o.GroupsClaim) != o.GroupsClaim {
		add("groups_claim", "must be a claim name without surrounding spaces, got %q", o.GroupsClaim)
	}
	for i, g := range o.AdminGroups {
		if !groupName.MatchString(g) {
			add(fmt.Sprintf("admin_groups[%d]", i), "must be a group name (1-256 characters, no control characters), got %q", g)
		}
	}
	groups := make([]string, 0, len(o.Grants))
	for g := range o.Grants {
		groups = append(groups, g)
	}
	slices.Sort(groups) // stable messages
	for _, g := range groups {
		key := joinKey("grants", g)
		if !groupName.MatchString(g) {
			add(key, "must be keyed by a group name (1-256 characters, no control characters)")
			continue
		}
		if len(o.Grants[g]) == 0 {
			add(key, "must list at least one grant (repos and actions)")
		}
		for j, gr := range o.Grants[g] {
			if field, m := CheckGrant(gr); m != "" {
				add(fmt.Sprintf("%s[%d].%s", key, j, field), "%s", m)
			}
		}
	}
	if len(o.AdminGroups) == 0 && len(o.Grants) == 0 {
		add("admin_groups", "must name at least one group (or set grants): otherwise nobody signed in through the provider may do anything")
	}
	return ps
}
