package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const oidcGood = `auth:
  oidc:
    jwks_refresh_min_interval: 5s
    log_claims: [repository, ref]
    trust:
      - name: api-ci
        issuer: https://token.actions.githubusercontent.com
        audience: https://registry.example.com
        claims:
          repository: acme/api
          ref: "refs/tags/v*"
        grants:
          - {repos: "staging/{repository}*", actions: [pull, push]}
          - {repos: "production/api", actions: [promote]}
      - issuer: http://127.0.0.1:8080
        audience: slipway
        claims: {sub: "system:serviceaccount:ci:*"}
        grants: [{repos: "staging/*", actions: [pull]}]
`

func TestOIDCSection(t *testing.T) {
	cfg, err := Parse("c.yml", []byte(oidcGood), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Auth.OIDC
	if len(o.Trust) != 2 || o.RefreshMinInterval() != 5*time.Second || !reflect.DeepEqual(o.ClaimsToLog(), []string{"repository", "ref"}) {
		t.Fatalf("oidc = %+v", o)
	}
	r := o.Trust[0]
	if r.Name != "api-ci" || r.Issuer != "https://token.actions.githubusercontent.com" || r.Audience != "https://registry.example.com" ||
		!reflect.DeepEqual(r.Claims, map[string]string{"repository": "acme/api", "ref": "refs/tags/v*"}) ||
		!reflect.DeepEqual(r.Grants[0], Grant{Repos: "staging/{repository}*", Actions: []string{"pull", "push"}}) {
		t.Fatalf("rule = %+v", r)
	}
	// Unset: the defaults.
	if d := Default().Auth.OIDC; d.RefreshMinInterval() != DefaultJWKSRefreshMinInterval || !reflect.DeepEqual(d.ClaimsToLog(), DefaultLogClaims) || len(d.Trust) != 0 {
		t.Fatalf("defaults %+v", d)
	}
}

func TestOIDCErrorsNameKeyAndLine(t *testing.T) {
	rule := "auth:\n  oidc:\n    trust:\n      - issuer: https://issuer.example\n        audience: slipway\n" // lines 1-5
	claims := "        claims: {repository: acme/api}\n"                                                      // line 6
	grants := "        grants: [{repos: \"staging/*\", actions: [pull]}]\n"
	cases := []struct{ name, file, want string }{
		{"http issuer", "auth:\n  oidc:\n    trust:\n      - issuer: http://issuer.example\n        audience: a\n" + claims + grants,
			`c.yml:4: auth.oidc.trust[0].issuer: must be https (http only on a loopback address`},
		{"issuer not url", "auth:\n  oidc:\n    trust:\n      - issuer: issuer.example\n        audience: a\n" + claims + grants,
			`c.yml:4: auth.oidc.trust[0].issuer: must be the issuer's URL`},
		{"no audience", "auth:\n  oidc:\n    trust:\n      - issuer: https://i.example\n" + claims + grants,
			`auth.oidc.trust[0].audience: must not be empty`},
		{"no claims", rule + grants, `auth.oidc.trust[0].claims: must name at least one claim`},
		{"only star", rule + "        claims: {repository: \"*\"}\n" + grants, `auth.oidc.trust[0].claims: must name at least one claim with a value that is not only '*'`},
		{"empty claim value", rule + "        claims: {repository: acme/api, ref: \"\"}\n" + grants, `c.yml:6: auth.oidc.trust[0].claims.ref: must be a value or a glob`},
		{"iss claim", rule + "        claims: {repository: acme/api, aud: x}\n" + grants, `auth.oidc.trust[0].claims.aud: is checked by issuer, audience`},
		{"no grants", rule + claims, `auth.oidc.trust[0].grants: must list at least one grant`},
		{"bad action", rule + claims + "        grants: [{repos: \"staging/*\", actions: [own]}]\n", `c.yml:7: auth.oidc.trust[0].grants[0].actions: must be pull, push, delete or promote`},
		{"unclosed", rule + claims + "        grants: [{repos: \"staging/{repository\", actions: [pull]}]\n", `c.yml:7: auth.oidc.trust[0].grants[0].repos: has an unclosed or empty {claim}`},
		{"empty placeholder", rule + claims + "        grants: [{repos: \"staging/{}\", actions: [pull]}]\n", `auth.oidc.trust[0].grants[0].repos: has an unclosed or empty`},
		{"first segment", rule + claims + "        grants: [{repos: \"{repository}/app\", actions: [pull]}]\n", `auth.oidc.trust[0].grants[0].repos: may not use a {claim} in its first path segment`},
		{"bad glob", rule + claims + "        grants: [{repos: \"Staging/{repository}\", actions: [pull]}]\n", `auth.oidc.trust[0].grants[0].repos: must use only`},
		{"push immutable", rule + claims + "        grants: [{repos: \"production/{repository}\", actions: [pull, push]}]\n",
			`c.yml:7: auth.oidc.trust[0].grants[0].actions: grants push in the immutable stage "production"`},
		{"delete immutable", rule + claims + "        grants: [{repos: \"production/*\", actions: [delete]}]\n", `grants delete in the immutable stage "production"`},
		{"bad name", "auth:\n  oidc:\n    trust:\n      - name: \"a b\"\n        issuer: https://i.example\n        audience: a\n" + claims + grants,
			`c.yml:4: auth.oidc.trust[0].name: must be 1-64`},
		{"refresh", "auth:\n  oidc:\n    jwks_refresh_min_interval: 2h\n", `c.yml:3: auth.oidc.jwks_refresh_min_interval: must be between 1s and 1h0m0s`},
		{"user oidc", "auth:\n  users:\n    - name: OIDC\n      password_hash: \"" + testHash + "\"\n  oidc:\n    trust:\n      - issuer: https://i.example\n        audience: a\n" + claims + grants,
			`c.yml:3: auth.users[0].name: "OIDC" is the login name of ID tokens`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yml", []byte(tc.file), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant one containing %q", err, tc.want)
			}
		})
	}
	// Pushing to a mutable stage, and promoting into an immutable one, are fine.
	ok := rule + claims + "        grants:\n          - {repos: \"staging/{repository}\", actions: [push]}\n          - {repos: \"production/*\", actions: [promote]}\n"
	if _, err := Parse("c.yml", []byte(ok), nil); err != nil {
		t.Fatal(err)
	}
}

func TestSplitGrantPattern(t *testing.T) {
	for in, want := range map[string][]string{
		"staging/*":                   {"staging/*"},
		"staging/{repository}*":       {"staging/", "repository", "*"},
		"s/{a}-{b}":                   {"s/", "a", "-", "b", ""},
		"s/{oidc.example.com/id}/app": {"s/", "oidc.example.com/id", "/app"},
	} {
		if got, ok := SplitGrantPattern(in); !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %q %v, want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{"s/{a", "s/a}", "s/{}", "s/}{a}"} {
		if _, ok := SplitGrantPattern(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}
