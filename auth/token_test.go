package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestIssueVerify(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	s := newTestService(t, func(o *Options) { o.Now = clk.Now })
	access := []Access{{Type: TypeRepository, Name: "staging/app", Actions: []string{"pull"}}}
	tok, issued, err := s.tokens.issue("ci", access)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "ci" || c.Issuer != "slipway" || !c.Allows(TypeRepository, "staging/app", "pull") || c.Allows(TypeRepository, "staging/app", "push") ||
		!c.IssuedAt.Time.Equal(issued) || !c.ExpiresAt.Time.Equal(issued.Add(5*time.Minute)) || c.ID == "" {
		t.Fatalf("claims %+v", c)
	}
	tok2, _, _ := s.tokens.issue("ci", access)
	c2, _ := s.Verify(tok2)
	if c2.ID == c.ID {
		t.Fatal("jti repeats")
	}
	// Expiry with the 30s leeway.
	clk.Add(5*time.Minute + 20*time.Second)
	if _, err := s.Verify(tok); err != nil {
		t.Fatalf("20s past expiry, within the leeway: %v", err)
	}
	clk.Add(20 * time.Second)
	if _, err := s.Verify(tok); err == nil {
		t.Fatal("40s past expiry accepted")
	}
}

func TestRefreshAndAccessAreDistinct(t *testing.T) {
	s := newTestService(t, nil)
	access, _, _ := s.tokens.issue("ci", nil)
	refresh, err := s.tokens.issueRefresh("ci", "bind")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(refresh); err == nil {
		t.Fatal("refresh token verified as an access token")
	}
	if _, err := s.tokens.verifyRefresh(access); err == nil {
		t.Fatal("access token verified as a refresh token")
	}
	c, err := s.tokens.verifyRefresh(refresh)
	if err != nil || c.Subject != "ci" || c.Bind != "bind" {
		t.Fatalf("refresh claims %+v %v", c, err)
	}
	// Same type, but another audience: still refused.
	parsed, _, _ := jwt.NewParser().ParseUnverified(refresh, &jwt.RegisteredClaims{})
	other := jwt.NewWithClaims(jwt.SigningMethodES256, refreshClaims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: "slipway", Subject: "ci", Audience: jwt.ClaimStrings{"slipway"}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
	}, Bind: "bind"})
	other.Header["kid"], other.Header["typ"] = parsed.Header["kid"], refreshType
	signed, _ := other.SignedString(s.keys.signing.private)
	if _, err := s.tokens.verifyRefresh(signed); err == nil {
		t.Fatal("refresh token with the access audience accepted")
	}
}

// Only the configured algorithms verify: an HS256 token "signed" with the
// public key is refused however its header is dressed.
func TestVerifyRefusesAlgorithmConfusion(t *testing.T) {
	s := newTestService(t, nil)
	pub, _ := x509.MarshalPKIXPublicKey(s.keys.signing.key)
	for _, kid := range []string{s.keys.signing.kid, ""} {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, &Claims{RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "slipway", Audience: jwt.ClaimStrings{"slipway"}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
		}})
		tok.Header["kid"] = kid
		signed, _ := tok.SignedString(pub)
		if _, err := s.Verify(signed); err == nil {
			t.Fatalf("HS256 token with kid %q accepted", kid)
		}
	}
	// An ES256 key named by an EdDSA verification key's kid.
	ed := newTestService(t, func(o *Options) { o.Auth.Algorithm = "EdDSA" })
	s.keys = newKeySet(s.keys.signing, []publicKey{ed.keys.signing.publicKey})
	s.tokens = newTokens(s.keys, "slipway", "slipway", time.Minute, time.Hour, time.Now)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, &Claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: "slipway", Audience: jwt.ClaimStrings{"slipway"}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
	}})
	tok.Header["kid"] = ed.keys.signing.kid
	signed, _ := tok.SignedString(other)
	if _, err := s.Verify(signed); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("ES256 token under an EdDSA kid: %v", err)
	}
}

