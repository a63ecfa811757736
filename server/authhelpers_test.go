package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/storage"
)

// clock is a fake time source the auth service reads through Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Handler is the whole HTTP surface, for tests with httptest.
func (s *Server) Handler() http.Handler { return s.engine }

// send makes one request. hdr holds name/value pairs; the pseudo-header
// "Remote" sets the client address.
func send(h http.Handler, method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Remote" {
			req.RemoteAddr = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func basic(user, pass string) []string {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return []string{"Authorization", req.Header.Get("Authorization")}
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// tokenURL is a GET token request for scopes.
func tokenURL(scopes ...string) string {
	q := url.Values{"service": {"slipway"}}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	return "/auth/token?" + q.Encode()
}

func decodeToken(t *testing.T, rec *httptest.ResponseRecorder) auth.TokenResponse {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("token request = %d %s", rec.Code, rec.Body)
	}
	var tr auth.TokenResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &tr); err != nil {
		t.Fatal(err)
	}
	if tr.Token == "" || tr.Token != tr.AccessToken {
		t.Fatalf("token response %s", rec.Body)
	}
	return tr
}

// token logs in with GET /auth/token and returns the access token.
func token(t *testing.T, h http.Handler, user, pass string, scopes ...string) string {
	t.Helper()
	return decodeToken(t, send(h, http.MethodGet, tokenURL(scopes...), "", basic(user, pass)...)).Token
}

// postToken is an OAuth2 token request.
func postToken(h http.Handler, form url.Values, hdr ...string) *httptest.ResponseRecorder {
	return send(h, http.MethodPost, "/auth/token", form.Encode(), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, hdr...)...)
}

// accessOf returns the verified access claim of a token.
func accessOf(t *testing.T, s *Server, tok string) []auth.Access {
	t.Helper()
	c, err := s.auth.Verify(tok)
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	return c.Access
}

func actionsFor(access []auth.Access, typ, name string) []string {
	for _, a := range access {
		if a.Type == typ && a.Name == name {
			return a.Actions
		}
	}
	return nil
}

// ociCode is the first error code of an OCI error body.
func ociCode(t *testing.T, rec *httptest.ResponseRecorder) (code, msg string) {
	t.Helper()
	var body struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) == 0 {
		t.Fatalf("not an OCI error body (%d): %q", rec.Code, rec.Body)
	}
	return body.Errors[0].Code, body.Errors[0].Message
}

// pushBlob uploads content monolithically and returns its digest.
func pushBlob(t *testing.T, h http.Handler, tok, repo, content string) string {
	t.Helper()
	d := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(content)))
	rec := send(h, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d, content,
		append(bearer(tok), "Content-Type", "application/octet-stream")...)
	if rec.Code != http.StatusCreated {
		t.Fatalf("push blob to %s = %d %s", repo, rec.Code, rec.Body)
	}
	return d
}

// pushImage pushes a config blob and a manifest tagged tag; it returns
// the manifest's status.
func pushImage(t *testing.T, h http.Handler, tok, repo, tag string) *httptest.ResponseRecorder {
	t.Helper()
	cfg := `{"architecture":"amd64","os":"linux"}`
	d := pushBlob(t, h, tok, repo, cfg)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[]}`, d, len(cfg))
	return send(h, http.MethodPut, "/v2/"+repo+"/manifests/"+tag, m,
		append(bearer(tok), "Content-Type", "application/vnd.oci.image.manifest.v1+json")...)
}

// forge signs claims with the private key in a PEM file, kid in the header.
func forge(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// countingStore counts conditional writes per key prefix.
type countingStore struct {
	storage.Store
	mu     sync.Mutex
	writes map[string]int
}

func (c *countingStore) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (storage.Info, error) {
	c.mu.Lock()
	c.writes[key]++
	c.mu.Unlock()
	return c.Store.PutIfMatch(ctx, key, r, size, etag)
}

func (c *countingStore) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes[key]
}
