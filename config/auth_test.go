package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const testHash = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"

func TestAuthDefaults(t *testing.T) {
	a := Default().Auth
	if a.Issuer != "slipway" || a.Service != "slipway" || a.Algorithm != "ES256" ||
		a.SigningKey != "./data/keys/token.pem" || a.TokenTTL != 5*time.Minute || a.RefreshTTL != 720*time.Hour ||
		len(a.Users) != 0 || len(a.AnonymousPull) != 0 || a.Lockout.MaxFailures != 10 || a.Lockout.Window != time.Minute {
		t.Fatalf("auth defaults: %+v", a)
	}
	st := Default().Stages
	if len(st) != 2 || st[0].Prefix != "staging/" || st[1].Name != "production" || !st[1].Immutable ||
		!reflect.DeepEqual(st[1].PromoteFrom, []string{"staging"}) || !reflect.DeepEqual(st[1].FixedTags, []string{"v*"}) {
		t.Fatalf("stage defaults: %+v", st)
	}
}

func TestAuthSection(t *testing.T) {
	file := `auth:
  issuer: reg
  service: reg.example.com
  signing_key: /etc/slipway/token.pem
  algorithm: EdDSA
  verification_keys: [/etc/slipway/old.pem]
  token_ttl: 10m
  refresh_ttl: 24h
  anonymous_pull: ["public/*"]
  lockout: {max_failures: 3, address_max_failures: 9, window: 2s}
  users:
    - name: ci
      password_hash: "` + testHash + `"
      grants:
        - {repos: "staging/*", actions: [pull, push]}
    - name: ops
      password_hash: "` + testHash + `"
      admin: true
stages:
  - {name: dev, prefix: "dev/"}
  - {name: prod, prefix: "prod/", promote_from: [dev], immutable: true, fixed_tags: ["v*", "release-*"]}
`
	cfg, err := Parse("c.yml", []byte(file), envMap(map[string]string{"SLIPWAY_ADMIN_PASSWORD": "s3cret", "SLIPWAY_AUTH_TOKEN_TTL": "2m"}))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Auth
	want := Auth{
		Issuer: "reg", Service: "reg.example.com", SigningKey: "/etc/slipway/token.pem", Algorithm: "EdDSA",
		VerificationKeys: []string{"/etc/slipway/old.pem"}, TokenTTL: 2 * time.Minute, RefreshTTL: 24 * time.Hour,
		CredentialCacheTTL: 5 * time.Minute, AnonymousPull: []string{"public/*"},
		Lockout: Lockout{MaxFailures: 3, AddressMaxFailures: 9, Window: 2 * time.Second},
		Users: []User{
			{Name: "ci", PasswordHash: testHash, Grants: []Grant{{Repos: "staging/*", Actions: []string{"pull", "push"}}}},
			{Name: "ops", PasswordHash: testHash, Admin: true},
		},
		AdminPassword: "s3cret",
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("got  %+v\nwant %+v", a, want)
	}
	if len(cfg.Stages) != 2 || cfg.Stages[1].Name != "prod" || !cfg.Stages[1].Immutable {
		t.Fatalf("stages: %+v", cfg.Stages)
	}
	if s, ok := StageOf(cfg.Stages, "prod/team/app"); !ok || s.Name != "prod" {
		t.Fatalf("StageOf = %+v %v", s, ok)
	}
	if _, ok := StageOf(cfg.Stages, "production/app"); ok {
		t.Fatal("prod/ matched production/app")
	}
}

