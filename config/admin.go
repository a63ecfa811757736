package config

import (
	"fmt"
	"time"
)

// Admin configures the web pages at /admin/.
type Admin struct {
	// SessionTTL is how long a sign-in lasts.
	SessionTTL time.Duration `yaml:"session_ttl"`
}

func (a Admin) problems() []problem {
	if a.SessionTTL < 5*time.Minute || a.SessionTTL > 7*24*time.Hour {
		return []problem{{"admin.session_ttl", fmt.Sprintf("must be between 5m and 168h, got %s", a.SessionTTL)}}
	}
	return nil
}
