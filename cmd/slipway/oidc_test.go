package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/promote"
)

// SLIPWAY_ID_TOKEN is sent as a Bearer token, instead of user and password.
func TestPromoteWithIDToken(t *testing.T) {
	rec := promote.Record{ID: "7fffffffffffffff-01234567", Source: "staging/app:v1", Target: "production/app:v1",
		Digest: digest.Digest("sha256:" + strings.Repeat("a", 64)), Outcome: promote.OutcomePromoted, Actor: "oidc:ci:x", At: time.Now()}
	url, req, _ := fakeAPI(t, http.StatusCreated, rec)
	env := envOf(map[string]string{"SLIPWAY_URL": url, "SLIPWAY_USER": "robot$ci", "SLIPWAY_PASSWORD": "s3cret", "SLIPWAY_ID_TOKEN": "eyJ.id.token\n"})
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"promote", "staging/app:v1", "--to", "production"}, nil, &out, &errb, env); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := req.Header.Get("Authorization"); got != "Bearer eyJ.id.token" {
		t.Fatalf("Authorization %q, want the ID token as Bearer", got)
	}
}

// ciIssuer is a GitHub-Actions-like OIDC issuer on loopback: discovery,
// its key set, and a signer.
type ciIssuer struct {
	srv *httptest.Server
	key *ecdsa.PrivateKey
}

func newCIIssuer(t *testing.T) *ciIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is := &ciIssuer{key: key}
	b64 := base64.RawURLEncoding.EncodeToString
	raw, _ := key.PublicKey.Bytes()
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]any{"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/jwks",
				"id_token_signing_alg_values_supported": []string{"ES256"}})
		case "/jwks":
			_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{
				{"kty": "EC", "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:]), "kid": "k1", "alg": "ES256", "use": "sig"}}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(is.srv.Close)
	return is
}

func (is *ciIssuer) token(t *testing.T, ref string) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": is.srv.URL, "aud": "slipway-e2e", "sub": "repo:acme/api:ref:" + ref, "repository": "acme/api", "ref": ref,
		"workflow": "release", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(is.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// `slipway promote` in a CI job: with SLIPWAY_ID_TOKEN and a rule that
// allows promote only from version tags, a tag build promotes (the ledger
// names the workload) and a main build is refused.
func TestPromoteWithIDTokenEndToEnd(t *testing.T) {
	is := newCIIssuer(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "data")
	pushTags(t, root, "staging/acme/api", "v1.0.0")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf(`http:
  addr: %s
  drain_delay: 0s
storage:
  filesystem:
    root: %s
auth:
  oidc:
    trust:
      - name: release
        issuer: %s
        audience: slipway-e2e
        claims: {repository: acme/api, ref: "refs/tags/v*"}
        grants:
          - {repos: "staging/{repository}", actions: [pull, promote]}
          - {repos: "production/{repository}", actions: [promote]}
      - name: build
        issuer: %s
        audience: slipway-e2e
        claims: {repository: acme/api, ref: refs/heads/main}
        grants: [{repos: "staging/{repository}", actions: [pull, push]}]
`, addr, root, is.srv.URL, is.srv.URL)
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	var serveErr bytes.Buffer
	go func() {
		var out bytes.Buffer
		done <- run(ctx, []string{"serve", "--config", path}, nil, &out, &serveErr, envOf(map[string]string{"SLIPWAY_ADMIN_PASSWORD": "admin-password-1"}))
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exit %d", code)
		}
	}()
	base := "http://" + addr
	for i := 0; ; i++ {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if i == 200 {
			t.Fatal("the server did not start")
		}
		time.Sleep(25 * time.Millisecond)
	}

	promoteAs := func(ref string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"promote", "staging/acme/api:v1.0.0", "--to", "production", "--json"}, nil, &out, &errb,
			envOf(map[string]string{"SLIPWAY_URL": base, "SLIPWAY_ID_TOKEN": is.token(t, ref)}))
		return code, out.String(), errb.String()
	}
	code, _, errb := promoteAs("refs/heads/main")
	if code != 1 || !strings.Contains(errb, "refused (403") || !strings.Contains(errb, "promote") {
		t.Fatalf("from main: exit %d, %q", code, errb)
	}
	code, out, errb := promoteAs("refs/tags/v1.0.0")
	if code != 0 {
		t.Fatalf("from a tag: exit %d, %q", code, errb)
	}
	var rec promote.Record
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	host := strings.TrimPrefix(is.srv.URL, "http://")
	if rec.Target != "production/acme/api:v1.0.0" || rec.Actor != "oidc:"+host+":repo:acme/api:ref:refs/tags/v1.0.0 (repository=acme/api ref=refs/tags/v1.0.0 workflow=release)" {
		t.Fatalf("record %+v", rec)
	}
}
