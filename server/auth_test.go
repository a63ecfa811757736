package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/slipway/slipway/auth"
)

func TestTokenGETIntersection(t *testing.T) {
	s, _ := newTestServer(t, nil)
	h := s.Handler()
	rec := send(h, http.MethodGet, tokenURL(
		"repository:staging/app:pull,push",
		"repository:production/app:pull,push,delete",
		"repository:shared/lib:pull,push,delete",
		"repository:other/x:pull",
		"registry:catalog:*",
	), "", basic(ciUser, ciPass)...)
	tr := decodeToken(t, rec)
	if tr.ExpiresIn != 300 {
		t.Errorf("expires_in = %d, want 300", tr.ExpiresIn)
	}
	if _, err := time.Parse(time.RFC3339, tr.IssuedAt); err != nil {
		t.Errorf("issued_at %q: %v", tr.IssuedAt, err)
	}
	if tr.RefreshToken != "" {
		t.Error("refresh token without offline_token=true")
	}
	access := accessOf(t, s, tr.Token)
	want := map[string][]string{
		"staging/app":    {"pull", "push"},
		"production/app": {"pull"}, // the grant says push+delete; the immutable stage says no
		"shared/lib":     {"pull"},
		"other/x":        {},
	}
	for name, w := range want {
		if got := actionsFor(access, "repository", name); !reflect.DeepEqual(got, w) {
			t.Errorf("%s: actions %q, want %q", name, got, w)
		}
	}
	if got := actionsFor(access, "registry", "catalog"); len(got) != 0 {
		t.Errorf("catalog granted to a non-admin: %q", got)
	}
	// Empty answers are lists, not null: the Docker token spec's shape.
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tr.Token, ".")[1])
	if !strings.Contains(string(payload), `"name":"other/x","actions":[]`) {
		t.Errorf("payload lacks an empty actions list: %s", payload)
	}
	c, _ := s.auth.Verify(tr.Token)
	if c.Subject != ciUser || c.Issuer != "slipway" || !slices.Equal(c.Audience, []string{"slipway"}) ||
		c.ID == "" || c.ExpiresAt == nil || c.NotBefore == nil || c.IssuedAt == nil {
		t.Errorf("claims %+v", c.RegisteredClaims)
	}

	// The token works for what it grants.
	if rec := pushImage(t, h, tr.Token, "staging/app", "v1"); rec.Code != http.StatusCreated {
		t.Fatalf("push with the token = %d %s", rec.Code, rec.Body)
	}
	if rec := send(h, http.MethodGet, "/v2/staging/app/manifests/v1", "", bearer(tr.Token)...); rec.Code != http.StatusOK {
		t.Fatalf("pull = %d", rec.Code)
	}

	// A malformed scope or another service is a bad request; asking too much never is.
	if rec := send(h, http.MethodGet, tokenURL("repository-only"), "", basic(ciUser, ciPass)...); rec.Code != http.StatusBadRequest {
		t.Errorf("malformed scope = %d", rec.Code)
	}
	if rec := send(h, http.MethodGet, "/auth/token?service=elsewhere", "", basic(ciUser, ciPass)...); rec.Code != http.StatusBadRequest {
		t.Errorf("other service = %d", rec.Code)
	}
}

