package config

import (
	"strings"
	"testing"
	"time"
)

func TestWebhookProblemsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		hook Webhook
		key  string
	}{
		{Webhook{URL: "ftp://x", Secret: "0123456789abcdef"}, "promotion.webhooks[0].url"},
		{Webhook{URL: "http://", Secret: "0123456789abcdef"}, "promotion.webhooks[0].url"},
		{Webhook{URL: "http://h/x", Secret: "short"}, "promotion.webhooks[0].secret"},
		{Webhook{URL: "http://h/x", Secret: "0123456789abcdef", Events: []string{"push"}}, "promotion.webhooks[0].events[0]"},
		{Webhook{URL: "http://h/x", Secret: "0123456789abcdef", Timeout: time.Hour}, "promotion.webhooks[0].timeout"},
		{Webhook{URL: "http://h/x", Secret: "0123456789abcdef", MaxAttempts: -1}, "promotion.webhooks[0].max_attempts"},
	} {
		cfg := Default()
		cfg.Promotion.Webhooks = []Webhook{tc.hook}
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%+v: %v, want a problem at %s", tc.hook, err, tc.key)
		}
	}
	cfg := Default()
	cfg.Promotion.Webhooks = []Webhook{{URL: "https://ci.example.com/hook", Secret: "0123456789abcdef", Events: []string{EventRollback}}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a good webhook: %v", err)
	}
}

func TestAdminSessionTTL(t *testing.T) {
	cfg := Default()
	cfg.Admin.SessionTTL = time.Minute
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "admin.session_ttl") {
		t.Fatalf("a 1m session: %v", err)
	}
	cfg.Admin.SessionTTL = 8 * time.Hour
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
