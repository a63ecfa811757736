package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestAdminOIDCSection(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := `http:
  public_url: "https://registry.example.com"
admin:
  oidc:
    issuer: "https://login.example.com"
    client_id: slipway
    client_secret_file: "` + secret + `"
    admin_groups: [platform]
    grants:
      qa-team:
        - repos: "staging/*"
          actions: [pull, promote]
    password_login: false
`
	cfg, err := Parse("c.yml", []byte(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Admin.OIDC
	if o == nil || o.Issuer != "https://login.example.com" || o.ClientID != "slipway" || o.PasswordLoginAllowed() {
		t.Fatalf("admin.oidc = %+v", o)
	}
	if s, err := o.Secret(); err != nil || s != "s3cret" {
		t.Fatalf("secret %q, %v", s, err)
	}
	if got := o.Redirect(cfg.HTTP.PublicURL); got != "https://registry.example.com/admin/oidc/callback" {
		t.Fatalf("redirect %q", got)
	}
	if got := o.ScopesOrDefault(); !reflect.DeepEqual(got, []string{"openid", "profile", "email", "groups"}) {
		t.Fatalf("scopes %v", got)
	}
	if o.GroupsClaimOrDefault() != "groups" {
		t.Fatalf("groups claim %q", o.GroupsClaimOrDefault())
	}
	want := []Grant{{Repos: "staging/*", Actions: []string{"pull", "promote"}}}
	if !reflect.DeepEqual(o.Grants["qa-team"], want) {
		t.Fatalf("grants %+v", o.Grants)
	}
	if (AdminOIDC{}).PasswordLoginAllowed() != true {
		t.Fatal("password login must default to on")
	}
	if cfg, _ := Parse("c.yml", nil, nil); cfg.Admin.OIDC != nil {
		t.Fatal("admin.oidc must be off by default")
	}
}

func TestAdminOIDCErrorsNameKey(t *testing.T) {
	base := "http:\n  public_url: \"https://r.example.com\"\nadmin:\n  oidc:\n    issuer: \"https://login.example.com\"\n    client_id: slipway\n" // lines 1-6
	groups := "    admin_groups: [ops]\n"
	cases := []struct{ name, file, want string }{
		{"issuer", "admin:\n  oidc:\n    issuer: login.example.com\n    client_id: x\n    redirect_url: \"https://r/admin/oidc/callback\"\n" + groups, `c.yml:3: admin.oidc.issuer: must be the provider's issuer URL`},
		{"client id", "http:\n  public_url: \"https://r.example.com\"\nadmin:\n  oidc:\n    issuer: \"https://l\"\n" + groups, `admin.oidc.client_id: must be the client id`},
		{"both secrets", base + groups + "    client_secret: a\n    client_secret_file: /x\n", `c.yml:9: admin.oidc.client_secret_file: set client_secret or client_secret_file, not both`},
		{"missing secret file", base + groups + "    client_secret_file: /nonexistent/secret\n", `c.yml:8: admin.oidc.client_secret_file: open /nonexistent/secret`},
		{"scopes without openid", base + groups + "    scopes: [profile]\n", `c.yml:8: admin.oidc.scopes: must include openid`},
		{"bad scope", base + groups + "    scopes: [openid, \"a b\"]\n", `admin.oidc.scopes[1]: must be a scope name`},
		{"no redirect", "admin:\n  oidc:\n    issuer: \"https://l\"\n    client_id: x\n" + groups, `admin.oidc.redirect_url: must be set when http.public_url is not`},
		{"bad redirect", base + groups + "    redirect_url: \"https://r.example.com/callback\"\n", `c.yml:8: admin.oidc.redirect_url: must be an absolute URL ending in /admin/oidc/callback`},
		{"nobody", base, `admin.oidc.admin_groups: must name at least one group`},
		{"grant action", base + "    grants:\n      qa-team:\n        - repos: \"staging/*\"\n          actions: [own]\n", `c.yml:10: admin.oidc.grants.qa-team[0].actions: must be pull, push, delete or promote, got "own"`},
		{"grant repos", base + "    grants:\n      qa-team:\n        - repos: \"Staging\"\n          actions: [pull]\n", `c.yml:9: admin.oidc.grants.qa-team[0].repos: must use only`},
		{"empty grants", base + "    grants:\n      qa-team: []\n", `c.yml:8: admin.oidc.grants.qa-team: must list at least one grant`},
		{"grants typed", base + "    grants:\n      qa-team: {\"staging/*\": [pull]}\n", `admin.oidc.grants.qa-team: must be a list`},
		{"unknown key", base + groups + "    client_secrets: x\n", `admin.oidc.client_secrets`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yml", []byte(tc.file), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant one containing %q", err, tc.want)
			}
		})
	}
}