func TestTokenCatalogAdminOnly(t *testing.T) {
	s, _ := newTestServer(t, nil)
	h := s.Handler()
	admin := token(t, h, adminUser, adminPass, "registry:catalog:*")
	if got := actionsFor(accessOf(t, s, admin), "registry", "catalog"); !slices.Equal(got, []string{"*"}) {
		t.Fatalf("admin catalog actions %q", got)
	}
	if rec := send(h, http.MethodGet, "/v2/_catalog", "", bearer(admin)...); rec.Code != http.StatusOK {
		t.Fatalf("admin catalog = %d %s", rec.Code, rec.Body)
	}
	ci := token(t, h, ciUser, ciPass, "registry:catalog:*")
	rec := send(h, http.MethodGet, "/v2/_catalog", "", bearer(ci)...)
	if code, _ := ociCode(t, rec); rec.Code != http.StatusForbidden || code != "DENIED" {
		t.Fatalf("non-admin catalog = %d %s", rec.Code, rec.Body)
	}
	anon := decodeToken(t, send(h, http.MethodGet, tokenURL("registry:catalog:*"), "")).Token
	rec = send(h, http.MethodGet, "/v2/_catalog", "", bearer(anon)...)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `scope="registry:catalog:*"`) {
		t.Fatalf("anonymous catalog = %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}

func TestAnonymous(t *testing.T) {
	cfg := testConfig(t)
	cfg.Auth.AnonymousPull = []string{"public/*"}
	s, _ := newTestServerWith(t, cfg, nil, auth.Options{})
	h := s.Handler()

	// No credentials: a token all the same, with only what anyone may do.
	tr := decodeToken(t, send(h, http.MethodGet, tokenURL("repository:public/app:pull,push", "repository:public:pull", "repository:staging/app:pull"), ""))
	access := accessOf(t, s, tr.Token)
	if got := actionsFor(access, "repository", "public/app"); !slices.Equal(got, []string{"pull"}) {
		t.Errorf("anonymous on public/app: %q", got)
	}
	for _, name := range []string{"public", "staging/app"} {
		if got := actionsFor(access, "repository", name); len(got) != 0 {
			t.Errorf("anonymous on %s: %q", name, got)
		}
	}
	c, _ := s.auth.Verify(tr.Token)
	if c.Subject != "" {
		t.Errorf("anonymous token has subject %q", c.Subject)
	}
	if rec := send(h, http.MethodGet, "/v2/", "", bearer(tr.Token)...); rec.Code != http.StatusOK {
		t.Errorf("GET /v2/ with an anonymous token = %d", rec.Code)
	}
	if rec := send(h, http.MethodGet, "/v2/public/app/tags/list", "", bearer(tr.Token)...); rec.Code != http.StatusNotFound {
		t.Errorf("anonymous pull of public/app = %d, want 404 (no such repository yet)", rec.Code)
	}
	rec := send(h, http.MethodGet, "/v2/staging/app/tags/list", "", bearer(tr.Token)...)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("anonymous pull of staging/app = %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	// Logged-in accounts may pull what anyone may.
	ci := token(t, h, ciUser, ciPass, "repository:public/app:pull")
	if got := actionsFor(accessOf(t, s, ci), "repository", "public/app"); !slices.Equal(got, []string{"pull"}) {
		t.Errorf("ci on public/app: %q", got)
	}
}

func TestAnonymousPullOffByDefault(t *testing.T) {
	s, _ := newTestServer(t, nil)
	tr := decodeToken(t, send(s.Handler(), http.MethodGet, tokenURL("repository:library/app:pull"), ""))
	if got := actionsFor(accessOf(t, s, tr.Token), "repository", "library/app"); len(got) != 0 {
		t.Fatalf("anonymous pull granted by default: %q", got)
	}
}

func TestTokenPOST(t *testing.T) {
	s, _ := newTestServer(t, nil)
	h := s.Handler()
	form := url.Values{"grant_type": {"password"}, "username": {ciUser}, "password": {ciPass},
		"service": {"slipway"}, "client_id": {"docker"}, "scope": {"repository:staging/app:pull repository:staging/lib:pull,push"}}
	tr := decodeToken(t, postToken(h, form))
	if tr.RefreshToken != "" {
		t.Error("refresh token without access_type=offline")
	}
	if tr.Scope != "repository:staging/app:pull repository:staging/lib:pull,push" {
		t.Errorf("scope = %q", tr.Scope)
	}
	access := accessOf(t, s, tr.Token)
	if len(access) != 2 || !slices.Equal(actionsFor(access, "repository", "staging/lib"), []string{"pull", "push"}) {
		t.Errorf("access %+v", access)
	}

	form.Set("access_type", "offline")
	tr = decodeToken(t, postToken(h, form))
	if tr.RefreshToken == "" {
		t.Fatal("no refresh token with access_type=offline")
	}
	refresh := tr.RefreshToken

	// The refresh grant, with other scopes: no password needed.
	tr = decodeToken(t, postToken(h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh},
		"service": {"slipway"}, "scope": {"repository:staging/other:push"}}))
	if got := actionsFor(accessOf(t, s, tr.Token), "repository", "staging/other"); !slices.Equal(got, []string{"push"}) {
		t.Errorf("refreshed token actions %q", got)
	}
	if c, _ := s.auth.Verify(tr.Token); c.Subject != ciUser {
		t.Errorf("refreshed token subject %q", c.Subject)
	}

	// GET with offline_token=true also returns one (docker login does this).
	rec := send(h, http.MethodGet, "/auth/token?service=slipway&offline_token=true&client_id=docker", "", basic(ciUser, ciPass)...)
	if decodeToken(t, rec).RefreshToken == "" {
		t.Error("GET offline_token=true without refresh token")
	}

	// Neither kind of token passes for the other.
	if rec := send(h, http.MethodGet, "/v2/", "", bearer(refresh)...); rec.Code != http.StatusUnauthorized {
		t.Errorf("refresh token accepted on /v2/: %d", rec.Code)
	}
	rec = postToken(h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.Token}})
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("access token accepted as refresh token: %d", rec.Code)
	}

	// Errors: OAuth2 fields plus the OCI envelope.
	rec = postToken(h, url.Values{"grant_type": {"password"}, "username": {ciUser}, "password": {"wrong"}})
	var e struct {
		Error  string
		Errors []struct{ Code string }
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	if rec.Code != http.StatusUnauthorized || e.Error != "invalid_grant" || len(e.Errors) != 1 || e.Errors[0].Code != "UNAUTHORIZED" {
		t.Errorf("wrong password = %d %s", rec.Code, rec.Body)
	}
	rec = postToken(h, url.Values{"grant_type": {"client_credentials"}})
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	if rec.Code != http.StatusBadRequest || e.Error != "unsupported_grant_type" {
		t.Errorf("unsupported grant = %d %s", rec.Code, rec.Body)
	}
	if rec := send(h, http.MethodGet, tokenURL(), "", "Authorization", "Bearer nonsense"); rec.Code != http.StatusUnauthorized {
		t.Errorf("GET with a non-Basic Authorization = %d", rec.Code)
	}
}

