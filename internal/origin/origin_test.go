package origin

import (
	"crypto/tls"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestResolve(t *testing.T) {
	v := NewResolver([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")})
	cases := []struct {
		name string
		peer string
		tls  bool
		hdr  map[string]string
		want Origin
	}{
		{"direct", "192.0.2.1:1", false, map[string]string{"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
			Origin{ClientIP: "192.0.2.1", Peer: "192.0.2.1:1", Scheme: "http", Host: "example.com"}},
		{"direct tls", "192.0.2.1:1", true, nil, Origin{ClientIP: "192.0.2.1", Peer: "192.0.2.1:1", Scheme: "https", Host: "example.com"}},
		{"proxied", "10.0.0.5:1", false, map[string]string{"X-Forwarded-For": "203.0.113.1", "X-Forwarded-Proto": "HTTPS", "X-Forwarded-Host": "reg.example:8443"},
			Origin{ClientIP: "203.0.113.1", Forwarded: true, Peer: "10.0.0.5:1", Scheme: "https", Host: "reg.example:8443"}},
		{"proxied v6", "[fd00::1]:1", false, map[string]string{"X-Forwarded-For": "2001:db8::7"},
			Origin{ClientIP: "2001:db8::7", Forwarded: true, Peer: "[fd00::1]:1", Scheme: "http", Host: "example.com"}},
		{"proxy says http over its tls", "10.0.0.5:1", true, map[string]string{"X-Forwarded-Proto": "http"},
			Origin{ClientIP: "10.0.0.5", Peer: "10.0.0.5:1", Scheme: "http", Host: "example.com"}},
		{"garbage ignored", "10.0.0.5:1", false, map[string]string{"X-Forwarded-For": "nonsense", "X-Forwarded-Proto": "gopher", "X-Forwarded-Host": `a" b/c`},
			Origin{ClientIP: "10.0.0.5", Peer: "10.0.0.5:1", Scheme: "http", Host: "example.com"}},
		{"chain of proxies", "10.0.0.5:1", false, map[string]string{"X-Forwarded-For": "6.6.6.6, 203.0.113.1, 10.0.0.9"},
			Origin{ClientIP: "203.0.113.1", Forwarded: true, Peer: "10.0.0.5:1", Scheme: "http", Host: "example.com"}},
		{"all hops trusted", "10.0.0.5:1", false, map[string]string{"X-Forwarded-For": "10.0.0.8, 10.0.0.9"},
			Origin{ClientIP: "10.0.0.8", Forwarded: true, Peer: "10.0.0.5:1", Scheme: "http", Host: "example.com"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			if !tc.tls {
				r.TLS = nil
			} else {
				r.TLS = &tls.ConnectionState{}
			}
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			if got := v.Resolve(r); got != tc.want {
				t.Errorf("Resolve = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Without an origin in its context, a request's origin trusts no header.
func TestFromRequestWithoutMiddleware(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.5:1"
	r.Header.Set("X-Forwarded-For", "203.0.113.1")
	if got := FromRequest(r); got.ClientIP != "10.0.0.5" {
		t.Fatalf("FromRequest = %+v", got)
	}
	want := Origin{ClientIP: "203.0.113.1", Scheme: "https", Host: "h"}
	if got := FromRequest(r.WithContext(NewContext(r.Context(), want))); got != want {
		t.Fatalf("FromRequest = %+v, want %+v", got, want)
	}
}
