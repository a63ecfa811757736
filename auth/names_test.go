package auth

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/slipway/slipway/config"
)

// Names /v2/ would refuse. Globs match characters, so before issue 10
// "staging/*" covered the first of them and an admin's grant covered all.
var invalidNames = []string{"staging/../production/app", "*", "staging/*", "stagïng/app", "Staging/app", "staging/App", "localhost:5000/staging/app", "staging//app", ""}

// TestGrantNothingForInvalidNames: no access entry at all for an invalid
// repository name, whoever asks; valid ones beside it are granted.
func TestGrantNothingForInvalidNames(t *testing.T) {
	p := NewPolicy([]string{"*"}, config.Default().Stages)
	ci := &Account{Name: "ci", Grants: []config.Grant{{Repos: "staging/*", Actions: []string{"pull", "push"}}}}
	admin := &Account{Name: "ops", Admin: true}
	for _, acct := range []*Account{nil, ci, admin} {
		req := []Access{{Type: TypeRepository, Name: "staging/app", Actions: []string{"pull"}}}
		for _, n := range invalidNames {
			req = append(req, Access{Type: TypeRepository, Name: n, Actions: []string{"pull", "push", "*"}})
			if got := p.Allowed(acct, TypeRepository, n); got != nil {
				t.Errorf("%v may %v on %q", acct, got, n)
			}
		}
		got := p.Grant(acct, req)
		if len(got) != 1 || got[0].Name != "staging/app" || len(got[0].Actions) != 1 {
			t.Errorf("grant for %v: %+v, want staging/app:pull only", acct, got)
		}
	}
	if got := p.Grant(admin, []Access{{Type: TypeRegistry, Name: NameCatalog, Actions: []string{"*"}}}); len(got) != 1 || len(got[0].Actions) != 1 {
		t.Errorf("admin catalog: %+v", got)
	}
}

// TestTokenForInvalidNames: through the endpoint, the request succeeds
// (as Docker's token server does) and the token carries nothing for the
// invalid names.
func TestTokenForInvalidNames(t *testing.T) {
	s := newTestService(t, nil)
	h := engine(s)
	q := url.Values{"service": {"slipway"}, "scope": {"repository:staging/app:pull", "registry:catalog:*"}}
	for _, n := range invalidNames[:len(invalidNames)-1] {
		q.Add("scope", "repository:"+n+":pull,push")
	}
	for _, user := range []struct{ name, pass string }{{"ci", ciPass}, {"ops", opsPass}} {
		rec := serve(h, http.MethodGet, "/auth/token?"+q.Encode(), "", basicHeader(user.name, user.pass)...)
		var tr TokenResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &tr); rec.Code != http.StatusOK || err != nil {
			t.Fatalf("%s: %d %s", user.name, rec.Code, rec.Body)
		}
		c, err := s.Verify(tr.Token)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range c.Access {
			if a.Type == TypeRepository && a.Name != "staging/app" {
				t.Errorf("%s's token has an entry for %q: %+v", user.name, a.Name, a)
			}
		}
		if !c.Allows(TypeRepository, "staging/app", ActionPull) {
			t.Errorf("%s's token lost staging/app: %+v", user.name, c.Access)
		}
		if user.name == "ops" && !c.Allows(TypeRegistry, NameCatalog, "*") {
			t.Errorf("the admin's token lost the catalog: %+v", c.Access)
		}
	}
}
