package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/integration/internal/harness"
)

// The auth tests run against Slipway's token service with the real docker
// daemon (and raw HTTP where a client cannot say what it sent). The
// registry is the harness's: users admin (admin) and ci (grants on it/*,
// conformance/*, staging/*, production/*), the default stages (staging/,
// and production/, immutable).

// imageFile is a file of random bytes at path in a built image.
type imageFile struct {
	path string // in the image, like "/data.bin"
	size int64
}

// dataFile is the one 64 KiB layer of the images most tests build.
var dataFile = imageFile{"/data.bin", 64 << 10}

// buildScratchImage builds a FROM scratch image tagged ref
// (tools.BuildScratchImage: one layer per file, in order) and returns its
// image ID.
func buildScratchImage(t *testing.T, tools *harness.Tools, ref string, files ...imageFile) string {
	t.Helper()
	hf := make([]harness.ImageFile, len(files))
	for i, f := range files {
		hf[i] = harness.ImageFile{Path: f.path, Size: f.size}
	}
	return tools.BuildScratchImage(ref, hf...)
}

// dockerTag tags src as dst and untags dst when the test ends.
func dockerTag(t *testing.T, tools *harness.Tools, src, dst string) {
	t.Helper()
	tools.Run("docker", "tag", src, dst)
	t.Cleanup(func() { _, _ = tools.Exec(harness.Cmd{Args: []string{"docker", "image", "rm", "-f", dst}}) })
}

// dockerAuth is one entry of config.json's "auths".
type dockerAuth struct {
	Auth          string `json:"auth"`
	IdentityToken string `json:"identitytoken"`
	Password      string `json:"password"`
}

