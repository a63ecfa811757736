package server

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
)

const (
	proxyPeer     = "10.1.2.3:5555" // inside trusted_proxies below
	untrustedPeer = "192.0.2.1:5555"
)

// forged are the forwarding headers a proxy (or a forger) sends.
var forged = []string{"X-Forwarded-For", "198.51.100.9", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "registry.example.com"}

func proxyServer(t *testing.T, trusted ...string) (http.Handler, *logBuffer) {
	t.Helper()
	cfg := testConfig(t)
	cfg.HTTP.TrustedProxies = trusted
	cfg.Auth.Lockout = config.Lockout{MaxFailures: 100, AddressMaxFailures: 5, Window: time.Minute}
	s, logs := newTestServerWith(t, cfg, nil, auth.Options{})
	return s.Handler(), logs
}

// accessLine is the access log record of the request with id.
func accessLine(t *testing.T, logs *logBuffer, id string) map[string]any {
	t.Helper()
	for _, l := range logs.lines(t) {
		if l["msg"] == "request" && l["request_id"] == id {
			return l
		}
	}
	t.Fatalf("no access line for request %s in:\n%s", id, logs.String())
	return nil
}

// From a trusted proxy, X-Forwarded-* set the realm's scheme and host and
// the logged client address; from any other peer they change nothing.
func TestForwardedHeadersOnlyFromTrustedProxies(t *testing.T) {
	cases := []struct {
		name      string
		trusted   []string
		peer      string
		realm     string
		remote    string
		loggsPeer bool
	}{
		{"trusted", []string{"10.0.0.0/8"}, proxyPeer, "https://registry.example.com/auth/token", "198.51.100.9", true},
		{"untrusted peer", []string{"10.0.0.0/8"}, untrustedPeer, "http://example.com/auth/token", untrustedPeer, false},
		{"no trusted_proxies", nil, proxyPeer, "http://example.com/auth/token", proxyPeer, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, logs := proxyServer(t, tc.trusted...)
			rec := send(h, http.MethodGet, "/v2/", "", append([]string{"Remote", tc.peer, RequestIDHeader, "req-1"}, forged...)...)
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("GET /v2/ = %d", rec.Code)
			}
			if ch := rec.Header().Get("WWW-Authenticate"); !strings.Contains(ch, `realm="`+tc.realm+`"`) {
				t.Errorf("challenge %q, want realm %s", ch, tc.realm)
			}
			line := accessLine(t, logs, "req-1")
			if line["remote"] != tc.remote {
				t.Errorf("access log remote = %v, want %s", line["remote"], tc.remote)
			}
			if _, ok := line["peer"]; ok != tc.loggsPeer {
				t.Errorf("access log peer = %v, want it logged: %t", line["peer"], tc.loggsPeer)
			}
		})
	}
}

// A trusted proxy appends its peer to X-Forwarded-For: what a client wrote
// to the left of it is not believed.
func TestForwardedForTakesTheRightmostUntrustedHop(t *testing.T) {
	h, logs := proxyServer(t, "10.0.0.0/8")
	send(h, http.MethodGet, "/healthz", "", "Remote", proxyPeer, RequestIDHeader, "req-2",
		"X-Forwarded-For", "1.1.1.1, 198.51.100.9, 10.9.9.9")
	if got := accessLine(t, logs, "req-2")["remote"]; got != "198.51.100.9" {
		t.Fatalf("remote = %v, want the rightmost untrusted hop 198.51.100.9", got)
	}
}

