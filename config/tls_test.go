package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/slipway/slipway/internal/testpki"
)

func TestTLSSection(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	cert, key := ca.Server(t, "localhost").Files(t, dir, "server")
	caFile := filepath.Join(dir, "ca.crt")
	testpki.WriteFile(t, caFile, ca.PEM)
	other, _ := ca.Server(t, "localhost").Files(t, dir, "other") // a cert that does not go with key
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsFile := func(lines ...string) string {
		return "http:\n  tls:\n    " + strings.Join(lines, "\n    ") + "\n"
	}
	q := func(k, v string) string { return k + ": \"" + v + "\"" }

	good, err := Parse("config.yml", []byte(tlsFile(q("cert_file", cert), q("key_file", key), q("client_ca_file", caFile))), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (TLS{CertFile: cert, KeyFile: key, ClientCAFile: caFile}); good.HTTP.TLS != want || !good.HTTP.TLS.Enabled() {
		t.Fatalf("http.tls = %+v, want %+v", good.HTTP.TLS, want)
	}
	if Default().HTTP.TLS.Enabled() {
		t.Fatal("TLS is on by default")
	}
	env, err := Parse("config.yml", nil, envMap(map[string]string{"SLIPWAY_HTTP_TLS_CERT_FILE": cert, "SLIPWAY_HTTP_TLS_KEY_FILE": key}))
	if err != nil || env.HTTP.TLS.CertFile != cert || env.HTTP.TLS.KeyFile != key {
		t.Fatalf("from the environment: %+v, %v", env.HTTP.TLS, err)
	}

	for _, tc := range []struct {
		name, file, want string
	}{
		{"cert without key", tlsFile(q("cert_file", cert)), `config.yml:2: http.tls.key_file: must be set when http.tls.cert_file is`},
		{"key without cert", tlsFile(q("key_file", key)), `config.yml:2: http.tls.cert_file: must be set when http.tls.key_file is`},
		{"missing cert", tlsFile(q("cert_file", filepath.Join(dir, "nope.crt")), q("key_file", key)), `config.yml:3: http.tls.cert_file: cannot load the key pair`},
		{"mismatched pair", tlsFile(q("cert_file", other), q("key_file", key)), `http.tls.cert_file: cannot load the key pair with http.tls.key_file: tls: private key does not match public key`},
		{"junk ca", tlsFile(q("cert_file", cert), q("key_file", key), q("client_ca_file", junk)), `config.yml:5: http.tls.client_ca_file: "` + junk + `" holds no PEM certificate`},
		{"folder for a cert", tlsFile(q("cert_file", dir), q("key_file", key)), `http.tls.cert_file: cannot load the key pair with http.tls.key_file: "` + dir + `" is not a regular file`},
		{"device for a ca", tlsFile(q("cert_file", cert), q("key_file", key), q("client_ca_file", "/dev/zero")), `http.tls.client_ca_file: "/dev/zero" is not a regular file`},
		{"line break in a path", tlsFile(q("cert_file", `a\nb`), q("key_file", key)), `http.tls.cert_file: cannot load the key pair with http.tls.key_file: stat a\nb: no such file`},
		{"ca without tls", tlsFile(q("client_ca_file", caFile)), `config.yml:3: http.tls.client_ca_file: needs http.tls.cert_file and key_file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("config.yml", []byte(tc.file), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestTrustedProxies(t *testing.T) {
	cfg, err := Parse("config.yml", []byte("http:\n  trusted_proxies: [\"10.0.0.0/8\", \"192.168.1.7\", \"fd00::/8\", \"10.1.2.3/16\"]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("10.1.0.0/16")}
	if got := cfg.HTTP.TrustedProxyPrefixes(); !reflect.DeepEqual(got, want) {
		t.Fatalf("prefixes %v, want %v", got, want)
	}
	_, err = Parse("config.yml", []byte("http:\n  trusted_proxies:\n    - 10.0.0.0/8\n    - 10.0.0.0/40\n    - proxy.local\n"), nil)
	for _, w := range []string{
		`config.yml:4: http.trusted_proxies[1]: must be a CIDR like "10.0.0.0/8" or an address, got "10.0.0.0/40"`,
		`config.yml:5: http.trusted_proxies[2]: must be a CIDR like "10.0.0.0/8" or an address, got "proxy.local"`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v\nwant it to contain %q", err, w)
		}
	}
}

// A container platform sets the proxies' network in the environment.
func TestTrustedProxiesFromEnv(t *testing.T) {
	cfg, err := Parse("config.yml", []byte("http:\n  trusted_proxies: [\"10.0.0.0/8\"]\n"),
		envMap(map[string]string{"SLIPWAY_HTTP_TRUSTED_PROXIES": " 192.168.0.0/16, 127.0.0.2 ,"}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.HTTP.TrustedProxies, []string{"192.168.0.0/16", "127.0.0.2"}; !slices.Equal(got, want) {
		t.Fatalf("trusted proxies %q, want %q", got, want)
	}
	_, err = Parse("config.yml", nil, envMap(map[string]string{"SLIPWAY_HTTP_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"}))
	if err == nil || !strings.Contains(err.Error(), `http.trusted_proxies[1]: must be a CIDR like "10.0.0.0/8" or an address, got "proxy.local"`) {
		t.Fatalf("bad proxy from env: %v", err)
	}
	_, err = Parse("config.yml", nil, envMap(map[string]string{"SLIPWAY_HTTP_TRUSTED_PROXIES": " , "}))
	if err == nil || !strings.Contains(err.Error(), "env SLIPWAY_HTTP_TRUSTED_PROXIES: http.trusted_proxies: must be a comma-separated list") {
		t.Fatalf("empty list from env: %v", err)
	}
}
