package config

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// Retention configures the rules that delete old tags (package
// retention). A rule only ever deletes tags; the collector frees what they
// held. Immutable stages and tags a promotion wrote are never touched.
type Retention struct {
	Rules []RetentionRule `yaml:"rules"`
}

// RetentionRule selects repositories and says which of their tags stay.
// The first rule matching a repository is the one applied to it. A tag is
// deleted only when the rule sets keep_last or keep_within and no keep_*
// of the rule keeps it.
type RetentionRule struct {
	// Repositories is a glob over repository names ('*' matches any run of
	// characters, '/' included: "staging/*").
	Repositories string `yaml:"repositories"`
	// Stages limits the rule to repositories of these stages; empty: any
	// repository the glob matches (immutable stages are always skipped).
	Stages []string `yaml:"stages"`
	// KeepLast keeps the N most recently written tags (by the tag's
	// time in the store: its last push).
	KeepLast int `yaml:"keep_last"`
	// KeepWithin keeps tags written less than this long ago.
	KeepWithin time.Duration `yaml:"keep_within"`
	// KeepTags keeps tags matching any of these patterns (path.Match:
	// "v*", "release-[0-9]*").
	KeepTags []string `yaml:"keep_tags"`
	// KeepPromotions keeps every tag naming a digest that one of the
	// newest N ledger records of some promoted tag named, in its target
	// or source repository (the recent rollback targets).
	KeepPromotions int `yaml:"keep_promotions"`
	// UntaggedAfter is how long an untagged manifest of these
	// repositories must stay; retention deletes no manifest itself:
	// retention.Rules.UntaggedAfter gives it to the collector, which
	// frees untagged manifests after the longer of it and gc grace.
	UntaggedAfter time.Duration `yaml:"untagged_after"`
	// DryRun (the default for a rule: unset is true) only reports what
	// the rule would delete; dry_run: false deletes.
	DryRun *bool `yaml:"dry_run"`
}

// IsDryRun reports whether the rule only reports: unless dry_run: false.
func (r RetentionRule) IsDryRun() bool { return r.DryRun == nil || *r.DryRun }

// DeletesTags reports whether the rule deletes (or reports) any tag: it
// needs keep_last or keep_within, which bound what stays.
func (r RetentionRule) DeletesTags() bool { return r.KeepLast > 0 || r.KeepWithin > 0 }

func retentionProblems(r Retention, stages []Stage) []problem {
	var ps []problem
	add := func(key, format string, args ...any) {
		ps = append(ps, problem{key, fmt.Sprintf(format, args...)})
	}
	for i, rule := range r.Rules {
		key := fmt.Sprintf("retention.rules[%d]", i)
		if m := checkRepoGlob(rule.Repositories); m != "" {
			add(key+".repositories", "%s", m)
		}
		for j, name := range rule.Stages {
			k := fmt.Sprintf("%s.stages[%d]", key, j)
			si := slices.IndexFunc(stages, func(s Stage) bool { return s.Name == name })
			switch {
			case si < 0:
				add(k, "must name a stage, got %q", name)
			case stages[si].Immutable:
				add(k, "stage %q is immutable: retention never deletes there", name)
			}
		}
		if rule.KeepLast < 0 {
			add(key+".keep_last", "must be 0 (not used) or more, got %d", rule.KeepLast)
		}
		if rule.KeepPromotions < 0 {
			add(key+".keep_promotions", "must be 0 (not used) or more, got %d", rule.KeepPromotions)
		}
		for _, d := range []struct {
			name string
			v    time.Duration
		}{{"keep_within", rule.KeepWithin}, {"untagged_after", rule.UntaggedAfter}} {
			if d.v < 0 {
				add(key+"."+d.name, "invalid duration: must not be negative, got %s", d.v)
			}
		}
		for j, t := range rule.KeepTags {
			if _, err := path.Match(t, ""); err != nil || t == "" || strings.Contains(t, "/") {
				add(fmt.Sprintf("%s.keep_tags[%d]", key, j), "must be a tag pattern like \"v*\" or \"[0-9]*\", got %q", t)
			}
		}
		if !rule.DeletesTags() && rule.UntaggedAfter == 0 {
			add(key, "sets nothing: give keep_last or keep_within (which tags stay), or untagged_after")
		}
	}
	return ps
}
