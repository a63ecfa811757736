package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/promote"
)

// The release account of issue 10, finding 2: promote without pull on
// staging, pull and promote on production.
const (
	relUser = "rel"
	relPass = "rel-password"
)

// TestPromoteNeedsPullOnSource: promoting reads the source, so without
// pull there it would copy an image the account may not pull to where it
// may, and the account would pull it there.
func TestPromoteNeedsPullOnSource(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.Users = append(cfg.Auth.Users, config.User{Name: relUser, PasswordHash: testHash(t, relPass), Grants: []config.Grant{
		{Repos: "staging/*", Actions: []string{"promote"}},
		{Repos: "production/*", Actions: []string{"pull", "promote"}},
	}})
	s, _ := newTestServerWith(t, cfg, nil, auth.Options{})
	h := s.Handler()
	adm := token(t, h, adminUser, adminPass, "repository:staging/private:pull,push")
	if rec := pushImage(t, h, adm, "staging/private", "t1"); rec.Code != http.StatusCreated {
		t.Fatalf("push = %d %s", rec.Code, rec.Body)
	}
	rec := send(h, http.MethodPost, "/api/v1/promotions", `{"source":"staging/private:t1","to":"production"}`,
		append(basic(relUser, relPass), "Content-Type", "application/json")...)
	var e promote.Error
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	if rec.Code != http.StatusForbidden || e.Code != promote.CodeDenied || !strings.Contains(e.Message, "promote needs pull and promote on staging/private") {
		t.Fatalf("promote without pull on the source = %d %s, want 403 saying pull and promote are needed", rec.Code, rec.Body)
	}
	// Nothing reached production for rel to pull.
	tok := token(t, h, relUser, relPass, "repository:production/private:pull")
	if rec := send(h, http.MethodGet, "/v2/production/private/manifests/t1", "", bearer(tok)...); rec.Code != http.StatusNotFound {
		t.Fatalf("production/private:t1 after the refused promotion = %d %s", rec.Code, rec.Body)
	}
}

// TestRegistryTokensDoNotOpenTheAPI: a token fetched to pull (or with no
// scope) does not create robots; an API token (scope api:v1:*) and Basic
// credentials do.
func TestRegistryTokensDoNotOpenTheAPI(t *testing.T) {
	s, _ := newTestServer(t, nil)
	h := s.Handler()
	robot := func(name string, hdr ...string) int {
		return send(h, http.MethodPost, "/api/v1/robots", `{"name":"`+name+`","grants":[{"repos":"staging/*","actions":["pull"]}]}`,
			append(hdr, "Content-Type", "application/json")...).Code
	}
	for _, scopes := range [][]string{nil, {"repository:x:pull"}} {
		if code := robot("sneaky", bearer(token(t, h, adminUser, adminPass, scopes...))...); code != http.StatusUnauthorized {
			t.Errorf("create a robot with the admin's registry token (scopes %v) = %d, want 401", scopes, code)
		}
	}
	if rec := send(h, http.MethodGet, "/api/v1/robots/sneaky", "", basic(adminUser, adminPass)...); rec.Code != http.StatusNotFound {
		t.Fatalf("a robot was created with a registry token: %d %s", rec.Code, rec.Body)
	}
	apiTok := token(t, h, adminUser, adminPass, "api:v1:*")
	if code := robot("with-token", bearer(apiTok)...); code != http.StatusCreated {
		t.Errorf("create a robot with an API token = %d, want 201", code)
	}
	if code := robot("with-basic", basic(adminUser, adminPass)...); code != http.StatusCreated {
		t.Errorf("create a robot with Basic = %d, want 201", code)
	}
	// And the API token opens nothing on /v2/.
	if rec := send(h, http.MethodGet, "/v2/_catalog", "", bearer(apiTok)...); rec.Code != http.StatusUnauthorized {
		t.Errorf("API token on /v2/_catalog = %d, want 401", rec.Code)
	}
}
