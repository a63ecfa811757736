package auth

import (
	"errors"
	"fmt"
	"strings"
)

// Limits of one token request. Docker, containerd and the rest ask for a
// handful of scopes with at most four actions each (a cross-repository
// mount: two scopes); the limits leave ample room and keep an anonymous
// request's cost small and independent of what it sends.
const (
	MaxScopes       = 32   // scopes per request, over every ?scope= and space-separated entry
	MaxScopeActions = 16   // actions listed in one scope, unknown and repeated ones included
	MaxScopeLength  = 1024 // bytes of one scope: a 255-byte name and every action fit in ~300
)

// ErrScopeLimit is what ParseScopes' errors match (errors.Is) when a
// request lists more than MaxScopes scopes or a scope more than
// MaxScopeActions actions, or a scope longer than MaxScopeLength: the token
// endpoint answers invalid_request.
var ErrScopeLimit = errors.New("too many scopes or actions")

type scopeLimitError string

func (e scopeLimitError) Error() string      { return string(e) }
func (scopeLimitError) Is(target error) bool { return target == ErrScopeLimit }

// knownActions are the actions a token can carry: the repository actions
// of the policy and "*" (every allowed action; the catalog's only one).
// Anything else grants nothing anywhere, so it is dropped while parsing.
// Each has a bit, so de-duplicating is one test per action.
var knownActions = map[string]uint8{
	ActionPull: 1 << 0, ActionPush: 1 << 1, ActionDelete: 1 << 2, ActionPromote: 1 << 3, "*": 1 << 4,
}

// ParseScopes reads Docker token scopes ("repository:team/app:pull,push",
// "registry:catalog:*"), several per string when space-separated (OAuth2
// form) and several strings (repeated ?scope=). A resource class
// ("repository(plugin)") is dropped. Requests for the same resource are
// merged, in first-seen order; unknown actions are dropped and repeated
// ones kept once.
//
// Its work is linear in the input and stops at the limits: more than
// MaxScopes scopes, more than MaxScopeActions actions in one scope, or a
// scope longer than MaxScopeLength is an error matching ErrScopeLimit,
// found before the excess is looked at (a string too long to hold
// MaxScopes scopes is refused unread).
// Names are not checked here (Policy.Grant grants nothing on an invalid
// one).
func ParseScopes(scopes []string) ([]Access, error) {
	var out []Access
	var masks []uint8 // the actions of out[i] seen so far
	index := map[string]int{}
	count := 0
	for _, field := range scopes {
		if len(field) > MaxScopes*(MaxScopeLength+1) {
			return nil, scopeLimitError(fmt.Sprintf("scope parameter of %d bytes: at most %d scopes of %d bytes", len(field), MaxScopes, MaxScopeLength))
		}
		for s := range strings.FieldsSeq(field) {
			if count++; count > MaxScopes {
				return nil, scopeLimitError(fmt.Sprintf("too many scopes: at most %d per request", MaxScopes))
			}
			if len(s) > MaxScopeLength {
				return nil, scopeLimitError(fmt.Sprintf("scope %q… is longer than %d bytes", truncate(s, 64), MaxScopeLength))
			}
			typ, rest, ok := strings.Cut(s, ":")
			i := strings.LastIndexByte(rest, ':')
			if !ok || i <= 0 || typ == "" {
				return nil, fmt.Errorf("invalid scope %q: want type:name:actions", truncate(s, 128))
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
				masks = append(masks, 0)
			}
			listed := 0
			for a := range strings.SplitSeq(actions, ",") {
				if listed++; listed > MaxScopeActions {
					return nil, scopeLimitError(fmt.Sprintf("too many actions in scope %q: at most %d", truncate(typ+":"+name, 128), MaxScopeActions))
				}
				bit, known := knownActions[a]
				if known && masks[n]&bit == 0 {
					masks[n] |= bit
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
