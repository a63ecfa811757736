package auth

// Token exchanges per second with the issuer's keys cached, beside
// password logins from the credential cache (issue 16: >= 2,000/s):
//
//	go test -run x -bench 'OIDCExchange' -cpu 1 ./auth/

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

func BenchmarkOIDCExchange(b *testing.B) {
	target := "/auth/token?service=slipway&scope=" + url.QueryEscape("repository:staging/acme/api:pull,push")
	for _, kid := range []string{"rsa-1", "ec-1"} {
		alg := map[string]string{"rsa-1": "RS256", "ec-1": "ES256"}[kid]
		clk := &fakeClock{t: time.Now().Truncate(time.Second)}
		is := newTestIssuer(b, clk.Now)
		if kid != "rsa-1" {
			is.addKey(kid, true)
		}
		s := newOIDCService(b, is, clk)
		h := engine(s)
		idt := is.sign(is.claims(testAudience))
		// The first exchange runs discovery and fetches the keys.
		if rec := serve(h, http.MethodGet, target, "", basicHeader("oidc", idt)...); rec.Code != http.StatusOK {
			b.Fatalf("warm-up = %d %s", rec.Code, rec.Body)
		}
		b.Run(alg+"/docker-login", func(b *testing.B) {
			benchToken(b, h, http.MethodGet, target, "", basicHeader("oidc", idt)...)
		})
		b.Run(alg+"/rfc8693", func(b *testing.B) {
			benchToken(b, h, http.MethodPost, "/auth/token", exchangeForm(idt, "repository:staging/acme/api:pull,push"), formHeader...)
		})
	}
	b.Run("password-cached", func(b *testing.B) {
		s := bcryptService(b)
		h := engine(s)
		serve(h, http.MethodGet, target, "", basicHeader("ci", ciPass)...)
		benchToken(b, h, http.MethodGet, target, "", basicHeader("ci", ciPass)...)
	})
}
