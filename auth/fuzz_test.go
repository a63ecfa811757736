package auth

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// FuzzParseScopes feeds ParseScopes what an anonymous client controls: the
// scope parameters of /auth/token (two of them, as ?scope= repeated).
// Beyond not panicking, what it returns must be what a grant can be made
// of, no bigger than the request, and stable when written back as scopes.
func FuzzParseScopes(f *testing.F) {
	for _, s := range [][2]string{
		{"repository:staging/app:pull,push", ""},
		{"registry:catalog:*", "repository:production/app:pull"},
		{"repository(plugin):vieux/sshfs:pull", ""},
		{"repository:localhost:5000/app:pull", "repository:localhost:5000/app:push,pull"},
		{"repository:a:pull repository:a:push repository:b:delete", "repository:a:pull"},
		{"repository:staging/app:a1,a2,a3,a4,a5,pull,pull,,push", ""},
		{"repository:team/app:", "repository:team/app:promote"},
		{"repository:staging/../production/app:pull", "repository:*:pull"},
		{"repository:café:pull", "repository:Upper/App:pull"},
		{"bad", "::"},
		{"repository::pull", "repository:a"},
		{"(x):a:pull", "x():a:pull"},
		{"\trepository:a:pull\n repository:a:push ", "  "},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		in := []string{a, b}
		out, err := ParseScopes(in)
		if err != nil {
			if out != nil {
				t.Fatalf("error %v with %d accesses", err, len(out))
			}
			return
		}
		fields := len(strings.Fields(a)) + len(strings.Fields(b))
		if len(out) > fields {
			t.Fatalf("%d accesses from %d scopes", len(out), fields)
		}
		size, seen := 0, map[[2]string]bool{}
		for _, acc := range out {
			if acc.Type == "" || acc.Name == "" || acc.Actions == nil {
				t.Fatalf("incomplete access %#v", acc)
			}
			if strings.ContainsAny(acc.Type, ": \t\r\n") || strings.ContainsFunc(acc.Name, unicode.IsSpace) {
				t.Fatalf("access %#v: separator inside type or name", acc)
			}
			key := [2]string{acc.Type, acc.Name}
			if seen[key] {
				t.Fatalf("%s:%s listed twice", acc.Type, acc.Name)
			}
			seen[key] = true
			for i, action := range acc.Actions {
				if action == "" || strings.ContainsAny(action, ":,") || strings.ContainsFunc(action, unicode.IsSpace) {
					t.Fatalf("access %#v: bad action %q", acc, action)
				}
				if slices.Contains(acc.Actions[:i], action) {
					t.Fatalf("access %#v: action %q twice", acc, action)
				}
				if !strings.Contains(a, action) && !strings.Contains(b, action) {
					t.Fatalf("action %q is not in the request", action)
				}
			}
			if !strings.Contains(a, acc.Name) && !strings.Contains(b, acc.Name) {
				t.Fatalf("name %q is not in the request", acc.Name)
			}
			// Written back, an access is itself.
			s := FormatScope(acc)
			size += len(s)
			again, err := ParseScopes([]string{s})
			if err != nil || !reflect.DeepEqual(again, []Access{acc}) {
				t.Fatalf("%#v formats as %q, which parses as %#v, %v", acc, s, again, err)
			}
		}
		// Never more than was asked: the grant is bounded by the request.
		if size > len(a)+len(b) {
			t.Fatalf("accesses of %d bytes from %d bytes of scopes", size, len(a)+len(b))
		}
		// And the whole answer, written back as one parameter, is stable.
		all := make([]string, len(out))
		for i, acc := range out {
			all[i] = FormatScope(acc)
		}
		if again, err := ParseScopes([]string{strings.Join(all, " ")}); err != nil || !reflect.DeepEqual(again, out) {
			t.Fatalf("%#v written back parses as %#v, %v", out, again, err)
		}
	})
}
