package config

import (
	"fmt"
	"path"
	"strings"

	"github.com/slipway/slipway/internal/names"
)

// Stage is one step of the promotion path: the repositories under Prefix.
type Stage struct {
	Name string `yaml:"name"`
	// Prefix selects the stage's repositories; it ends with '/'.
	Prefix string `yaml:"prefix"`
	// PromoteFrom names the stages images may be promoted from into this one.
	PromoteFrom []string `yaml:"promote_from"`
	// Immutable: nobody, admins included, pushes or deletes here through
	// /v2/; only the promotion service writes.
	Immutable bool `yaml:"immutable"`
	// FixedTags are tag patterns that, once set, are never re-pointed.
	// The syntax is Go's path.Match: '*' any run of characters, '?' one,
	// '[0-9]' a class ("v*", "[0-9]*").
	FixedTags []string `yaml:"fixed_tags"`
	// Gates must all pass for a promotion or rollback into this stage
	// (package gate verifies them).
	Gates Gates `yaml:"gates"`
}

// Gates are the evidence a digest needs to enter a stage.
type Gates struct {
	// SignedBy: at least one cosign signature over the exact digest that
	// verifies under one of these keys.
	SignedBy []GateKey `yaml:"signed_by"`
	// Attestations are in-toto predicate types that must each be attested
	// for the digest, signed by one of SignedBy's keys.
	Attestations []string `yaml:"attestations"`
	// Referrers are artifacts that must be attached to the digest.
	Referrers []ReferrerGate `yaml:"referrers"`
	// PerPlatform: for an index, every child must pass too, not only the
	// index digest.
	PerPlatform bool `yaml:"per_platform"`
}

// Any reports whether the stage has a gate at all.
func (g Gates) Any() bool {
	return len(g.SignedBy) > 0 || len(g.Attestations) > 0 || len(g.Referrers) > 0
}

// GateKey is a public key (PEM: ECDSA, Ed25519 or RSA), inline or in a
// file; Name identifies it in refusals and the ledger (default: a
// fingerprint of the key).
type GateKey struct {
	Name    string `yaml:"name"`
	Key     string `yaml:"key"`
	KeyFile string `yaml:"key_file"`
}

// ReferrerGate requires an artifact of ArtifactType whose subject is the
// digest, carrying every annotation listed (exact values).
type ReferrerGate struct {
	ArtifactType string            `yaml:"artifact_type"`
	Annotations  map[string]string `yaml:"annotations"`
}

// IsFixedTag reports whether tag matches one of the stage's fixed_tags.
func (s Stage) IsFixedTag(tag string) bool {
	for _, p := range s.FixedTags {
		if ok, _ := path.Match(p, tag); ok {
			return true
		}
	}
	return false
}

func defaultStages() []Stage {
	return []Stage{
		{Name: "staging", Prefix: "staging/"},
		{Name: "production", Prefix: "production/", PromoteFrom: []string{"staging"}, Immutable: true, FixedTags: []string{"v*"}},
	}
}

// StageOf returns the stage whose prefix the repository name starts with.
func StageOf(stages []Stage, repo string) (Stage, bool) {
	for _, s := range stages {
		if strings.HasPrefix(repo, s.Prefix) {
			return s, true
		}
	}
	return Stage{}, false
}

func stageProblems(stages []Stage) []problem {
	var ps []problem
	add := func(key, format string, args ...any) {
		ps = append(ps, problem{key, fmt.Sprintf(format, args...)})
	}
	stageNames := map[string]bool{}
	for _, s := range stages {
		stageNames[s.Name] = true
	}
	seen := map[string]bool{}
	for i, s := range stages {
		key := fmt.Sprintf("stages[%d]", i)
		switch {
		case !userName.MatchString(s.Name):
			add(key+".name", "must be 1-64 of A-Z a-z 0-9 . _ @ -, got %q", s.Name)
		case seen[s.Name]:
			add(key+".name", "stage %q is defined twice", s.Name)
		}
		seen[s.Name] = true
		// The prefix and an app name make the stage's repository names, so
		// the prefix must be a valid name followed by '/' ("a..b/" is not).
		if m := checkRepoGlob(s.Prefix); m != "" || !strings.HasSuffix(s.Prefix, "/") || !names.ValidRepository(strings.TrimSuffix(s.Prefix, "/")) {
			add(key+".prefix", "must be a repository path ending in '/' like \"staging/\" (no wildcards), got %q", s.Prefix)
		} else {
			for j, o := range stages[:i] {
				if strings.HasPrefix(s.Prefix, o.Prefix) || strings.HasPrefix(o.Prefix, s.Prefix) {
					add(key+".prefix", "%q overlaps stages[%d].prefix %q", s.Prefix, j, o.Prefix)
				}
			}
		}
		for j, from := range s.PromoteFrom {
			if !stageNames[from] || from == s.Name {
				add(fmt.Sprintf("%s.promote_from[%d]", key, j), "must name another stage, got %q", from)
			}
		}
		for j, t := range s.FixedTags {
			if _, err := path.Match(t, ""); err != nil || t == "" || strings.Contains(t, "/") {
				add(fmt.Sprintf("%s.fixed_tags[%d]", key, j), "must be a tag pattern like \"v*\" or \"[0-9]*\", got %q", t)
			}
		}
		ps = append(ps, gateProblems(key, s.Gates)...)
	}
	return ps
}
