// Package origin is where a request came from as the client saw it: the
// client's address, and the scheme and host it called. Behind a reverse
// proxy the connection's peer is the proxy, and the proxy reports the rest
// in X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host; those headers
// are believed only when the peer is one of the configured trusted proxies
// (http.trusted_proxies), and ignored entirely otherwise, since any client
// can send them.
//
// The server resolves the origin once per request (Resolver.Resolve, in its
// outermost middleware) and stores it in the request's context; everything
// that needs the client address, scheme or host reads it back with
// FromRequest.
package origin

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Origin is a request's origin.
type Origin struct {
	// ClientIP is the client's address ("203.0.113.7", "2001:db8::1"):
	// the peer's, or the one a trusted proxy forwarded.
	ClientIP string
	// Peer is the connection's peer address as host:port (the request's
	// RemoteAddr): the client's, or the trusted proxy's when Forwarded.
	Peer string
	// Forwarded says ClientIP came from a trusted proxy's X-Forwarded-For.
	Forwarded bool
	// Scheme is "https" or "http": https when the connection is TLS or a
	// trusted proxy says so.
	Scheme string
	// Host is the host[:port] the client called: the request's Host, or
	// the one a trusted proxy forwarded.
	Host string
}

// BaseURL is scheme://host, the prefix of URLs the client can follow.
func (o Origin) BaseURL() string { return o.Scheme + "://" + o.Host }

// Secure reports whether the client called over https.
func (o Origin) Secure() bool { return o.Scheme == "https" }

// Resolver resolves origins; its zero value trusts no proxy.
type Resolver struct {
	trusted []netip.Prefix
}

// NewResolver trusts the forwarding headers of peers inside trusted.
func NewResolver(trusted []netip.Prefix) *Resolver {
	return &Resolver{trusted: trusted}
}

// Resolve computes r's origin from its connection and, when the peer is a
// trusted proxy, its X-Forwarded-* headers.
func (v *Resolver) Resolve(r *http.Request) Origin {
	o := Origin{ClientIP: peerIP(r.RemoteAddr), Peer: r.RemoteAddr, Scheme: "http", Host: r.Host}
	if r.TLS != nil {
		o.Scheme = "https"
	}
	peer, err := netip.ParseAddr(o.ClientIP)
	if err != nil || !v.trusts(peer) {
		return o
	}
	if ip, ok := v.forwardedFor(r.Header.Values("X-Forwarded-For")); ok {
		o.ClientIP, o.Forwarded = ip.String(), true
	}
	switch p := strings.ToLower(strings.TrimSpace(first(r.Header.Get("X-Forwarded-Proto")))); p {
	case "http", "https":
		o.Scheme = p
	}
	if h := strings.TrimSpace(first(r.Header.Get("X-Forwarded-Host"))); saneHost(h) {
		o.Host = h
	}
	return o
}

func (v *Resolver) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range v.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor picks the client from X-Forwarded-For (all its header lines
// joined, oldest hop first): the rightmost address that is not a trusted
// proxy, since every trusted proxy appends its peer and anything left of
// the first untrusted hop may be forged by the client. If every hop is
// trusted, the leftmost one. An entry that does not parse ends the walk:
// the last good address before it is the answer.
func (v *Resolver) forwardedFor(lines []string) (netip.Addr, bool) {
	var hops []string
	for _, l := range lines {
		hops = append(hops, strings.Split(l, ",")...)
	}
	var got netip.Addr
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil || a.Zone() != "" {
			break
		}
		got = a.Unmap()
		if !v.trusts(got) {
			break
		}
	}
	return got, got.IsValid()
}

type key struct{}

// NewContext stores o in ctx.
func NewContext(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, key{}, o)
}

// FromRequest is the origin the server stored in r's context; a request
// that has none (a handler called directly, in tests) gets the origin of
// its connection alone, trusting no header.
func FromRequest(r *http.Request) Origin {
	if o, ok := r.Context().Value(key{}).(Origin); ok {
		return o
	}
	var none Resolver
	return none.Resolve(r)
}

func peerIP(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}

func first(list string) string {
	s, _, _ := strings.Cut(list, ",")
	return s
}

// saneHost accepts what a Host header may hold (a name or address and a
// port), so a forwarded value cannot put quotes, spaces or paths into the
// token realm or other URLs built from it.
func saneHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range []byte(h) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}