func TestChallenge(t *testing.T) {
	s, _ := newTestServer(t, nil)
	h := s.Handler()
	const realm = `Bearer realm="http://example.com/auth/token",service="slipway"`
	cases := []struct{ method, path, want string }{
		{http.MethodGet, "/v2/", realm},
		{http.MethodGet, "/v2", realm},
		{http.MethodGet, "/v2/staging/app/manifests/v1", realm + `,scope="repository:staging/app:pull"`},
		{http.MethodHead, "/v2/staging/app/blobs/sha256:" + strings.Repeat("a", 64), realm + `,scope="repository:staging/app:pull"`},
		{http.MethodPost, "/v2/staging/app/blobs/uploads/", realm + `,scope="repository:staging/app:pull,push"`},
		{http.MethodPatch, "/v2/staging/app/blobs/uploads/abc", realm + `,scope="repository:staging/app:pull,push"`},
		{http.MethodPut, "/v2/staging/app/manifests/v1", realm + `,scope="repository:staging/app:pull,push"`},
		{http.MethodDelete, "/v2/staging/app/manifests/sha256:" + strings.Repeat("a", 64), realm + `,scope="repository:staging/app:delete"`},
		{http.MethodDelete, "/v2/staging/app/blobs/uploads/abc", realm + `,scope="repository:staging/app:push"`},
		{http.MethodGet, "/v2/_catalog", realm + `,scope="registry:catalog:*"`},
		{http.MethodGet, "/v2/staging/app/tags/list", realm + `,scope="repository:staging/app:pull"`},
		{http.MethodGet, "/v2/nowhere", realm},
	}
	for _, tc := range cases {
		rec := send(h, tc.method, tc.path, "")
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s %s = %d, want 401", tc.method, tc.path, rec.Code)
			continue
		}
		if got := rec.Header().Get("WWW-Authenticate"); got != tc.want {
			t.Errorf("%s %s: challenge\n%s\nwant\n%s", tc.method, tc.path, got, tc.want)
		}
		if rec.Header().Get("Docker-Distribution-API-Version") != "registry/2.0" {
			t.Errorf("%s %s: no API version header", tc.method, tc.path)
		}
		if tc.method != http.MethodHead {
			if code, _ := ociCode(t, rec); code != "UNAUTHORIZED" {
				t.Errorf("%s %s: code %s", tc.method, tc.path, code)
			}
		}
	}
	// An invalid token says so.
	rec := send(h, http.MethodGet, "/v2/", "", bearer("not.a.token")...)
	if want := realm + `,error="invalid_token"`; rec.Header().Get("WWW-Authenticate") != want {
		t.Errorf("invalid token challenge %q", rec.Header().Get("WWW-Authenticate"))
	}

	// The realm comes from http.public_url when it is set.
	cfg := testConfig(t)
	cfg.HTTP.PublicURL = "https://registry.example.org"
	s2, _ := newTestServerWith(t, cfg, nil, auth.Options{})
	rec = send(s2.Handler(), http.MethodGet, "/v2/", "")
	if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="https://registry.example.org/auth/token",service="slipway"` {
		t.Errorf("public_url realm: %q", got)
	}
}

// signingKeyOf reads a server's signing key (the tests may; clients can't).
func signingKeyOf(t *testing.T, path string) *ecdsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*ecdsa.PrivateKey)
}

func TestV2RejectsForgedTokens(t *testing.T) {
	cfg := testConfig(t)
	clk := newClock()
	s, _ := newTestServerWith(t, cfg, nil, auth.Options{Now: clk.Now})
	h := s.Handler()
	key := signingKeyOf(t, cfg.Auth.SigningKey)
	real := token(t, h, ciUser, ciPass, "repository:staging/app:pull")
	parsed, _, err := jwt.NewParser().ParseUnverified(real, &jwt.RegisteredClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid := parsed.Header["kid"].(string)

	now := clk.Now()
	claims := func(edit func(*auth.Claims)) *auth.Claims {
		c := &auth.Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: "slipway", Subject: ciUser, Audience: jwt.ClaimStrings{"slipway"},
				ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)), NotBefore: jwt.NewNumericDate(now),
				IssuedAt: jwt.NewNumericDate(now), ID: "forged",
			},
			Access: []auth.Access{{Type: "repository", Name: "staging/app", Actions: []string{"pull"}}},
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	const target = "/v2/staging/app/tags/list"

	// The forging itself is sound: a correct token made this way passes.
	if rec := send(h, http.MethodGet, target, "", bearer(forge(t, jwt.SigningMethodES256, key, kid, claims(nil)))...); rec.Code != http.StatusNotFound {
		t.Fatalf("control token = %d %s, want 404 (repository unknown)", rec.Code, rec.Body)
	}

	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tampered := func() string {
		parts := strings.Split(forge(t, jwt.SigningMethodES256, key, kid, claims(nil)), ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		payload = []byte(strings.Replace(string(payload), `"actions":["pull"]`, `"actions":["pull","push","delete"]`, 1))
		parts[1] = base64.RawURLEncoding.EncodeToString(payload)
		return strings.Join(parts, ".")
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	cases := map[string]string{
		"alg none":             none,
		"HS256 with PEM":       forge(t, jwt.SigningMethodHS256, pubPEM, kid, claims(nil)),
		"HS256 with DER":       forge(t, jwt.SigningMethodHS256, pubDER, kid, claims(nil)),
		"expired":              forge(t, jwt.SigningMethodES256, key, kid, claims(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) })),
		"no expiry":            forge(t, jwt.SigningMethodES256, key, kid, claims(func(c *auth.Claims) { c.ExpiresAt = nil })),
		"not yet valid":        forge(t, jwt.SigningMethodES256, key, kid, claims(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) })),
		"issued in the future": forge(t, jwt.SigningMethodES256, key, kid, claims(func(c *auth.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) })),
		"wrong issuer":         forge(t, jwt.SigningMethodES256, key, kid, claims(func(c *auth.Claims) { c.Issuer = "evil" })),
		"wrong audience":       forge(t, jwt.SigningMethodES256, key, kid, claims(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other-registry"} })),
		"no kid":               forge(t, jwt.SigningMethodES256, key, "", claims(nil)),
		"unknown kid":          forge(t, jwt.SigningMethodES256, other, "somebody-elses-key", claims(nil)),
		"other key, our kid":   forge(t, jwt.SigningMethodES256, other, kid, claims(nil)),
		"tampered access":      tampered(),
		"garbage":              "eyJhbGciOiJFUzI1NiJ9.e30.c2ln",
	}
	for name, tok := range cases {
		rec := send(h, http.MethodGet, target, "", bearer(tok)...)
		if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: %d %q, want 401 invalid_token", name, rec.Code, rec.Header().Get("WWW-Authenticate"))
		}
	}

	// Within the 30s leeway an expired token still passes; beyond, not.
	skewed := forge(t, jwt.SigningMethodES256, key, kid, claims(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-10 * time.Second)) }))
	if rec := send(h, http.MethodGet, target, "", bearer(skewed)...); rec.Code != http.StatusNotFound {
		t.Errorf("10s past expiry = %d, want accepted within the leeway", rec.Code)
	}
	clk.Add(6 * time.Minute)
	if rec := send(h, http.MethodGet, target, "", bearer(real)...); rec.Code != http.StatusUnauthorized {
		t.Errorf("issued token after its TTL = %d", rec.Code)
	}
}

func TestTokenForOneRepositoryOnAnother(t *testing.T) {
	s, _ := newTestServer(t, nil)
	h := s.Handler()
	tok := token(t, h, ciUser, ciPass, "repository:staging/a:pull,push")
	if rec := pushImage(t, h, tok, "staging/a", "v1"); rec.Code != http.StatusCreated {
		t.Fatalf("push to staging/a = %d", rec.Code)
	}
	// ci may pull staging/b, but this token does not say so: the client
	// must fetch another, which the challenge tells it.
	rec := send(h, http.MethodGet, "/v2/staging/b/manifests/v1", "", bearer(tok)...)
	ch := rec.Header().Get("WWW-Authenticate")
	if rec.Code != http.StatusUnauthorized || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="repository:staging/b:pull"`) {
		t.Fatalf("token for staging/a on staging/b = %d %q", rec.Code, ch)
	}
	// Push with a pull-only token: same.
	pull := token(t, h, ciUser, ciPass, "repository:staging/a:pull")
	rec = send(h, http.MethodPost, "/v2/staging/a/blobs/uploads/", "", bearer(pull)...)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `scope="repository:staging/a:pull,push",error="insufficient_scope"`) {
		t.Fatalf("push with a pull token = %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	// A repository ci has no grant on at all: denied outright.
	rec = send(h, http.MethodGet, "/v2/other/x/manifests/v1", "", bearer(tok)...)
	if code, msg := ociCode(t, rec); rec.Code != http.StatusForbidden || code != "DENIED" || !strings.Contains(msg, "denied") {
		t.Fatalf("no grant = %d %s", rec.Code, rec.Body)
	}
}

func TestImmutableStageRefusesEveryone(t *testing.T) {
	s, _ := newTestServer(t, nil)
	h := s.Handler()
	for _, acct := range [][2]string{{adminUser, adminPass}, {ciUser, ciPass}} {
		tok := token(t, h, acct[0], acct[1], "repository:production/app:pull,push,delete,promote")
		got := actionsFor(accessOf(t, s, tok), "repository", "production/app")
		if slices.Contains(got, "push") || slices.Contains(got, "delete") || !slices.Contains(got, "pull") {
			t.Errorf("%s: production actions %q", acct[0], got)
		}
		for _, r := range []struct{ method, path string }{
			{http.MethodPost, "/v2/production/app/blobs/uploads/"},
			{http.MethodPut, "/v2/production/app/manifests/v1"},
			{http.MethodDelete, "/v2/production/app/manifests/sha256:" + strings.Repeat("a", 64)},
			{http.MethodDelete, "/v2/production/app/manifests/v1"}, // a tag: refused alike
			{http.MethodDelete, "/v2/production/app/blobs/sha256:" + strings.Repeat("a", 64)},
		} {
			rec := send(h, r.method, r.path, "", bearer(tok)...)
			code, msg := ociCode(t, rec)
			// docker prints "denied: <message>" for this.
			if rec.Code != http.StatusForbidden || code != "DENIED" || !strings.Contains(msg, `immutable stage "production"`) {
				t.Errorf("%s %s %s = %d %s", acct[0], r.method, r.path, rec.Code, rec.Body)
			}
		}
	}
	// Staging, by contrast, takes pushes.
	tok := token(t, h, ciUser, ciPass, "repository:staging/app:pull,push")
	if rec := pushImage(t, h, tok, "staging/app", "v1"); rec.Code != http.StatusCreated {
		t.Fatalf("push to staging = %d %s", rec.Code, rec.Body)
	}
	// With no stages configured, admins may push anywhere.
	cfg := testConfig(t)
	cfg.Stages = nil
	s2, _ := newTestServerWith(t, cfg, nil, auth.Options{})
	adm := token(t, s2.Handler(), adminUser, adminPass, "repository:production/app:pull,push")
	if rec := pushImage(t, s2.Handler(), adm, "production/app", "v1"); rec.Code != http.StatusCreated {
		t.Fatalf("push without stages = %d %s", rec.Code, rec.Body)
	}
}

func TestMountNeedsPullOnSource(t *testing.T) {
	s, _ := newTestServer(t, nil)
	h := s.Handler()
	admin := token(t, h, adminUser, adminPass, "repository:secret/src:pull,push", "repository:shared/src:pull,push")
	hidden := pushBlob(t, h, admin, "secret/src", "hidden layer")
	visible := pushBlob(t, h, admin, "shared/src", "shared layer")

	tok := token(t, h, ciUser, ciPass, "repository:staging/app:pull,push", "repository:secret/src:pull", "repository:shared/src:pull")
	// No pull on secret/src: a plain upload session instead of a mount.
	rec := send(h, http.MethodPost, "/v2/staging/app/blobs/uploads/?mount="+hidden+"&from=secret/src", "", bearer(tok)...)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("mount without pull on the source = %d %s, want 202", rec.Code, rec.Body)
	}
	if rec := send(h, http.MethodHead, "/v2/staging/app/blobs/"+hidden, "", bearer(tok)...); rec.Code != http.StatusNotFound {
		t.Fatalf("hidden blob reachable through staging/app: %d", rec.Code)
	}
	// Pull on shared/src: mounted.
	rec = send(h, http.MethodPost, "/v2/staging/app/blobs/uploads/?mount="+visible+"&from=shared/src", "", bearer(tok)...)
	if rec.Code != http.StatusCreated {
		t.Fatalf("mount with pull on the source = %d %s, want 201", rec.Code, rec.Body)
	}

	// A token for staging/other alone (as a client caching one token per
	// repository holds), where ci may pull shared/src: 401
	// insufficient_scope naming both scopes, then the token the challenge
	// asks for mounts.
	narrow := token(t, h, ciUser, ciPass, "repository:staging/other:pull,push")
	mount := "/v2/staging/other/blobs/uploads/?mount=" + visible + "&from=shared/src"
	rec = send(h, http.MethodPost, mount, "", bearer(narrow)...)
	ch := rec.Header().Get("WWW-Authenticate")
	const both = "repository:staging/other:pull,push repository:shared/src:pull"
	if rec.Code != http.StatusUnauthorized || !strings.Contains(ch, `scope="`+both+`"`) || !strings.Contains(ch, `error="insufficient_scope"`) {
		t.Fatalf("mount with a token lacking pull on the source = %d %q, want 401 insufficient_scope for %q", rec.Code, ch, both)
	}
	if rec := send(h, http.MethodPost, mount, "", bearer(token(t, h, ciUser, ciPass, both))...); rec.Code != http.StatusCreated {
		t.Fatalf("mount with the token the challenge asked for = %d %s, want 201", rec.Code, rec.Body)
	}
}

