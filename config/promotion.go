package config

import (
	"fmt"
	"net/url"
	"time"
)

// Promotion configures the promotion service.
type Promotion struct {
	// Webhooks receive a signed JSON POST for every promotion and rollback.
	Webhooks []Webhook `yaml:"webhooks"`
}

// Webhook is one receiver of promotion events.
type Webhook struct {
	URL string `yaml:"url"`
	// Secret keys the HMAC-SHA256 signature sent in
	// X-Slipway-Signature: sha256=<hex> (at least 16 characters).
	Secret string `yaml:"secret"`
	// Events limits the events sent ("promotion", "rollback"); empty: all.
	Events []string `yaml:"events"`
	// Timeout bounds one delivery attempt; MaxAttempts bounds the retries
	// (with exponential backoff) before the event is dropped and logged.
	Timeout     time.Duration `yaml:"timeout"`
	MaxAttempts int           `yaml:"max_attempts"`
}

// Webhook events.
const (
	EventPromotion = "promotion"
	EventRollback  = "rollback"
)

func (p Promotion) problems() []problem {
	var ps []problem
	for i, w := range p.Webhooks {
		key := fmt.Sprintf("promotion.webhooks[%d]", i)
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps = append(ps, problem{key + ".url", fmt.Sprintf("must be an http(s) URL, got %q", w.URL)})
		}
		if len(w.Secret) < minSecretLen {
			ps = append(ps, problem{key + ".secret", fmt.Sprintf("must be at least %d characters", minSecretLen)})
		}
		for j, e := range w.Events {
			if e != EventPromotion && e != EventRollback {
				ps = append(ps, problem{fmt.Sprintf("%s.events[%d]", key, j), fmt.Sprintf("must be %q or %q, got %q", EventPromotion, EventRollback, e)})
			}
		}
		if w.Timeout < 0 || w.Timeout > 5*time.Minute {
			ps = append(ps, problem{key + ".timeout", fmt.Sprintf("must be between 0s (default 10s) and 5m, got %s", w.Timeout)})
		}
		if w.MaxAttempts < 0 || w.MaxAttempts > 100 {
			ps = append(ps, problem{key + ".max_attempts", fmt.Sprintf("must be between 0 (default 10) and 100, got %d", w.MaxAttempts)})
		}
	}
	return ps
}
