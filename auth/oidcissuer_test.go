package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testIssuer is an OpenID provider on 127.0.0.1 as far as ID tokens go:
// discovery and a JWKS, and a signer of GitHub-Actions-shaped tokens. Its
// keys can be rotated and it can be taken down.
type testIssuer struct {
	t   testing.TB
	srv *httptest.Server
	now func() time.Time

	mu         sync.Mutex
	keys       map[string]crypto.Signer // every key it can sign with, by kid
	published  []string                 // the kids its JWKS lists
	signingKID string
	down       bool // answer 503 to everything
	jwksHits   int
	discovered int
}

func newTestIssuer(tb testing.TB, now func() time.Time) *testIssuer {
	tb.Helper()
	is := &testIssuer{t: tb, now: now, keys: map[string]crypto.Signer{}}
	is.srv = httptest.NewServer(http.HandlerFunc(is.serve))
	tb.Cleanup(is.srv.Close)
	is.addKey("rsa-1", true)
	return is
}

func (is *testIssuer) URL() string { return is.srv.URL }

// addKey makes a key (RSA for "rsa-*", P-256 otherwise), publishes it when
// publish is set, and signs with it from now on.
func (is *testIssuer) addKey(kid string, publish bool) {
	is.t.Helper()
	var k crypto.Signer
	var err error
	if len(kid) >= 3 && kid[:3] == "rsa" {
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		is.t.Fatal(err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys[kid] = k
	if publish {
		is.published = append(is.published, kid)
	}
	is.signingKID = kid
}

// rotate publishes only kid (made if new) and signs with it.
func (is *testIssuer) rotate(kid string) {
	is.addKey(kid, false)
	is.mu.Lock()
	is.published = []string{kid}
	is.mu.Unlock()
}

func (is *testIssuer) setDown(down bool) {
	is.mu.Lock()
	is.down = down
	is.mu.Unlock()
}

func (is *testIssuer) hits() (discovery, jwks int) {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.discovered, is.jwksHits
}

func (is *testIssuer) serve(w http.ResponseWriter, r *http.Request) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		is.discovered++
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/keys",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public", "pairwise"},
			"claims_supported":                      []string{"sub", "aud", "exp", "iat", "iss", "repository", "ref"},
		})
	case "/keys":
		is.jwksHits++
		set := JWKS{Keys: []JWK{}}
		for _, kid := range is.published {
			pk, err := newPublicKey(is.keys[kid].Public())
			if err != nil {
				is.t.Error(err)
			}
			j := pk.jwk
			j.Kid = kid
			set.Keys = append(set.Keys, j)
		}
		_ = json.NewEncoder(w).Encode(set)
	default:
		http.NotFound(w, r)
	}
}

// claims are a GitHub Actions ID token's, for a push to main of acme/api,
// valid from now for 5 minutes.
func (is *testIssuer) claims(aud string) jwt.MapClaims {
	now := is.now()
	return jwt.MapClaims{
		"iss": is.srv.URL, "aud": aud, "sub": "repo:acme/api:ref:refs/heads/main",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": rand.Text(),
		"repository": "acme/api", "repository_owner": "acme", "repository_id": "42", "repository_visibility": "private",
		"ref": "refs/heads/main", "ref_type": "branch", "sha": "4f1c2e8d", "workflow": "build",
		"job_workflow_ref": "acme/api/.github/workflows/build.yml@refs/heads/main", "actor": "octocat",
		"run_id": "7001", "run_number": "12", "run_attempt": "1", "event_name": "push", "runner_environment": "github-hosted",
	}
}

// sign signs claims with the current key (or kid, when given).
func (is *testIssuer) sign(c jwt.MapClaims, kid ...string) string {
	is.t.Helper()
	is.mu.Lock()
	use := is.signingKID
	if len(kid) > 0 {
		use = kid[0]
	}
	k := is.keys[use]
	is.mu.Unlock()
	method := jwt.SigningMethod(jwt.SigningMethodES256)
	if _, ok := k.(*rsa.PrivateKey); ok {
		method = jwt.SigningMethodRS256
	}
	tok := jwt.NewWithClaims(method, c)
	tok.Header["kid"] = use
	s, err := tok.SignedString(k)
	if err != nil {
		is.t.Fatal(err)
	}
	return s
}