func TestKeyRotation(t *testing.T) {
	old := testConfig(t)
	s1, _ := newTestServerWith(t, old, nil, auth.Options{})
	tok := token(t, s1.Handler(), ciUser, ciPass, "repository:staging/app:pull")
	var oldSet auth.JWKS
	if rec := send(s1.Handler(), http.MethodGet, "/auth/jwks.json", ""); json.Unmarshal(rec.Body.Bytes(), &oldSet) != nil || len(oldSet.Keys) != 1 {
		t.Fatalf("jwks before rotation = %s", rec.Body)
	}
	oldKid := oldSet.Keys[0].Kid

	// A new signing key, the old one kept for verification.
	next := old
	next.Auth.SigningKey = old.Auth.SigningKey + ".next"
	next.Auth.VerificationKeys = []string{old.Auth.SigningKey}
	s2, _ := newTestServerWith(t, next, nil, auth.Options{})
	if rec := send(s2.Handler(), http.MethodGet, "/v2/staging/app/tags/list", "", bearer(tok)...); rec.Code != http.StatusNotFound {
		t.Fatalf("old token on the rotated server = %d %s, want 404", rec.Code, rec.Body)
	}
	rec := send(s2.Handler(), http.MethodGet, "/auth/jwks.json", "")
	var set auth.JWKS
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("jwks = %s", rec.Body)
	}
	if set.Keys[1].Kid != oldKid || set.Keys[0].Kid == oldKid {
		t.Fatalf("jwks kids %q, %q; old %q", set.Keys[0].Kid, set.Keys[1].Kid, oldKid)
	}
	newTok := token(t, s2.Handler(), ciUser, ciPass, "repository:staging/app:pull")
	parsed, _, _ := jwt.NewParser().ParseUnverified(newTok, &jwt.RegisteredClaims{})
	if parsed.Header["kid"] != set.Keys[0].Kid {
		t.Fatalf("new tokens signed with kid %v", parsed.Header["kid"])
	}

	// The old key rotated out: its tokens stop.
	gone := next
	gone.Auth.VerificationKeys = nil
	s3, _ := newTestServerWith(t, gone, nil, auth.Options{})
	rec = send(s3.Handler(), http.MethodGet, "/v2/staging/app/tags/list", "", bearer(tok)...)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("token of a rotated-out key = %d", rec.Code)
	}
}

