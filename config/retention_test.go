package config

import (
	"strings"
	"testing"
	"time"
)

const retentionYAML = `
retention:
  rules:
    - repositories: "staging/*"
      stages: [staging]
      keep_last: 10
      keep_within: 720h
      keep_tags: ["v*", "latest"]
      keep_promotions: 3
      untagged_after: 24h
    - repositories: "dev/*"
      keep_last: 5
      dry_run: false
    - repositories: "ci/*"
      keep_within: %s
`

func TestRetentionParses(t *testing.T) {
	cfg, err := Parse("c.yml", []byte(strings.Replace(retentionYAML, "%s", "48h", 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Retention.Rules
	if len(r) != 3 || r[0].Repositories != "staging/*" || r[0].KeepLast != 10 || r[0].KeepWithin != 720*time.Hour ||
		len(r[0].KeepTags) != 2 || r[0].KeepPromotions != 3 || r[0].UntaggedAfter != 24*time.Hour || r[2].KeepWithin != 48*time.Hour {
		t.Fatalf("rules %+v", r)
	}
	// A new rule only reports until it says dry_run: false.
	if !r[0].IsDryRun() || r[1].IsDryRun() || !r[2].IsDryRun() {
		t.Fatalf("dry runs %v %v %v, want true false true", r[0].IsDryRun(), r[1].IsDryRun(), r[2].IsDryRun())
	}
}

func TestRetentionProblemsNameTheKey(t *testing.T) {
	_, err := Parse("c.yml", []byte(strings.Replace(retentionYAML, "%s", "30 days", 1)), nil)
	if err == nil || !strings.Contains(err.Error(), "retention.rules[2].keep_within") || !strings.Contains(err.Error(), "duration") {
		t.Fatalf("a bad duration: %v", err)
	}
	for _, tc := range []struct {
		rule RetentionRule
		key  string
	}{
		{RetentionRule{KeepLast: 1}, "retention.rules[0].repositories"},
		{RetentionRule{Repositories: "staging/*", KeepLast: -1}, "retention.rules[0].keep_last"},
		{RetentionRule{Repositories: "staging/*", KeepWithin: -time.Hour}, "retention.rules[0].keep_within: invalid duration"},
		{RetentionRule{Repositories: "staging/*", KeepLast: 1, UntaggedAfter: -time.Hour}, "retention.rules[0].untagged_after"},
		{RetentionRule{Repositories: "staging/*", KeepLast: 1, KeepPromotions: -1}, "retention.rules[0].keep_promotions"},
		{RetentionRule{Repositories: "staging/*", KeepLast: 1, KeepTags: []string{"[v"}}, "retention.rules[0].keep_tags[0]"},
		{RetentionRule{Repositories: "staging/*", KeepLast: 1, Stages: []string{"nowhere"}}, "retention.rules[0].stages[0]"},
		{RetentionRule{Repositories: "*", KeepLast: 1, Stages: []string{"staging", "production"}}, `retention.rules[0].stages[1]: stage "production" is immutable`},
		{RetentionRule{Repositories: "staging/*"}, "retention.rules[0]: sets nothing"},
	} {
		cfg := Default()
		cfg.Retention.Rules = []RetentionRule{tc.rule}
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%+v: %v, want a problem at %s", tc.rule, err, tc.key)
		}
	}
	cfg := Default()
	cfg.Retention.Rules = []RetentionRule{{Repositories: "staging/*", UntaggedAfter: time.Hour}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("a rule with only untagged_after: %v", err)
	}
}
