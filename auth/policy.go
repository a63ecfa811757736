package auth

import (
	"slices"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/internal/names"
)

// Actions on repositories. An account's grants name them; tokens carry
// them.
const (
	ActionPull    = "pull"
	ActionPush    = "push"
	ActionDelete  = "delete"
	ActionPromote = "promote"
)

// Resource types and names of the Docker token specification.
const (
	TypeRepository = "repository"
	TypeRegistry   = "registry"
	NameCatalog    = "catalog"
)

// allActions is what an admin may do on a repository, in token order.
var allActions = []string{ActionPull, ActionPush, ActionDelete, ActionPromote}

// Policy decides what an account may do. Its rules, in order:
//  1. admins may do everything on every repository, and list the catalog;
//  2. other accounts may do what their grants allow on the repositories
//     the grants' globs match; everyone (anonymous included) may pull the
//     repositories auth.anonymous_pull matches;
//  3. stage rules override both: in a stage marked immutable nobody gets
//     push or delete (only the promotion service writes there);
//  4. a repository name /v2/ would refuse (names.ValidRepository) gets
//     nothing: globs match characters, so "staging/*" would otherwise
//     cover "staging/../production/app".
type Policy struct {
	anonymous []string
	stages    []config.Stage
}

// NewPolicy builds the policy for the anonymous-pull globs and stages.
func NewPolicy(anonymousPull []string, stages []config.Stage) *Policy {
	return &Policy{anonymous: anonymousPull, stages: stages}
}

// Allowed returns the actions acct (nil: anonymous) may take on the
// resource typ:name, in a stable order.
func (p *Policy) Allowed(acct *Account, typ, name string) []string {
	switch typ {
	case TypeRegistry:
		if name == NameCatalog && acct != nil && acct.Admin {
			return []string{"*"}
		}
		return nil
	case TypeRepository:
		if !names.ValidRepository(name) {
			return nil
		}
	default:
		return nil
	}
	set := map[string]bool{}
	if acct != nil && acct.Admin {
		for _, a := range allActions {
			set[a] = true
		}
	}
	if acct != nil {
		for _, g := range acct.Grants {
			if MatchGlob(g.Repos, name) {
				for _, a := range g.Actions {
					set[a] = true
				}
			}
		}
	}
	for _, g := range p.anonymous {
		if MatchGlob(g, name) {
			set[ActionPull] = true
		}
	}
	if st, ok := config.StageOf(p.stages, name); ok && st.Immutable {
		delete(set, ActionPush)
		delete(set, ActionDelete)
	}
	var out []string
	for _, a := range allActions {
		if set[a] {
			out = append(out, a)
		}
	}
	return out
}

// Grant answers a token request: for each requested resource, the
// intersection of the actions asked for and those allowed. Asking for more
// than allowed is never an error; the answer then has fewer (or no)
// actions. "*" asks for every allowed action. A repository whose name
// /v2/ would refuse gets no entry at all, as Docker's token server does:
// the request still succeeds (a client asking for a bad name hears
// NAME_INVALID from /v2/, which says more than a refused token would).
func (p *Policy) Grant(acct *Account, requested []Access) []Access {
	out := make([]Access, 0, len(requested))
	for _, r := range requested {
		if r.Type == TypeRepository && !names.ValidRepository(r.Name) {
			continue
		}
		allowed := p.Allowed(acct, r.Type, r.Name)
		granted := []string{}
		for _, a := range r.Actions {
			switch {
			case a == "*" && !slices.Contains(allowed, "*"):
				for _, x := range allowed {
					if !slices.Contains(granted, x) {
						granted = append(granted, x)
					}
				}
			case slices.Contains(allowed, a) && !slices.Contains(granted, a):
				granted = append(granted, a)
			}
		}
		out = append(out, Access{Type: r.Type, Name: r.Name, Actions: granted})
	}
	return out
}

// ImmutableStage returns the name of the immutable stage repo is in, if any.
func (p *Policy) ImmutableStage(repo string) (string, bool) {
	st, ok := config.StageOf(p.stages, repo)
	if !ok || !st.Immutable {
		return "", false
	}
	return st.Name, true
}

// MatchGlob reports whether name matches pattern, in which '*' matches any
// run of characters ('/' included, so "production/*" covers
// "production/team/app") and every other character matches itself.
func MatchGlob(pattern, name string) bool {
	// The classic linear backtracking match: on a mismatch, let the last
	// '*' swallow one more character.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