func TestJWKSMatchesTokens(t *testing.T) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Auth.Algorithm = alg
			if alg == "RS256" {
				writeRSAKey(t, cfg.Auth.SigningKey) // generating 3072 bits takes long under -race
			}
			s, _ := newTestServerWith(t, cfg, nil, auth.Options{})
			rec := send(s.Handler(), http.MethodGet, "/auth/jwks.json", "")
			var set auth.JWKS
			if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil || len(set.Keys) != 1 {
				t.Fatalf("jwks = %s", rec.Body)
			}
			k := set.Keys[0]
			if k.Alg != alg || k.Use != "sig" || k.Kid != auth.Thumbprint(k) {
				t.Fatalf("jwk %+v", k)
			}
			tok := token(t, s.Handler(), ciUser, ciPass, "repository:staging/app:pull")
			parsed, _, _ := jwt.NewParser().ParseUnverified(tok, &jwt.RegisteredClaims{})
			if parsed.Header["kid"] != k.Kid || parsed.Method.Alg() != alg {
				t.Fatalf("token header %v", parsed.Header)
			}
			if rec := send(s.Handler(), http.MethodGet, "/v2/staging/app/tags/list", "", bearer(tok)...); rec.Code != http.StatusNotFound {
				t.Fatalf("%s token on /v2/ = %d", alg, rec.Code)
			}
		})
	}
}

func TestGeneratedKeyFile(t *testing.T) {
	cfg := testConfig(t)
	newTestServerWith(t, cfg, nil, auth.Options{})
	fi, err := os.Stat(cfg.Auth.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(cfg.Auth.SigningKey)
	if block, _ := pem.Decode(b); block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("key file is not PKCS#8 PEM: %q", b)
	}
	// A key of another algorithm than configured is refused, not replaced.
	cfg.Auth.Algorithm = "EdDSA"
	if _, err := newServer(cfg, NewLogger(&logBuffer{}, 0), nil); err == nil || !strings.Contains(err.Error(), "ES256") {
		t.Fatalf("mismatched key: %v", err)
	}
}
