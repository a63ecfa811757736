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
	}
	return ps
}