// dockerConfig reads $DOCKER_CONFIG/config.json: the raw file and its auths.
func dockerConfig(t *testing.T, tools *harness.Tools) (string, map[string]dockerAuth) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(tools.DockerConfig, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths      map[string]dockerAuth `json:"auths"`
		CredsStore string                `json:"credsStore"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("config.json: %v\n%s", err, raw)
	}
	if cfg.CredsStore != "" {
		t.Fatalf("config.json names a credential store %q: the test expects docker's file store", cfg.CredsStore)
	}
	return string(raw), cfg.Auths
}

// requireNoSecret fails if the docker config holds secret in any form
// docker could write it in.
func requireNoSecret(t *testing.T, raw, username, secret string) {
	t.Helper()
	for what, form := range map[string]string{
		"the password":                    secret,
		"base64(user:password)":           base64.StdEncoding.EncodeToString([]byte(username + ":" + secret)),
		"base64(password)":                base64.StdEncoding.EncodeToString([]byte(secret)),
		"base64(user:password), unpadded": strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(username+":"+secret)), "="),
	} {
		if strings.Contains(raw, form) {
			t.Errorf("config.json contains %s", what)
		}
	}
}

// requireRefreshToken checks that an identity token is one of Slipway's
// refresh tokens (a JWT of type refresh+jwt for sub), unverified.
func requireRefreshToken(t *testing.T, tok, sub string) {
	t.Helper()
	var claims jwt.RegisteredClaims
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, &claims)
	if err != nil {
		t.Fatalf("identitytoken is not a JWT: %v", err)
	}
	if typ, _ := parsed.Header["typ"].(string); typ != "refresh+jwt" || claims.Subject != sub {
		t.Errorf("identitytoken: typ %v, sub %q; want a refresh+jwt for %q", parsed.Header["typ"], claims.Subject, sub)
	}
}

// apiCall sends a request to Slipway's /api/ with Basic credentials and
// returns the status and body.
func apiCall(t *testing.T, reg *harness.Registry, c harness.Credentials, method, path string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, reg.URL()+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(c.Username, c.Password)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// createRobot creates a robot through the API as an admin and returns its
// credentials (robot$name and the secret, shown only this once).
func createRobot(t *testing.T, reg *harness.Registry, tools *harness.Tools, name string, grants []harness.Grant) harness.Credentials {
	t.Helper()
	st, body := apiCall(t, reg, reg.Admin(), http.MethodPost, "/api/v1/robots", map[string]any{
		"name": name, "description": "integration test robot", "grants": grants,
	})
	if st != http.StatusCreated {
		t.Fatalf("POST /api/v1/robots as admin: %d %s", st, body)
	}
	var created struct {
		Name, Login, Secret string
		Grants              []harness.Grant
	}
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	if created.Login != "robot$"+name || created.Secret == "" || len(created.Grants) != len(grants) {
		t.Fatalf("created robot: %s", body)
	}
	tools.Redact(created.Secret)
	return harness.Credentials{Username: created.Login, Password: created.Secret}
}

// TestAuthDockerLogin: `docker login` stores a refresh token (identitytoken)
// in config.json, never the password; push, rmi and pull work with it;
// after `docker logout` a pull is refused. Before the login, a push is
// refused too.
func TestAuthDockerLogin(t *testing.T) {
	harness.SlipwayBinary(t)
	reg := harness.Start(t)
	tools := harness.NewTools(t)
	tools.RequireDocker()
	user := reg.User()
	ref := reg.Ref("staging/app:1")
	imageID := buildScratchImage(t, tools, ref, dataFile)

	out, err := tools.Exec(harness.Cmd{Args: []string{"docker", "push", ref}})
	if err == nil {
		t.Fatalf("docker push without logging in succeeded:\n%s", out)
	}
	if !strings.Contains(out, "unauthorized") && !strings.Contains(out, "denied") {
		t.Errorf("docker push without logging in: want unauthorized/denied, got:\n%s", out)
	}
	t.Logf("docker push without logging in: %s", lastLine(out))

	if out := tools.DockerLogin(reg.Host, user); !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login: %s", out)
	}
	raw, auths := dockerConfig(t, tools)
	entry, ok := auths[reg.Host]
	if !ok {
		t.Fatalf("config.json has no entry for %s:\n%s", reg.Host, raw)
	}
	requireNoSecret(t, raw, user.Username, user.Password)
	if entry.IdentityToken == "" {
		t.Fatalf("config.json stores no identitytoken for %s (docker keeps the password instead?)", reg.Host)
	}
	requireRefreshToken(t, entry.IdentityToken, user.Username)
	if dec, _ := base64.StdEncoding.DecodeString(entry.Auth); entry.Auth != "" && string(dec) != user.Username+":" {
		t.Errorf(`config.json "auth" decodes to %q, want %q (the name, no password)`, dec, user.Username+":")
	}
	if entry.Password != "" {
		t.Error(`config.json has a "password"`)
	}
	dec, _ := base64.StdEncoding.DecodeString(entry.Auth)
	t.Logf(`config.json for %s: "auth" decodes to %q, "identitytoken" is a %d-byte refresh+jwt; no password in any form`, reg.Host, dec, len(entry.IdentityToken))

	pushOut := tools.Run("docker", "push", ref)
	pushDigest := firstMatch(t, regexp.MustCompile(`digest: (sha256:[0-9a-f]{64}) size: \d+`), pushOut, "pushed digest")
	tools.Run("docker", "rmi", ref)
	pullOut := tools.Run("docker", "pull", ref)
	if d := firstMatch(t, regexp.MustCompile(`Digest: (sha256:[0-9a-f]{64})`), pullOut, "pulled digest"); d != pushDigest {
		t.Errorf("docker pull digest %s, pushed %s", d, pushDigest)
	}
	if got := strings.TrimSpace(tools.Run("docker", "image", "inspect", "-f", "{{.Id}}", ref)); got != imageID {
		t.Errorf("pulled image ID %s, built %s", got, imageID)
	}

	tools.Run("docker", "logout", reg.Host)
	if raw, auths := dockerConfig(t, tools); auths[reg.Host] != (dockerAuth{}) {
		t.Fatalf("config.json still has an entry for %s after docker logout:\n%s", reg.Host, raw)
	}
	tools.Run("docker", "rmi", ref)
	out, err = tools.Exec(harness.Cmd{Args: []string{"docker", "pull", ref}})
	if err == nil {
		t.Fatalf("docker pull after docker logout succeeded:\n%s", out)
	}
	// docker: "pull access denied for 127.0.0.1:PORT/staging/app, repository
	// does not exist or may require 'docker login'"
	if !strings.Contains(out, "pull access denied") && !strings.Contains(out, "unauthorized") {
		t.Errorf("docker pull after logout: want \"pull access denied\" or \"unauthorized\", got:\n%s", out)
	}
	t.Logf("docker pull after logout: %s", lastLine(out))
}

// TestAuthImmutableProduction: `docker push` to production/ is refused
// with "denied" for every account: the admin, ci (whose grant on
// production/* names push) and a robot granted push there. Nothing
// reaches the stage.
func TestAuthImmutableProduction(t *testing.T) {
	harness.SlipwayBinary(t)
	reg := harness.Start(t)
	tools := harness.NewTools(t)
	tools.RequireDocker()
	robot := createRobot(t, reg, tools, "prod-pusher", []harness.Grant{{Repos: "production/*", Actions: []string{"pull", "push", "delete"}}})

	ref := reg.Ref("production/app:1")
	buildScratchImage(t, tools, ref, dataFile)
	for _, acct := range []harness.Credentials{reg.Admin(), reg.User(), robot} {
		t.Run(strings.ReplaceAll(acct.Username, "$", "_"), func(t *testing.T) {
			tools.DockerLogin(reg.Host, acct)
			defer tools.Run("docker", "logout", reg.Host)
			out, err := tools.Exec(harness.Cmd{Args: []string{"docker", "push", ref}})
			if err == nil {
				t.Fatalf("docker push %s as %s succeeded:\n%s", ref, acct.Username, out)
			}
			if !strings.Contains(out, "denied") {
				t.Errorf("docker push %s as %s: no \"denied\" in:\n%s", ref, acct.Username, out)
			}
			if !strings.Contains(out, `immutable stage "production"`) {
				t.Errorf("docker push %s as %s: the error does not name the immutable stage:\n%s", ref, acct.Username, out)
			}
			t.Logf("docker push as %s: %s", acct.Username, lastLine(out))
		})
	}
	// Nothing was written there: the repository does not exist.
	resp, err := harness.NewClient(reg.Admin()).Get(reg.URL() + "/v2/production/app/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("production/app after the refused pushes: tags/list %s %s, want 404", resp.Status, body)
	}
}

// refreshGrant is an OAuth2 refresh_token grant at /auth/token, as docker
// uses the identitytoken; it returns the status and body.
func refreshGrant(t *testing.T, reg *harness.Registry, refresh, scope string) (int, []byte) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "service": {"slipway"}, "client_id": {"slipway-it"}, "scope": {scope}}
	resp, err := http.PostForm(reg.URL()+"/auth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestAuthRobot: an admin creates a CI robot through the API (only an
// admin may); the robot logs in with docker as robot$<name>, pushes to
// staging/*, is denied outside its grants; once revoked (DELETE) its
// stored refresh token fails (docker push, and the grant itself: 401) and
// its secret no longer logs in.
func TestAuthRobot(t *testing.T) {
	harness.SlipwayBinary(t)
	reg := harness.Start(t)
	tools := harness.NewTools(t)
	tools.RequireDocker()

	grants := []harness.Grant{{Repos: "staging/*", Actions: []string{"pull", "push"}}}
	if st, body := apiCall(t, reg, reg.User(), http.MethodPost, "/api/v1/robots", map[string]any{"name": "sneaky", "grants": grants}); st != http.StatusForbidden {
		t.Errorf("POST /api/v1/robots as a non-admin: %d %s, want 403", st, body)
	}
	robot := createRobot(t, reg, tools, "ci-bot", grants)
	st, list := apiCall(t, reg, reg.Admin(), http.MethodGet, "/api/v1/robots", nil)
	if st != http.StatusOK || !strings.Contains(string(list), `"login":"robot$ci-bot"`) || strings.Contains(string(list), robot.Password) {
		t.Errorf("GET /api/v1/robots: %d %s (want the robot listed, without its secret)", st, list)
	}

	ref := reg.Ref("staging/bot:1")
	buildScratchImage(t, tools, ref, dataFile)
	tools.DockerLogin(reg.Host, robot)
	raw, auths := dockerConfig(t, tools)
	requireNoSecret(t, raw, robot.Username, robot.Password)
	refresh := auths[reg.Host].IdentityToken
	if refresh == "" {
		t.Fatalf("config.json has no identitytoken for the robot:\n%s", raw)
	}
	requireRefreshToken(t, refresh, robot.Username)
	tools.Run("docker", "push", ref)

	outside := reg.Ref("it/bot:1")
	dockerTag(t, tools, ref, outside)
	if out, err := tools.Exec(harness.Cmd{Args: []string{"docker", "push", outside}}); err == nil || !strings.Contains(out, "denied") {
		t.Errorf("docker push %s (outside the robot's grants): %v, want \"denied\":\n%s", outside, err, out)
	}

	// The refresh token works until the robot is revoked.
	scope := "repository:staging/bot:pull"
	if st, body := refreshGrant(t, reg, refresh, scope); st != http.StatusOK {
		t.Fatalf("refresh_token grant before revocation: %d %s", st, body)
	}
	if st, body := apiCall(t, reg, reg.Admin(), http.MethodDelete, "/api/v1/robots/ci-bot", nil); st != http.StatusNoContent {
		t.Fatalf("DELETE /api/v1/robots/ci-bot: %d %s", st, body)
	}
	if st, _ := apiCall(t, reg, reg.Admin(), http.MethodGet, "/api/v1/robots/ci-bot", nil); st != http.StatusNotFound {
		t.Errorf("GET the revoked robot: %d, want 404", st)
	}

	// docker still holds the identitytoken: the next push uses it, and fails.
	next := reg.Ref("staging/bot:2")
	dockerTag(t, tools, ref, next)
	out, err := tools.Exec(harness.Cmd{Args: []string{"docker", "push", next}})
	if err == nil {
		t.Fatalf("docker push with a revoked robot's refresh token succeeded:\n%s", out)
	}
	t.Logf("docker push after revocation: %s", lastLine(out))
	st, body := refreshGrant(t, reg, refresh, scope)
	if st != http.StatusUnauthorized {
		t.Errorf("refresh_token grant after revocation: %d %s, want 401", st, body)
	}
	var oauth struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &oauth)
	if oauth.Error != "invalid_grant" {
		t.Errorf("refresh_token grant after revocation: OAuth2 error %q, want invalid_grant: %s", oauth.Error, body)
	}
	out, err = tools.Exec(harness.Cmd{Args: []string{"docker", "login", reg.Host, "-u", robot.Username, "--password-stdin"}, Stdin: robot.Password})
	if err == nil {
		t.Fatalf("docker login as the revoked robot succeeded:\n%s", out)
	}
	if !strings.Contains(out, "unauthorized") && !strings.Contains(out, "incorrect username or password") {
		t.Errorf("docker login as the revoked robot: want unauthorized, got:\n%s", out)
	}
	t.Logf("docker login after revocation: %s", lastLine(out))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// v2Get sends GET url with a bearer token (none if "") and returns the
// status and challenge.
func v2Get(t *testing.T, target, tok string) (int, harness.Challenge) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ch, _ := harness.ParseBearerChallenge(resp.Header.Get("WWW-Authenticate"))
	return resp.StatusCode, ch
}

// readSigningKey reads the registry's ES256 signing key (PKCS#8 PEM).
func readSigningKey(t *testing.T, path string) *ecdsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("%s holds a %T, want ECDSA (ES256, the default)", path, k)
	}
	return ec
}

// jwks fetches /auth/jwks.json: kid -> P-256 public key.
func jwks(t *testing.T, reg *harness.Registry) map[string]*ecdsa.PublicKey {
	t.Helper()
	resp, err := http.Get(reg.URL() + "/auth/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ Kty, Crv, X, Y, Kid, Alg string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /auth/jwks.json: %s %v", resp.Status, err)
	}
	out := map[string]*ecdsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "EC" || k.Crv != "P-256" || k.Alg != "ES256" {
			t.Fatalf("JWK %+v: want an ES256 P-256 key", k)
		}
		x, err1 := base64.RawURLEncoding.DecodeString(k.X)
		y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
		if err1 != nil || err2 != nil {
			t.Fatalf("JWK %+v: bad coordinates", k)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			t.Fatalf("JWK %+v: %v", k, err)
		}
		out[k.Kid] = pub
	}
	return out
}

func keysEqual(a, b map[string]*ecdsa.PublicKey) bool {
	if len(a) != len(b) {
		return false
	}
	for kid, k := range a {
		if b[kid] == nil || !b[kid].Equal(k) {
			return false
		}
	}
	return true
}

// forgedClaims are the claims of an access token as Slipway issues them.
type forgedClaims struct {
	jwt.RegisteredClaims
	Access []accessEntry `json:"access"`
}

type accessEntry struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	tok.Header["typ"] = "JWT"
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAuthForgedTokens sends forged and misused tokens to the running
// binary's /v2/: each is 401 (error="invalid_token"; a token for another
// repository: error="insufficient_scope"). A token of a key rotated out
// (restart with a new auth.signing_key, the old key not in
// auth.verification_keys) is 401; with the old key listed, 200 again.
func TestAuthForgedTokens(t *testing.T) {
	harness.SlipwayBinary(t)
	reg := harness.Start(t)
	user := reg.User()
	img := ociImage(t, 1, 1<<10, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err := remote.Write(parseRef(t, reg.Ref("it/forge:1")), img, as(user)); err != nil {
		t.Fatal(err)
	}
	target := reg.URL() + "/v2/it/forge/tags/list"
	real := reg.Token(t, user, "repository:it/forge:pull")
	if st, ch := v2Get(t, target, real); st != http.StatusOK {
		t.Fatalf("issued token: %d %+v, want 200", st, ch)
	}
	var realClaims forgedClaims
	parsed, _, err := jwt.NewParser().ParseUnverified(real, &realClaims)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := parsed.Header["kid"].(string)
	key := readSigningKey(t, reg.SigningKeyPath())
	pub := jwks(t, reg)[kid]
	if pub == nil || !pub.Equal(key.Public()) {
		t.Fatalf("JWKS has no key %q matching %s", kid, reg.SigningKeyPath())
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	jwksBody := func() []byte {
		resp, err := http.Get(reg.URL() + "/auth/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b
	}()

	now := time.Now()
	claims := func(edit func(*forgedClaims)) *forgedClaims {
		c := &forgedClaims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: "slipway", Subject: user.Username, Audience: jwt.ClaimStrings{"slipway"},
				ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
				IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)), ID: "forged",
			},
			Access: []accessEntry{{Type: "repository", Name: "it/forge", Actions: []string{"pull"}}},
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	// The forging itself is sound: made this way with the real key, 200.
	if st, ch := v2Get(t, target, sign(t, jwt.SigningMethodES256, key, kid, claims(nil))); st != http.StatusOK {
		t.Fatalf("control token signed with the real key: %d %+v, want 200", st, ch)
	}

	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	noneKid := func() string { // alg none, with the real kid
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil))
		tok.Header["kid"] = kid
		s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}()
	tampered := func() string { // an issued pull token, its access edited to push
		parts := strings.Split(real, ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		edited := strings.Replace(string(payload), `"actions":["pull"]`, `"actions":["pull","push","delete"]`, 1)
		if edited == string(payload) {
			t.Fatalf("token payload has no pull-only access to edit: %s", payload)
		}
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(edited))
		return strings.Join(parts, ".")
	}()
	var refresh harness.TokenResponse
	{
		req, _ := http.NewRequest(http.MethodGet, reg.URL()+"/auth/token?service=slipway&offline_token=true&scope=repository:it/forge:pull", nil)
		req.SetBasicAuth(user.Username, user.Password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&refresh)
		resp.Body.Close()
		if err != nil || refresh.RefreshToken == "" {
			t.Fatalf("offline token request: %s %v %+v", resp.Status, err, refresh)
		}
	}

	cases := []struct{ name, token string }{
		{"alg none", none},
		{"alg none with the real kid", noneKid},
		{"HS256 keyed with the public key PEM", sign(t, jwt.SigningMethodHS256, pubPEM, kid, claims(nil))},
		{"HS256 keyed with the public key DER", sign(t, jwt.SigningMethodHS256, pubDER, kid, claims(nil))},
		{"HS256 keyed with the JWKS document", sign(t, jwt.SigningMethodHS256, jwksBody, kid, claims(nil))},
		{"expired", sign(t, jwt.SigningMethodES256, key, kid, claims(func(c *forgedClaims) {
			c.IssuedAt, c.NotBefore = jwt.NewNumericDate(now.Add(-10*time.Minute)), jwt.NewNumericDate(now.Add(-10*time.Minute))
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-5 * time.Minute))
		}))},
		{"not yet valid", sign(t, jwt.SigningMethodES256, key, kid, claims(func(c *forgedClaims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) }))},
		{"without expiry", sign(t, jwt.SigningMethodES256, key, kid, claims(func(c *forgedClaims) { c.ExpiresAt = nil }))},
		{"wrong issuer", sign(t, jwt.SigningMethodES256, key, kid, claims(func(c *forgedClaims) { c.Issuer = "evil" }))},
		{"wrong audience", sign(t, jwt.SigningMethodES256, key, kid, claims(func(c *forgedClaims) { c.Audience = jwt.ClaimStrings{"another-registry"} }))},
		{"unknown kid", sign(t, jwt.SigningMethodES256, other, "somebody-elses-key", claims(nil))},
		{"another key under the real kid", sign(t, jwt.SigningMethodES256, other, kid, claims(nil))},
		{"no kid", sign(t, jwt.SigningMethodES256, key, "", claims(nil))},
		{"tampered access", tampered},
		{"refresh token as an access token", refresh.RefreshToken},
		{"garbage", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"},
	}
	for _, tc := range cases {
		st, ch := v2Get(t, target, tc.token)
		if st != http.StatusUnauthorized || ch.Error != "invalid_token" {
			t.Errorf("%s: %d, challenge %+v; want 401 error=invalid_token", tc.name, st, ch)
		}
	}

	// A real token for it/forge, on it/other (which ci may pull): 401
	// insufficient_scope, the challenge naming the scope to ask for.
	if st, ch := v2Get(t, reg.URL()+"/v2/it/other/tags/list", real); st != http.StatusUnauthorized || ch.Error != "insufficient_scope" || ch.Scope != "repository:it/other:pull" {
		t.Errorf("token for it/forge on it/other: %d %+v, want 401 insufficient_scope for repository:it/other:pull", st, ch)
	}
	// And a pull token used to push: the same.
	req, _ := http.NewRequest(http.MethodPost, reg.URL()+"/v2/it/forge/blobs/uploads/", nil)
	req.Header.Set("Authorization", "Bearer "+real)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ch, _ := harness.ParseBearerChallenge(resp.Header.Get("WWW-Authenticate")); resp.StatusCode != http.StatusUnauthorized || ch.Error != "insufficient_scope" || ch.Scope != "repository:it/forge:pull,push" {
		t.Errorf("pull token used to push: %s %+v, want 401 insufficient_scope for repository:it/forge:pull,push", resp.Status, ch)
	}

	t.Run("rotation", func(t *testing.T) {
		oldKey := reg.SigningKeyPath()
		newKey := filepath.Join(t.TempDir(), "token-next.pem")
		// A new signing key (Slipway generates it), the old one dropped.
		reg.SetSigningKey(newKey)
		reg.Restart()
		if st, ch := v2Get(t, target, real); st != http.StatusUnauthorized || ch.Error != "invalid_token" {
			t.Errorf("token of the rotated-out key: %d %+v, want 401 invalid_token", st, ch)
		}
		fresh := reg.Token(t, user, "repository:it/forge:pull")
		if st, ch := v2Get(t, target, fresh); st != http.StatusOK {
			t.Fatalf("token of the new key: %d %+v, want 200", st, ch)
		}
		p, _, _ := jwt.NewParser().ParseUnverified(fresh, &jwt.RegisteredClaims{})
		if p.Header["kid"] == kid {
			t.Fatalf("the new key signs with the old kid %s", kid)
		}
		if keys := jwks(t, reg); len(keys) != 1 || keys[kid] != nil {
			t.Errorf("JWKS after rotating out: %d keys (old kid present: %v), want only the new one", len(keys), keys[kid] != nil)
		}

		// The old key kept for verification: its tokens pass again.
		reg.SetSigningKey(newKey, oldKey)
		reg.Restart()
		if st, ch := v2Get(t, target, real); st != http.StatusOK {
			t.Errorf("token of the old key listed in verification_keys: %d %+v, want 200", st, ch)
		}
		if st, ch := v2Get(t, target, fresh); st != http.StatusOK {
			t.Errorf("token of the new key: %d %+v, want 200", st, ch)
		}
		if keys := jwks(t, reg); len(keys) != 2 || keys[kid] == nil {
			t.Errorf("JWKS with the old key for verification: %d keys (old kid present: %v), want 2", len(keys), keys[kid] != nil)
		}
		// New tokens are signed with the new key only.
		p, _, _ = jwt.NewParser().ParseUnverified(reg.Token(t, user, "repository:it/forge:pull"), &jwt.RegisteredClaims{})
		if p.Header["kid"] == kid {
			t.Error("after the rotation tokens are still signed with the old key")
		}
	})
}

// tokenAttempt is one GET /auth/token with Basic credentials: status,
// Retry-After in seconds (-1 if absent) and body.
func tokenAttempt(t *testing.T, reg *harness.Registry, c harness.Credentials) (int, int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, reg.URL()+"/auth/token?service=slipway&scope=repository:it/x:pull", nil)
	req.SetBasicAuth(c.Username, c.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	ra := -1
	if h := resp.Header.Get("Retry-After"); h != "" {
		if ra, err = strconv.Atoi(h); err != nil {
			t.Errorf("Retry-After %q is not a number of seconds", h)
		}
	}
	return resp.StatusCode, ra, string(b)
}

// TestAuthBruteForce: with auth.lockout {max_failures: 10,
// address_max_failures: 50, window: 3s}, 50 wrong passwords for one
// account are answered 401 ten times, then 429 with Retry-After (1-3 s),
// and the right password is refused too (429, also on /api/), while
// another account still logs in; once the window ends the right password
// works again (docker login). 50 wrong passwords for 50 made-up accounts
// lock the client address out: even the admin's right password is 429,
// until the window ends.
func TestAuthBruteForce(t *testing.T) {
	harness.SlipwayBinary(t)
	const window = 3 * time.Second
	reg := harness.StartOpts(t, harness.Options{Lockout: &harness.Lockout{MaxFailures: 10, AddressMaxFailures: 50, Window: window}})
	tools := harness.NewTools(t)
	tools.RequireDocker()
	user, admin := reg.User(), reg.Admin()
	wrong := harness.Credentials{Username: user.Username, Password: "not-the-password"}

	checkLocked := func(t *testing.T, what string, st, ra int, body string) {
		t.Helper()
		if st != http.StatusTooManyRequests || ra < 1 || ra > int(window/time.Second) || !strings.Contains(body, `"code":"TOOMANYREQUESTS"`) {
			t.Errorf("%s: %d, Retry-After %d, %s; want 429 with Retry-After 1-%d and code TOOMANYREQUESTS", what, st, ra, body, int(window/time.Second))
		}
	}

	t.Run("account", func(t *testing.T) {
		start := time.Now()
		var statuses []int
		for i := range 50 {
			st, ra, body := tokenAttempt(t, reg, wrong)
			statuses = append(statuses, st)
			switch {
			case i < 10 && st != http.StatusUnauthorized:
				t.Errorf("wrong password #%d: %d %s, want 401", i+1, st, body)
			case i >= 10:
				checkLocked(t, fmt.Sprintf("wrong password #%d", i+1), st, ra, body)
			}
		}
		st, ra, body := tokenAttempt(t, reg, user)
		checkLocked(t, "the right password during the lockout", st, ra, body)
		if st, _ := apiCall(t, reg, user, http.MethodGet, "/api/v1/robots", nil); st != http.StatusTooManyRequests {
			t.Errorf("/api/ with the right password during the lockout: %d, want 429", st)
		}
		if st, _, body := tokenAttempt(t, reg, admin); st != http.StatusOK {
			t.Errorf("another account during the lockout: %d %s, want 200 (10 failures from this address, not 50)", st, body)
		}
		if elapsed := time.Since(start); elapsed >= window {
			t.Fatalf("the attempts took %s, longer than the %s window: the lockout was not tested", elapsed, window)
		}
		t.Logf("50 wrong passwords in %s: %d x 401, then 429 (Retry-After %d s)", time.Since(start).Round(time.Millisecond), count(statuses, 401), ra)

		time.Sleep(time.Until(start.Add(window + 200*time.Millisecond)))
		if st, _, body := tokenAttempt(t, reg, user); st != http.StatusOK {
			t.Fatalf("the right password after the window: %d %s, want 200", st, body)
		}
		if out := tools.DockerLogin(reg.Host, user); !strings.Contains(out, "Login Succeeded") {
			t.Errorf("docker login after the window: %s", out)
		}
	})

	t.Run("address", func(t *testing.T) {
		start := time.Now()
		for i := range 50 {
			c := harness.Credentials{Username: fmt.Sprintf("nobody-%d", i), Password: "guess"}
			if st, _, body := tokenAttempt(t, reg, c); st != http.StatusUnauthorized {
				t.Errorf("unknown account #%d: %d %s, want 401", i+1, st, body)
			}
		}
		st, ra, body := tokenAttempt(t, reg, admin)
		checkLocked(t, "the admin's right password from the locked-out address", st, ra, body)
		if elapsed := time.Since(start); elapsed >= window {
			t.Fatalf("the attempts took %s, longer than the %s window: the lockout was not tested", elapsed, window)
		}
		time.Sleep(time.Until(start.Add(window + 200*time.Millisecond)))
		if st, _, body := tokenAttempt(t, reg, admin); st != http.StatusOK {
			t.Errorf("the admin's right password after the window: %d %s, want 200", st, body)
		}
	})
}

func count(xs []int, x int) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}
