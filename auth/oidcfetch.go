package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// maxIssuerDocument bounds a discovery document or key set read from an
// issuer: real ones are a few KiB.
const maxIssuerDocument = 1 << 20

// issuerFetchTimeout bounds one request to an issuer.
const issuerFetchTimeout = 10 * time.Second

// errIssuerUnreachable is what fetches from an issuer fail with when it
// does not answer, or answers other than 200: the exchange answers 503.
type errIssuerUnreachable struct{ why string }

func (e *errIssuerUnreachable) Error() string { return e.why }

// boundedFetch is the RoundTripper under go-oidc's discovery and
// RemoteKeySet for one issuer. It adds no JWKS logic of its own; it bounds
// how often the issuer is asked: the outcome of a GET (the body, or the
// failure) is reused for minInterval, so go-oidc's refetch on an unknown
// key id — which it does on every such token — costs the issuer at most
// one request per URL per interval, whatever tokens arrive. It also keeps
// the key ids of the last key set it fetched, only to word a refusal.
type boundedFetch struct {
	next        http.RoundTripper
	minInterval time.Duration
	now         func() time.Time

	mu     sync.Mutex
	recent map[string]*fetched // by URL
}

type fetched struct {
	at     time.Time
	header http.Header
	body   []byte
	err    error
	kids   []string // the "kid"s of a key set body
}

func newBoundedFetch(next http.RoundTripper, minInterval time.Duration, now func() time.Time) *boundedFetch {
	return &boundedFetch{next: next, minInterval: minInterval, now: now, recent: map[string]*fetched{}}
}

func (b *boundedFetch) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet {
		return nil, fmt.Errorf("unexpected %s to the issuer", req.Method)
	}
	url := req.URL.String()
	b.mu.Lock()
	f, ok := b.recent[url]
	b.mu.Unlock()
	if !ok || b.now().Sub(f.at) >= b.minInterval {
		f = b.fetch(req)
		b.mu.Lock()
		b.recent[url] = f
		b.mu.Unlock()
	}
	if f.err != nil {
		return nil, f.err
	}
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: f.header.Clone(), Body: io.NopCloser(bytes.NewReader(f.body)), ContentLength: int64(len(f.body)), Request: req,
	}, nil
}

func (b *boundedFetch) fetch(req *http.Request) *fetched {
	f := &fetched{at: b.now()}
	resp, err := b.next.RoundTrip(req)
	if err != nil {
		f.err = &errIssuerUnreachable{why: err.Error()}
		return f
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIssuerDocument+1))
	switch {
	case err != nil:
		f.err = &errIssuerUnreachable{why: "reading " + req.URL.String() + ": " + err.Error()}
	case resp.StatusCode != http.StatusOK:
		f.err = &errIssuerUnreachable{why: req.URL.String() + " answered " + resp.Status}
	case len(body) > maxIssuerDocument:
		f.err = &errIssuerUnreachable{why: fmt.Sprintf("%s is larger than %d bytes", req.URL.String(), maxIssuerDocument)}
	default:
		f.header, f.body = resp.Header.Clone(), body
		var set struct {
			Keys []struct {
				Kid string `json:"kid"`
			} `json:"keys"`
		}
		if json.Unmarshal(body, &set) == nil {
			for _, k := range set.Keys {
				f.kids = append(f.kids, k.Kid)
			}
		}
	}
	return f
}

// last reports the latest outcome for url: whether it failed (and why),
// and the key ids it listed.
func (b *boundedFetch) last(url string) (kids []string, ok bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.recent[url]
	if !ok {
		return nil, false, nil
	}
	return slices.Clone(f.kids), true, f.err
}
