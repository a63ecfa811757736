package config

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParseConfig loads arbitrary YAML, with one arbitrary SLIPWAY_* variable, as
// `slipway serve --config` would. It must never panic; it either refuses
// with located messages, or returns a configuration that validates and
// that, written back as YAML, loads as itself.
func FuzzParseConfig(f *testing.F) {
	example, err := os.ReadFile("../config.example.yml")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct{ yml, env, val string }{
		{string(example), "", ""},
		{string(example), "SLIPWAY_HTTP_PUBLIC_URL", "https://registry.example.com/"},
		{"", "", ""},
		{"http:\n  addr: 127.0.0.1:0\n  secret: 0123456789abcdef\nlog:\n  level: debug\n", "SLIPWAY_LOG_LEVEL", "warn"},
		{"storage:\n  s3:\n    endpoint: http://127.0.0.1:9000\n    bucket: slipway\n    part_size: 16MiB\n    redirect_min_size: \"0\"\n", "SLIPWAY_STORAGE_S3_REDIRECT", "true"},
		{"storage:\n  filesystem:\n    root: /var/lib/slipway\n", "SLIPWAY_STORAGE_S3_BUCKET", "b"},
		{"auth:\n  users:\n    - name: ci\n      password_hash: \"$2a$10$abcdefghijklmnopqrstuu5x1K4XJ1yZ9bT7mV0nVtq3dWx6m8ZnW\"\n      grants:\n        - {repos: \"staging/*\", actions: [pull, push]}\n", "SLIPWAY_AUTH_TOKEN_TTL", "10m"},
		{"stages:\n  - name: dev\n    prefix: dev/\n  - name: prod\n    prefix: prod/\n    promote_from: [dev]\n    immutable: true\n    fixed_tags: [\"v*\", \"[0-9]*\"]\n", "", ""},
		{"base: &b\n  addr: \":5001\"\nhttp:\n  <<: *b\n", "", ""},
		{"http: &h\n  addr: \":5000\"\nlog: *h\n", "", ""},
		{"http:\n  addr: 5000\n---\nlog: {}\n", "SLIPWAY_HTTP_SHUTDOWN_TIMEOUT", "soon"},
		{"uploads:\n  purge_after: 30m\n  purge_interval: -1s\n", "SLIPWAY_UPLOADS_PURGE_AFTER", "48h"},
		{"[1, 2]", "", ""},
		{"http:\n\taddr: x\n", "", ""},
	} {
		f.Add([]byte(s.yml), s.env, s.val)
	}
	f.Fuzz(func(t *testing.T, data []byte, name, value string) {
		env := func(n string) (string, bool) {
			if n == name {
				return value, true
			}
			return "", false
		}
		cfg, err := Parse("fuzz.yml", data, env)
		if err != nil {
			if !reflect.DeepEqual(cfg, Config{}) {
				t.Fatalf("error %v with a configuration", err)
			}
			// Every message says where: the file (with a line when
			// known) or the variable.
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.yml") && !strings.HasPrefix(line, "env "+name+": ") {
					t.Fatalf("message %q names neither the file nor the variable", line)
				}
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("loaded a configuration that does not validate: %v", err)
		}
		// Written back (what an operator copies from a running server's
		// effective configuration), it loads as the same configuration.
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, err := Parse("again.yml", out, env)
		if err != nil {
			t.Fatalf("written back as\n%s\nit does not load: %v", out, err)
		}
		// (Compared as YAML: a nil list and an empty one are the same
		// setting.)
		if out2, err := yaml.Marshal(again); err != nil || string(out2) != string(out) {
			t.Fatalf("written back as\n%s\nit loads as\n%s", out, out2)
		}
	})
}