// Login throttling counts failures by the client's real address: behind a
// trusted proxy, one locked-out client does not lock out another; a client
// talking directly cannot escape its lockout by forging X-Forwarded-For.
func TestLoginThrottleByRealClientAddress(t *testing.T) {
	fail := func(h http.Handler, peer, xff string, i int) int {
		return send(h, http.MethodGet, tokenURL(), "", append(basic(fmt.Sprintf("nobody%d", i), "x"),
			"Remote", peer, "X-Forwarded-For", xff)...).Code
	}
	good := func(h http.Handler, peer, xff string) int {
		return send(h, http.MethodGet, tokenURL(), "", append(basic(ciUser, ciPass), "Remote", peer, "X-Forwarded-For", xff)...).Code
	}

	t.Run("trusted proxy", func(t *testing.T) {
		h, _ := proxyServer(t, "10.0.0.0/8")
		for i := range 5 {
			fail(h, proxyPeer, "198.51.100.1", i)
		}
		if code := good(h, proxyPeer, "198.51.100.1"); code != http.StatusTooManyRequests {
			t.Fatalf("the locked client through the proxy = %d, want 429", code)
		}
		if code := good(h, proxyPeer, "198.51.100.2"); code != http.StatusOK {
			t.Fatalf("another client through the same proxy = %d, want 200", code)
		}
	})
	for _, trusted := range [][]string{nil, {"10.0.0.0/8"}} {
		t.Run(fmt.Sprintf("direct, trusted_proxies %v", trusted), func(t *testing.T) {
			h, _ := proxyServer(t, trusted...)
			for i := range 5 {
				fail(h, untrustedPeer, fmt.Sprintf("198.51.100.%d", i), i)
			}
			if code := good(h, untrustedPeer, "198.51.100.200"); code != http.StatusTooManyRequests {
				t.Fatalf("locked address with a forged X-Forwarded-For = %d, want 429", code)
			}
			if code := adminLogin(t, h, untrustedPeer, "198.51.100.201"); code != http.StatusTooManyRequests {
				t.Fatalf("admin sign-in from the locked address with a forged X-Forwarded-For = %d, want 429", code)
			}
		})
	}
	t.Run("admin sign-in behind a trusted proxy", func(t *testing.T) {
		h, _ := proxyServer(t, "10.0.0.0/8")
		for i := range 5 {
			fail(h, proxyPeer, "198.51.100.1", i)
		}
		if code := adminLogin(t, h, proxyPeer, "198.51.100.1"); code != http.StatusTooManyRequests {
			t.Fatalf("admin sign-in of the locked client = %d, want 429", code)
		}
		if code := adminLogin(t, h, proxyPeer, "198.51.100.2"); code != http.StatusSeeOther {
			t.Fatalf("admin sign-in of another client through the proxy = %d, want 303", code)
		}
	})
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// adminLogin signs in to the admin pages as ci from peer with
// X-Forwarded-For xff and returns the status of the POST.
func adminLogin(t *testing.T, h http.Handler, peer, xff string) int {
	t.Helper()
	page := send(h, http.MethodGet, "/admin/login", "", "Remote", peer, "X-Forwarded-For", xff)
	m := csrfField.FindStringSubmatch(page.Body.String())
	cookies := page.Result().Cookies()
	if m == nil || len(cookies) == 0 {
		t.Fatalf("login page %d without a CSRF field or cookie", page.Code)
	}
	form := url.Values{"username": {ciUser}, "password": {ciPass}, "csrf": {m[1]}}
	return send(h, http.MethodPost, "/admin/login", form.Encode(), "Remote", peer, "X-Forwarded-For", xff,
		"Content-Type", "application/x-www-form-urlencoded", "Cookie", cookies[0].Name+"="+cookies[0].Value).Code
}

// The admin's cookies are Secure when a trusted proxy says the client
// called over https; a
// forged X-Forwarded-Proto from elsewhere changes neither.
func TestAdminSecureCookieFromTrustedProxy(t *testing.T) {
	for _, tc := range []struct {
		peer   string
		secure bool
	}{{proxyPeer, true}, {untrustedPeer, false}} {
		h, _ := proxyServer(t, "10.0.0.0/8")
		page := send(h, http.MethodGet, "/admin/login", "", append([]string{"Remote", tc.peer}, forged...)...)
		cookies := page.Result().Cookies()
		if len(cookies) == 0 {
			t.Fatalf("from %s: no cookie", tc.peer)
		}
		if cookies[0].Secure != tc.secure {
			t.Errorf("from %s: cookie Secure = %t, want %t", tc.peer, cookies[0].Secure, tc.secure)
		}
	}
}
