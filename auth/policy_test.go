package auth

import (
	"reflect"
	"testing"

	"github.com/slipway/slipway/config"
)

func TestMatchGlob(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"staging/*", "staging/app", true},
		{"staging/*", "staging/team/app", true}, // '*' crosses '/'
		{"staging/*", "staging", false},
		{"staging/*", "staging/", true},
		{"staging/*", "stagingx/app", false},
		{"staging/app-*", "staging/app-web", true},
		{"staging/app-*", "staging/app-", true},
		{"staging/app-*", "staging/api", false},
		{"*", "anything/at/all", true},
		{"*/app", "a/b/app", true},
		{"*/app", "a/b/app2", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a*b*c", "abcabc", true},
		{"library/app", "library/app", true},
		{"library/app", "library/app2", false},
		{"library/app", "library/ap", false},
		{"**", "", true},
		{"", "", true},
		{"", "a", false},
		{"a.b", "aXb", false}, // no other wildcard characters
	}
	for _, tc := range cases {
		if got := MatchGlob(tc.pattern, tc.name); got != tc.want {
			t.Errorf("MatchGlob(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func TestPolicy(t *testing.T) {
	p := NewPolicy([]string{"public/*"}, config.Default().Stages)
	ci := &Account{Name: "ci", Grants: []config.Grant{
		{Repos: "staging/*", Actions: []string{"pull", "push"}},
		{Repos: "staging/app-*", Actions: []string{"delete"}},
		{Repos: "production/*", Actions: []string{"pull", "push", "delete", "promote"}},
	}}
	admin := &Account{Name: "ops", Admin: true}
	cases := []struct {
		acct       *Account
		typ, name  string
		want       []string
		desc       string
		wantGrants []string
	}{
		{ci, TypeRepository, "staging/app-web", []string{"pull", "push", "delete"}, "grants add up", nil},
		{ci, TypeRepository, "staging/lib", []string{"pull", "push"}, "", nil},
		{ci, TypeRepository, "production/app", []string{"pull", "promote"}, "immutable stage drops push, delete", nil},
		{ci, TypeRepository, "public/x", []string{"pull"}, "anonymous pull applies to all", nil},
		{ci, TypeRepository, "other/x", nil, "no grant", nil},
		{ci, TypeRegistry, NameCatalog, nil, "catalog is for admins", nil},
		{admin, TypeRepository, "other/x", []string{"pull", "push", "delete", "promote"}, "admin may all", nil},
		{admin, TypeRepository, "production/app", []string{"pull", "promote"}, "even admins: no push in production", nil},
		{admin, TypeRegistry, NameCatalog, []string{"*"}, "", nil},
		{admin, "plugin", "x", nil, "unknown types: nothing", nil},
		{nil, TypeRepository, "public/x", []string{"pull"}, "anonymous", nil},
		{nil, TypeRepository, "staging/x", nil, "anonymous", nil},
		{nil, TypeRegistry, NameCatalog, nil, "anonymous", nil},
	}
	for _, tc := range cases {
		if got := p.Allowed(tc.acct, tc.typ, tc.name); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v on %s:%s (%s): %q, want %q", tc.acct, tc.typ, tc.name, tc.desc, got, tc.want)
		}
	}
}

func TestGrantIsIntersection(t *testing.T) {
	p := NewPolicy(nil, config.Default().Stages)
	ci := &Account{Name: "ci", Grants: []config.Grant{{Repos: "staging/*", Actions: []string{"pull", "push"}}}}
	got := p.Grant(ci, []Access{
		{Type: TypeRepository, Name: "staging/a", Actions: []string{"pull", "push", "delete", "pull"}},
		{Type: TypeRepository, Name: "staging/b", Actions: []string{"*"}},
		{Type: TypeRepository, Name: "other/c", Actions: []string{"pull"}},
		{Type: TypeRegistry, Name: NameCatalog, Actions: []string{"*"}},
		{Type: TypeRepository, Name: "staging/d", Actions: []string{"bogus"}},
	})
	want := []Access{
		{Type: TypeRepository, Name: "staging/a", Actions: []string{"pull", "push"}},
		{Type: TypeRepository, Name: "staging/b", Actions: []string{"pull", "push"}},
		{Type: TypeRepository, Name: "other/c", Actions: []string{}},
		{Type: TypeRegistry, Name: NameCatalog, Actions: []string{}},
		{Type: TypeRepository, Name: "staging/d", Actions: []string{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if got := p.Grant(ci, nil); got == nil || len(got) != 0 {
		t.Fatalf("no scopes: %#v, want an empty list", got)
	}
	admin := &Account{Admin: true}
	if got := p.Grant(admin, []Access{{Type: TypeRegistry, Name: NameCatalog, Actions: []string{"*"}}}); !reflect.DeepEqual(got[0].Actions, []string{"*"}) {
		t.Fatalf("admin catalog: %+v", got)
	}
}

func TestParseScopes(t *testing.T) {
	got, err := ParseScopes([]string{
		"repository:staging/app:pull,push",
		"repository:staging/app:delete repository(plugin):x/y:pull",
		"registry:catalog:*",
		"repository:host:5000/app:pull", // the name is what lies between the first and last ':'
		"repository:empty:",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Access{
		{Type: "repository", Name: "staging/app", Actions: []string{"pull", "push", "delete"}},
		{Type: "repository", Name: "x/y", Actions: []string{"pull"}},
		{Type: "registry", Name: "catalog", Actions: []string{"*"}},
		{Type: "repository", Name: "host:5000/app", Actions: []string{"pull"}},
		{Type: "repository", Name: "empty", Actions: []string{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"repository", "repository:app", ":app:pull", "repository::pull"} {
		if _, err := ParseScopes([]string{bad}); err == nil {
			t.Errorf("ParseScopes(%q) accepted", bad)
		}
	}
	if FormatScope(want[0]) != "repository:staging/app:pull,push,delete" {
		t.Fatal(FormatScope(want[0]))
	}
}