func TestV2Middleware(t *testing.T) {
	s := newTestService(t, nil)
	h := engine(s)
	tok, _, _ := s.tokens.issue("ci", []Access{{Type: TypeRepository, Name: "staging/app", Actions: []string{"pull", "push"}}})
	bearer := []string{"Authorization", "Bearer " + tok}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/v2/", 200},
		{http.MethodGet, "/v2/staging/app/manifests/v1", 200},
		{http.MethodPut, "/v2/staging/app/manifests/v1", 200},
		{http.MethodDelete, "/v2/staging/app/manifests/v1", 403}, // ci has no delete grant
		{http.MethodDelete, "/v2/staging/app/blobs/uploads/x", 200},
		{http.MethodGet, "/v2/staging/other/manifests/v1", 401},
		{http.MethodGet, "/v2/production/app/manifests/v1", 403},
		{http.MethodGet, "/v2/_catalog", 403},
		{http.MethodGet, "/v2/Invalid_Name/manifests/v1", 200}, // the registry answers NAME_INVALID
	} {
		if rec := serve(h, tc.method, tc.path, "", bearer...); rec.Code != tc.want {
			t.Errorf("%s %s = %d, want %d (%s)", tc.method, tc.path, rec.Code, tc.want, rec.Body)
		}
	}
	// Lower-case scheme works too; Basic on /v2/ is a challenge.
	if rec := serve(h, http.MethodGet, "/v2/", "", "Authorization", "bearer "+tok); rec.Code != 200 {
		t.Errorf("lower-case bearer = %d", rec.Code)
	}
	if rec := serve(h, http.MethodGet, "/v2/", "", basicHeader("ci", ciPass)...); rec.Code != 401 {
		t.Errorf("Basic on /v2/ = %d", rec.Code)
	}
	// HEAD errors carry no body.
	if rec := serve(h, http.MethodHead, "/v2/staging/other/manifests/v1", "", bearer...); rec.Code != 401 || rec.Body.Len() != 0 {
		t.Errorf("HEAD = %d with %d body bytes", rec.Code, rec.Body.Len())
	}
	// The mount query is dropped when the token cannot pull "from".
	var seen string
	h2 := gin.New()
	h2.Use(s.V2)
	h2.POST("/v2/*path", func(c *gin.Context) { seen = c.Request.URL.RawQuery })
	serve(h2, http.MethodPost, "/v2/staging/app/blobs/uploads/?mount=sha256:abc&from=secret/x&digest=sha256:abc", "", bearer...)
	if seen != "" {
		t.Errorf("mount from an unreadable repository kept: %q", seen)
	}
	serve(h2, http.MethodPost, "/v2/staging/app/blobs/uploads/?"+url.Values{"mount": {"sha256:abc"}, "from": {"staging/app"}}.Encode(), "", bearer...)
	if !strings.Contains(seen, "mount=") {
		t.Errorf("mount from a readable repository dropped: %q", seen)
	}
	// ci may pull staging/lib, but the token does not say so: 401
	// insufficient_scope, asking for both scopes, so that the client
	// fetches a token that mounts (not a silent plain upload).
	const both = `scope="repository:staging/app:pull,push repository:staging/lib:pull"`
	mountLib := "/v2/staging/app/blobs/uploads/?" + url.Values{"mount": {"sha256:abc"}, "from": {"staging/lib"}}.Encode()
	seen = "unset"
	rec := serve(h2, http.MethodPost, mountLib, "", bearer...)
	if ch := rec.Header().Get("WWW-Authenticate"); rec.Code != 401 || !strings.Contains(ch, both) || !strings.Contains(ch, `error="insufficient_scope"`) || seen != "unset" {
		t.Errorf("mount from a repository the account may pull, token without it = %d %q (handler saw %q)", rec.Code, ch, seen)
	}
	// Without a token the challenge asks for both at once.
	rec = serve(h2, http.MethodPost, mountLib, "")
	if ch := rec.Header().Get("WWW-Authenticate"); rec.Code != 401 || !strings.Contains(ch, both) {
		t.Errorf("mount without a token = %d %q", rec.Code, ch)
	}
	// The challenge's scope, as one parameter, gets the token that mounts.
	rec = serve(h, http.MethodGet, "/auth/token?"+url.Values{"scope": {"repository:staging/app:pull,push repository:staging/lib:pull"}}.Encode(), "", basicHeader("ci", ciPass)...)
	var tr TokenResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &tr); rec.Code != 200 || err != nil {
		t.Fatalf("token for the challenge's scope = %d %s", rec.Code, rec.Body)
	}
	serve(h2, http.MethodPost, mountLib, "", "Authorization", "Bearer "+tr.Token)
	if !strings.Contains(seen, "mount=") || !strings.Contains(seen, "from=staging%2Flib") {
		t.Errorf("mount with a token for both repositories dropped: %q", seen)
	}
}
