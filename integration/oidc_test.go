package integration

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/slipway/slipway/integration/internal/harness"
)

// ciIssuer is an OpenID issuer on loopback shaped like GitHub Actions':
// discovery and a JWKS of one RSA key, and ID tokens for jobs.
type ciIssuer struct {
	url string
	key *rsa.PrivateKey
	kid string
}

func newCIIssuer(t *testing.T) *ciIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &ciIssuer{key: key, kid: "ci-key-1"}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss.url, "jwks_uri": iss.url + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		b64 := base64.RawURLEncoding.EncodeToString
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": iss.kid,
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: mux}}
	srv.Start()
	t.Cleanup(srv.Close)
	iss.url = srv.URL
	return iss
}

// token signs a job's ID token: repository and ref as GitHub sets them,
// expiring after life (negative: already expired).
func (iss *ciIssuer) token(t *testing.T, aud, repository, ref string, life time.Duration) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": iss.url, "aud": aud, "sub": "repo:" + repository + ":ref:" + ref,
		"repository": repository, "ref": ref, "workflow": "release",
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(life).Unix(),
	})
	tok.Header["kid"] = iss.kid
	s, err := tok.SignedString(iss.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOIDCDocker: a CI job's ID token as the password of `docker login -u
// oidc`: a token the trust rule matches logs in and pushes where the rule's
// grant (with the {repository} claim substituted) allows, and nowhere else;
// tokens of another repository, for another audience or expired are
// refused at login with a message that says why.
func TestOIDCDocker(t *testing.T) {
	iss := newCIIssuer(t)
	const aud = "slipway-it"
	reg := harness.StartOpts(t, harness.Options{AuthConfig: fmt.Sprintf(`  oidc:
    trust:
      - name: ci
        issuer: %q
        audience: %q
        claims:
          repository: "acme/*"
        grants:
          - {repos: "staging/{repository}", actions: [pull, push]}
`, iss.url, aud)})
	tools := harness.NewTools(t)
	tools.RequireDocker()

	good := iss.token(t, aud, "acme/api", "refs/heads/main", 5*time.Minute)
	tools.Redact(good)
	tools.DockerLogin(reg.Host, harness.Credentials{Username: "oidc", Password: good})
	src := reg.Ref("staging/acme/api:oidc")
	t.Cleanup(func() { _, _ = tools.Exec(harness.Cmd{Args: []string{"docker", "image", "rm", "-f", src}}) })
	buildScratchImage(t, tools, src, imageFile{"/job.bin", 64 << 10})
	if out := tools.Run("docker", "push", src); !digestRE.MatchString(out) {
		t.Fatalf("docker push with the ID token printed no digest:\n%s", out)
	}
	// The same login may not push outside its grant.
	other := reg.Ref("staging/acme/web:oidc")
	tools.Run("docker", "tag", src, other)
	t.Cleanup(func() { _, _ = tools.Exec(harness.Cmd{Args: []string{"docker", "image", "rm", "-f", other}}) })
	if out, err := tools.Exec(harness.Cmd{Args: []string{"docker", "push", other}}); err == nil {
		t.Fatalf("docker push to staging/acme/web with acme/api's token succeeded:\n%s", out)
	} else if !strings.Contains(strings.ToLower(out), "denied") && !strings.Contains(out, "insufficient") && !strings.Contains(out, "unauthorized") {
		t.Errorf("refused push says neither denied nor unauthorized:\n%s", out)
	}

	for _, c := range []struct {
		name, token, want string
	}{
		{"another repository", iss.token(t, aud, "other/api", "refs/heads/main", 5*time.Minute), "other/api"},
		{"wrong audience", iss.token(t, "someone-else", "acme/api", "refs/heads/main", 5*time.Minute), "audience"},
		{"expired", iss.token(t, aud, "acme/api", "refs/heads/main", -time.Minute), "expired"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tools.Redact(c.token)
			out, err := tools.Exec(harness.Cmd{Args: []string{"docker", "login", reg.Host, "-u", "oidc", "--password-stdin"}, Stdin: c.token})
			if err == nil {
				t.Fatalf("docker login succeeded:\n%s", out)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("docker login's refusal does not say %q:\n%s", c.want, out)
			}
		})
	}
}
