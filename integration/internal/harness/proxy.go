package harness

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// Exchange is one request a RecordingProxy forwarded, with the status the
// registry answered.
type Exchange struct {
	Method string
	Path   string
	Query  url.Values
	Status int
}

func (e Exchange) String() string {
	q := ""
	if len(e.Query) > 0 {
		q = "?" + e.Query.Encode()
	}
	return fmt.Sprintf("%s %s%s -> %d", e.Method, e.Path, q, e.Status)
}

// RecordingProxy is a reverse proxy in front of a registry that records
// every request and response status, so a test can assert which API path a
// client took (for example a cross-repository mount instead of an upload).
type RecordingProxy struct {
	Host string // 127.0.0.1:PORT of the proxy

	mu  sync.Mutex
	log []Exchange
}

// NewRecordingProxy serves on a free loopback port until the test ends. The
// Host header is passed through unchanged, so a registry that builds
// Location from it keeps the client on the proxy.
func NewRecordingProxy(t testing.TB, target *Registry) *RecordingProxy {
	t.Helper()
	u, err := url.Parse(target.URL())
	if err != nil {
		t.Fatal(err)
	}
	p := &RecordingProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		req := resp.Request
		p.mu.Lock()
		p.log = append(p.log, Exchange{Method: req.Method, Path: req.URL.Path, Query: req.URL.Query(), Status: resp.StatusCode})
		p.mu.Unlock()
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Host = l.Addr().String()
	srv := &http.Server{Handler: rp}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

// Ref is a reference through the proxy.
func (p *RecordingProxy) Ref(repoAndTag string) string { return p.Host + "/" + repoAndTag }

// Exchanges returns what was recorded so far.
func (p *RecordingProxy) Exchanges() []Exchange {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Exchange(nil), p.log...)
}
