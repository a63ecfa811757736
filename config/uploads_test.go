package config

import (
	"strings"
	"testing"
)

// The per-account upload bounds: defaults, environment overrides, and
// errors that name the key.
func TestUploadBounds(t *testing.T) {
	d := Default().Uploads
	if d.MaxOpenPerAccount != 500 || d.SessionRatePerAccount != 100 || d.SessionBurstPerAccount != 1000 {
		t.Errorf("defaults: %+v", d)
	}
	cfg, err := Parse("c.yml", []byte("uploads:\n  max_open_per_account: 7\n"), envMap(map[string]string{
		"SLIPWAY_UPLOADS_SESSION_RATE_PER_ACCOUNT":  "3",
		"SLIPWAY_UPLOADS_SESSION_BURST_PER_ACCOUNT": "9",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if u := cfg.Uploads; u.MaxOpenPerAccount != 7 || u.SessionRatePerAccount != 3 || u.SessionBurstPerAccount != 9 {
		t.Errorf("file and env: %+v", u)
	}
	if _, err := Parse("c.yml", []byte("uploads:\n  max_open_per_account: 0\n  session_rate_per_account: 0\n  session_burst_per_account: 0\n"), envMap(nil)); err != nil {
		t.Errorf("0 turns the bounds off: %v", err)
	}
	for file, want := range map[string]string{
		"uploads:\n  max_open_per_account: -1\n":                                    "c.yml:2: uploads.max_open_per_account: must be 0 (no bound) or more",
		"uploads:\n  session_rate_per_account: -5\n":                                "c.yml:2: uploads.session_rate_per_account: must be 0 (no bound) or more",
		"uploads:\n  session_rate_per_account: 5\n  session_burst_per_account: 0\n": "c.yml:3: uploads.session_burst_per_account: must be at least 1",
	} {
		if _, err := Parse("c.yml", []byte(file), envMap(nil)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", file, err, want)
		}
	}
}
