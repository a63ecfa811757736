package importer

import (
	"fmt"
	"slices"
	"strings"

	"github.com/slipway/slipway/internal/names"
)

// StageMap renames stock repositories on their way into Slipway
// (--stage-map, repeatable): "old/=staging/" moves every repository under
// old/ to staging/ (old/app → staging/app), "=staging/" puts every
// repository under staging/, "old/=" strips old/, and "app=staging/web"
// (no trailing '/') renames one repository. The longest matching source
// wins, an exact name before any prefix; a repository nothing matches
// keeps its name.
type StageMap struct {
	exact    map[string]string
	prefixes []mapping // longest source first
}

type mapping struct{ from, to string }

// ParseStageMap reads --stage-map values; an error names the value.
func ParseStageMap(values []string) (StageMap, error) {
	m := StageMap{exact: map[string]string{}}
	seen := map[string]bool{}
	for _, v := range values {
		from, to, ok := strings.Cut(v, "=")
		if !ok {
			return StageMap{}, fmt.Errorf("--stage-map %q: want old/=new/ or old=new", v)
		}
		if seen[from] {
			return StageMap{}, fmt.Errorf("--stage-map %q: %q is mapped twice", v, from)
		}
		seen[from] = true
		if !strings.HasSuffix(from, "/") && from != "" {
			if !names.ValidRepository(from) || !names.ValidRepository(to) {
				return StageMap{}, fmt.Errorf("--stage-map %q: both sides must be repository names", v)
			}
			m.exact[from] = to
			continue
		}
		if !validPrefix(from) || !validPrefix(to) {
			return StageMap{}, fmt.Errorf("--stage-map %q: both sides must be empty or a repository path ending in '/' like staging/", v)
		}
		m.prefixes = append(m.prefixes, mapping{from, to})
	}
	// Longest source first. Two sources of one length never both match a
	// name (they would be equal), so their order does not matter.
	slices.SortFunc(m.prefixes, func(a, b mapping) int { return len(b.from) - len(a.from) })
	return m, nil
}

func validPrefix(p string) bool {
	return p == "" || strings.HasSuffix(p, "/") && names.ValidRepository(strings.TrimSuffix(p, "/"))
}

// Map returns the Slipway name of stock repository repo; an error when
// the mapping makes an invalid name (a repository equal to a stripped
// prefix, or one made too long).
func (m StageMap) Map(repo string) (string, error) {
	out := repo
	if to, ok := m.exact[repo]; ok {
		out = to
	} else {
		for _, p := range m.prefixes {
			if strings.HasPrefix(repo, p.from) {
				out = p.to + strings.TrimPrefix(repo, p.from)
				break
			}
		}
	}
	if !names.ValidRepository(out) {
		return "", fmt.Errorf("repository %s would be imported as %q, not a valid repository name", repo, out)
	}
	return out, nil
}
