package harness

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Exchange is one request a RecordingProxy forwarded, with the status the
// registry answered.
type Exchange struct {
	Method string
	Path   string
	Query  url.Values
	Status int
	Err    string // the proxy's error when the registry gave no response
}

func (e Exchange) String() string {
	q := ""
	if len(e.Query) > 0 {
		q = "?" + e.Query.Encode()
	}
	if e.Err != "" {
		return fmt.Sprintf("%s %s%s -> %d (%s)", e.Method, e.Path, q, e.Status, e.Err)
	}
	return fmt.Sprintf("%s %s%s -> %d", e.Method, e.Path, q, e.Status)
}

// RecordingProxy is a reverse proxy in front of a registry that records
// every request and response status, so a test can assert which API path a
// client took (for example a cross-repository mount instead of an upload).
type RecordingProxy struct {
	Host string // 127.0.0.1:PORT of the proxy

	mu     sync.Mutex
	log    []Exchange
	bodies func(*http.Request, io.ReadCloser) io.ReadCloser
}

// SetBodyFilter makes the proxy pass every request body through f (nil:
// unchanged), e.g. to slow an upload down.
func (p *RecordingProxy) SetBodyFilter(f func(req *http.Request, body io.ReadCloser) io.ReadCloser) {
	p.mu.Lock()
	p.bodies = f
	p.mu.Unlock()
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
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.Out.Host = pr.In.Host // Host passes through unchanged
		p.mu.Lock()
		f := p.bodies
		p.mu.Unlock()
		if f != nil && pr.Out.Body != nil && pr.Out.Body != http.NoBody {
			pr.Out.Body = f(pr.Out, pr.Out.Body)
		}
	}}
	// A failed round trip (the registry cut the connection) is recorded as
	// the 502 the client gets.
	rp.ErrorHandler = func(w http.ResponseWriter, req *http.Request, err error) {
		p.mu.Lock()
		p.log = append(p.log, Exchange{Method: req.Method, Path: req.URL.Path, Query: req.URL.Query(), Status: http.StatusBadGateway, Err: err.Error()})
		p.mu.Unlock()
		w.WriteHeader(http.StatusBadGateway)
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		req := resp.Request
		p.mu.Lock()
		p.log = append(p.log, Exchange{Method: req.Method, Path: req.URL.Path, Query: req.URL.Query(), Status: resp.StatusCode})
		p.mu.Unlock()
		return nil
	}
	p.Host = serveLoopback(t, rp)
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

// ProxyErrorHeader is set on the 502 a RoundRobinProxy answers when the
// chosen replica gave no response (it is down, or cut the connection), so
// a test can tell that from a 502 of the registry itself.
const ProxyErrorHeader = "X-Harness-Proxy-Error"

// RoundRobinProxy is a load balancer without stickiness or health checks
// in front of replicas: each request goes to the next replica in turn, so
// the requests of one upload, one pull or one login land on both.
type RoundRobinProxy struct {
	Host string // 127.0.0.1:PORT of the proxy
	next atomic.Uint64
}

// NewRoundRobinProxy serves on a free loopback port until the test ends.
// The Host header passes through unchanged: start the replicas with
// NoPublicURL, so Location headers and the token realm name the proxy.
func NewRoundRobinProxy(t testing.TB, targets ...*Registry) *RoundRobinProxy {
	t.Helper()
	if len(targets) == 0 {
		t.Fatal("NewRoundRobinProxy: no targets")
	}
	urls := make([]*url.URL, len(targets))
	for i, r := range targets {
		u, err := url.Parse(r.URL())
		if err != nil {
			t.Fatal(err)
		}
		urls[i] = u
	}
	p := &RoundRobinProxy{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(urls[(p.next.Add(1)-1)%uint64(len(urls))])
			pr.Out.Host = pr.In.Host
		},
		// Many clients at once: keep connections to the replicas instead of
		// dialing per request (the default keeps 2 idle per host).
		Transport: &http.Transport{MaxIdleConnsPerHost: 128, IdleConnTimeout: 30 * time.Second},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			w.Header().Set(ProxyErrorHeader, err.Error())
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.Host = serveLoopback(t, rp)
	return p
}

// URL is the proxy's base URL, http://127.0.0.1:PORT.
func (p *RoundRobinProxy) URL() string { return "http://" + p.Host }

// Ref is a reference through the proxy.
func (p *RoundRobinProxy) Ref(repoAndTag string) string { return p.Host + "/" + repoAndTag }

// serveLoopback serves h on a free loopback port until the test ends and
// returns its host:port.
func serveLoopback(t testing.TB, h http.Handler) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}
