package config

import (
	"strings"
	"testing"
	"time"
)

func TestGCDefaults(t *testing.T) {
	g := Default().GC
	want := GC{Enabled: false, Interval: time.Hour, Grace: 24 * time.Hour, DryRun: false, Referrers: "follow_subject", Lease: 10 * time.Minute,
		Concurrency: 16, BusyConcurrency: 2, BusyShare: 0.1}
	if g != want {
		t.Fatalf("defaults %+v, want %+v", g, want)
	}
}

func TestGCFileAndEnv(t *testing.T) {
	file := "gc:\n  enabled: true\n  interval: 5m\n  grace: 0s\n  referrers: keep\n  concurrency: 8\n"
	cfg, err := Parse("c.yml", []byte(file), envMap(map[string]string{
		"SLIPWAY_GC_DRY_RUN":          "true",
		"SLIPWAY_GC_LEASE":            "30s",
		"SLIPWAY_GC_INTERVAL":         "2m",
		"SLIPWAY_GC_BUSY_CONCURRENCY": "4",
		"SLIPWAY_GC_BUSY_SHARE":       "0.25",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := GC{Enabled: true, Interval: 2 * time.Minute, Grace: 0, DryRun: true, Referrers: "keep", Lease: 30 * time.Second,
		Concurrency: 8, BusyConcurrency: 4, BusyShare: 0.25}
	if cfg.GC != want {
		t.Fatalf("got %+v, want %+v", cfg.GC, want)
	}
}

// Every bad value is reported with its key and where it came from.
func TestGCInvalid(t *testing.T) {
	for _, tc := range []struct {
		file string
		env  map[string]string
		want string
	}{
		{"gc:\n  interval: 0s\n", nil, "c.yml:2: gc.interval: must be > 0"},
		{"gc:\n  interval: -1h\n", nil, "c.yml:2: gc.interval: must be > 0"},
		{"gc:\n  grace: -1s\n", nil, "c.yml:2: gc.grace: must be >= 0"},
		{"gc:\n  referrers: drop\n", nil, `c.yml:2: gc.referrers: must be follow_subject or keep, got "drop"`},
		{"gc:\n  lease: 1s\n", nil, "c.yml:2: gc.lease: must be at least 3s"},
		{"gc:\n  concurrency: 0\n", nil, "c.yml:2: gc.concurrency: must be between 1 and 256, got 0"},
		{"gc:\n  busy_concurrency: 17\n", nil, "c.yml:2: gc.busy_concurrency: must be between 1 and gc.concurrency (16), got 17"},
		{"gc:\n  concurrency: 4\n  busy_concurrency: 0\n", nil, "c.yml:3: gc.busy_concurrency: must be between 1 and gc.concurrency (4), got 0"},
		{"gc:\n  busy_share: 0\n", nil, "c.yml:2: gc.busy_share: must be > 0 and <= 1, got 0"},
		{"gc:\n  busy_share: 1.5\n", nil, "c.yml:2: gc.busy_share: must be > 0 and <= 1, got 1.5"},
		{"gc:\n  interval: hourly\n", nil, `c.yml:2: gc.interval: must be a duration like "30s" or "1m30s", got "hourly"`},
		{"gc:\n  enabled: sometimes\n", nil, "c.yml:2: gc.enabled: must be true or false"},
		{"gc:\n  retention: {}\n", nil, "c.yml:2: gc.retention: unknown key"},
		{"", map[string]string{"SLIPWAY_GC_GRACE": "a day"}, `env SLIPWAY_GC_GRACE: gc.grace: must be a duration`},
		{"", map[string]string{"SLIPWAY_GC_BUSY_SHARE": "a tenth"}, `env SLIPWAY_GC_BUSY_SHARE: gc.busy_share: must be a number, got "a tenth"`},
		{"", map[string]string{"SLIPWAY_GC_REFERRERS": "none"}, `env SLIPWAY_GC_REFERRERS: gc.referrers: must be follow_subject or keep`},
	} {
		_, err := Parse("c.yml", []byte(tc.file), envMap(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %v: error %v, want %q", tc.file, tc.env, err, tc.want)
		}
	}
	bad := Default()
	bad.GC.Interval = 0
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "gc.interval: must be > 0") {
		t.Errorf("Validate: %v", err)
	}
}