func TestSigningKeyFollowsRoot(t *testing.T) {
	cfg, err := Parse("c.yml", []byte("storage:\n  filesystem:\n    root: /srv/x/\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.SigningKey != "/srv/x/keys/token.pem" {
		t.Fatalf("signing key = %q", cfg.Auth.SigningKey)
	}
	cfg, err = Parse("c.yml", nil, envMap(map[string]string{"SLIPWAY_STORAGE_FILESYSTEM_ROOT": "/a", "SLIPWAY_AUTH_SIGNING_KEY": "/k.pem"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.SigningKey != "/k.pem" {
		t.Fatalf("explicit signing key replaced: %q", cfg.Auth.SigningKey)
	}
}

func TestStagesReplaceDefaults(t *testing.T) {
	cfg, err := Parse("c.yml", []byte("stages:\n  - {name: qa, prefix: qa/, fixed_tags: [\"v*\", \"[0-9]*\"]}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Stages) != 1 || cfg.Stages[0].Immutable || len(cfg.Stages[0].PromoteFrom) != 0 {
		t.Fatalf("stages = %+v", cfg.Stages)
	}
	st := cfg.Stages[0]
	for tag, want := range map[string]bool{"v1.2": true, "2024.01": true, "latest": false, "stable": false} {
		if st.IsFixedTag(tag) != want {
			t.Errorf("IsFixedTag(%q) = %v", tag, !want)
		}
	}
}

func TestEmptyStagesList(t *testing.T) {
	cfg, err := Parse("c.yml", []byte("stages: []\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Stages) != 0 {
		t.Fatalf("stages = %+v", cfg.Stages)
	}
}

func TestAdminPasswordNotFromFile(t *testing.T) {
	_, err := Parse("c.yml", []byte("auth:\n  admin_password: x\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "c.yml:2: auth.admin_password: unknown key") {
		t.Fatalf("err = %v", err)
	}
}

func TestAuthErrorsNameKeyAndLine(t *testing.T) {
	user := "auth:\n  users:\n    - name: ci\n      password_hash: \"" + testHash + "\"\n" // lines 1-4
	cases := []struct{ name, file, want string }{
		{"algorithm", "auth:\n  algorithm: HS256\n", `c.yml:2: auth.algorithm: must be one of ES256|EdDSA|RS256, got "HS256"`},
		{"token ttl", "auth:\n  token_ttl: 1s\n", `c.yml:2: auth.token_ttl: must be between 30s and 24h`},
		{"refresh ttl", "auth:\n  token_ttl: 1h\n  refresh_ttl: 30m\n", `c.yml:3: auth.refresh_ttl: must be between token_ttl`},
		{"lockout", "auth:\n  lockout:\n    max_failures: 0\n", `c.yml:3: auth.lockout.max_failures: must be at least 1`},
		{"window", "auth:\n  lockout:\n    window: 0s\n", `c.yml:3: auth.lockout.window: must be a positive duration`},
		{"anon glob", "auth:\n  anonymous_pull:\n    - ok/*\n    - \"Bad Name\"\n", `c.yml:4: auth.anonymous_pull[1]: must use only`},
		{"user name", "auth:\n  users:\n    - name: \"robot$x\"\n      password_hash: \"" + testHash + "\"\n", `c.yml:3: auth.users[0].name: must be 1-64`},
		{"duplicate user", user + "    - name: CI\n      password_hash: \"" + testHash + "\"\n", `c.yml:5: auth.users[1].name: "CI" is configured twice`},
		{"hash", "auth:\n  users:\n    - name: ci\n      password_hash: plaintext\n", `c.yml:4: auth.users[0].password_hash: must be a bcrypt hash`},
		{"grant action", user + "      grants:\n        - repos: \"a/*\"\n          actions: [pull, own]\n", `c.yml:7: auth.users[0].grants[0].actions: must be pull, push, delete or promote, got "own"`},
		{"grant repos", user + "      grants:\n        - repos: \"\"\n          actions: [pull]\n", `c.yml:6: auth.users[0].grants[0].repos: must be a repository glob`},
		{"grant no actions", user + "      grants:\n        - repos: \"a/*\"\n", `c.yml:6: auth.users[0].grants[0].actions: must list at least one`},
		{"stage prefix", "stages:\n  - name: a\n    prefix: a\n", `c.yml:3: stages[0].prefix: must be a repository path ending in '/'`},
		{"stage prefix dots", "stages:\n  - name: a\n    prefix: a..b/\n", `c.yml:3: stages[0].prefix: must be a repository path ending in '/'`},
		{"stage prefix empty component", "stages:\n  - name: a\n    prefix: x//\n", `c.yml:3: stages[0].prefix: must be a repository path ending in '/'`},
		{"stage overlap", "stages:\n  - name: a\n    prefix: a/\n  - name: b\n    prefix: a/b/\n", `c.yml:5: stages[1].prefix: "a/b/" overlaps stages[0].prefix`},
		{"stage dup", "stages:\n  - name: a\n    prefix: a/\n  - name: a\n    prefix: b/\n", `c.yml:4: stages[1].name: stage "a" is defined twice`},
		{"promote from", "stages:\n  - name: a\n    prefix: a/\n    promote_from: [nope]\n", `c.yml:4: stages[0].promote_from[0]: must name another stage, got "nope"`},
		{"fixed tags", "stages:\n  - name: a\n    prefix: a/\n    fixed_tags: [\"[0-9\"]\n", `c.yml:4: stages[0].fixed_tags[0]: must be a tag pattern`},
		{"users not a list", "auth:\n  users: ci\n", `c.yml:2: auth.users: must be a list`},
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

func TestCheckGrant(t *testing.T) {
	if f, m := CheckGrant(Grant{Repos: "staging/app-*", Actions: []string{"pull", "promote"}}); m != "" {
		t.Fatalf("good grant refused: %s %s", f, m)
	}
	if f, _ := CheckGrant(Grant{Repos: "UPPER/*", Actions: []string{"pull"}}); f != "repos" {
		t.Fatalf("upper-case glob accepted (field %q)", f)
	}
}

// The example documents the defaults: loading it changes nothing.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	cfg, err := Load("../config.example.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Auth.Users, want.Auth.VerificationKeys, want.Auth.AnonymousPull = []User{}, []string{}, []string{}
	want.Promotion.Webhooks = []Webhook{}
	want.HTTP.TrustedProxies = []string{}
	want.Retention.Rules = []RetentionRule{}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("example:  %+v\ndefaults: %+v", cfg, want)
	}
}
