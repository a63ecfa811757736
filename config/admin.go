package config

import (
	"fmt"
	"time"
)

// Admin configures the web pages at /admin/.
type Admin struct {
	// SessionTTL is how long a sign-in lasts.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// OIDC, when set, adds sign-in through an OpenID Connect provider
	// (adminoidc.go).
	OIDC *AdminOIDC `yaml:"oidc"`
}

// problems checks the section; publicURL is http.public_url.
func (a Admin) problems(publicURL string) []problem {
	var ps []problem
	if a.SessionTTL < 5*time.Minute || a.SessionTTL > 7*24*time.Hour {
		ps = append(ps, problem{"admin.session_ttl", fmt.Sprintf("must be between 5m and 168h, got %s", a.SessionTTL)})
	}
	return append(ps, a.OIDC.problems(publicURL)...)
}
