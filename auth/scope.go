package auth

import (
	"fmt"
	"slices"
	"strings"
)

// ParseScopes reads Docker token scopes ("repository:team/app:pull,push",
// "registry:catalog:*"), several per string when space-separated (OAuth2
// form) and several strings (repeated ?scope=). A resource class
// ("repository(plugin)") is dropped. Requests for the same resource are
// merged, in first-seen order.
func ParseScopes(scopes []string) ([]Access, error) {
	var out []Access
	index := map[string]int{}
	for _, field := range scopes {
		for _, s := range strings.Fields(field) {
			typ, rest, ok := strings.Cut(s, ":")
			i := strings.LastIndexByte(rest, ':')
			if !ok || i <= 0 || typ == "" {
				return nil, fmt.Errorf("invalid scope %q: want type:name:actions", s)
			}
			if j := strings.IndexByte(typ, '('); j > 0 && strings.HasSuffix(typ, ")") {
				typ = typ[:j]
			}
			name, actions := rest[:i], rest[i+1:]
			key := typ + ":" + name
			n, seen := index[key]
			if !seen {
				n = len(out)
				index[key] = n
				out = append(out, Access{Type: typ, Name: name, Actions: []string{}})
			}
			for _, a := range strings.Split(actions, ",") {
				if a != "" && !slices.Contains(out[n].Actions, a) {
					out[n].Actions = append(out[n].Actions, a)
				}
			}
		}
	}
	return out, nil
}

// FormatScope is the scope string of one access entry.
func FormatScope(a Access) string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}
