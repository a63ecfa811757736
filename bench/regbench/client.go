package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// client speaks the distribution API with a transport tuned so that the
// client is not the bottleneck: enough idle connections for every worker,
// big socket buffers, no compression.
type client struct {
	base *url.URL
	hc   *http.Client
	// auth is set by ping when /v2/ answers 401 with a Bearer challenge;
	// user and password are the Basic credentials for the token realm.
	auth           *bearerAuth
	user, password string
}

func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil, // loopback benchmark: never go through a proxy
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		WriteBufferSize:       256 << 10,
		ReadBufferSize:        256 << 10,
		ResponseHeaderTimeout: 5 * time.Minute,
		ExpectContinueTimeout: time.Second,
	}
}

func newClient(base *url.URL) *client {
	return &client{
		base: base,
		// The default CheckRedirect follows up to 10 redirects, which is
		// what a blob GET needs if a registry redirects to storage.
		hc: &http.Client{Transport: newTransport(), CheckRedirect: stripAuthOnRedirect},
	}
}

// stripAuthOnRedirect follows up to 10 redirects and drops Authorization
// when one leaves the registry's host:port (net/http compares host names
// only, so it would send the registry's Bearer token to storage on the
// same IP, where a presigned URL must go without it).
func stripAuthOnRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("stopped after 10 redirects")
	}
	if req.URL.Host != via[0].URL.Host {
		req.Header.Del("Authorization")
	}
	return nil
}

// statusError is an unexpected answer, with enough to reproduce it.
type statusError struct {
	method, url string
	status      int
	want        []int
	body        string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: status %d, want %v; body: %q", e.method, e.url, e.status, e.want, e.body)
}

// do sends req and fails unless the status is one of want. On success the
// caller owns resp.Body.
func (c *client) do(req *http.Request, want ...int) (*http.Response, error) {
	scope := ""
	if c.auth != nil && req.URL.Host == c.base.Host {
		scope = scopeForPath(req.URL.Path)
		if scope != "" {
			tok, err := c.auth.token(req.Context(), c.hc, scope)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	// A 401 with a challenge for another scope (e.g. a mount's "from"):
	// fetch that token and retry once, if the body can be sent again.
	if c.auth != nil && resp.StatusCode == http.StatusUnauthorized && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil) {
		if ch, ok := parseChallenge(resp.Header.Get("WWW-Authenticate")); ok && ch["scope"] != "" && ch["scope"] != scope {
			drain(resp)
			tok, err := c.auth.fetch(req.Context(), c.hc, ch["scope"])
			if err != nil {
				return nil, err
			}
			r2 := req.Clone(req.Context())
			if req.GetBody != nil {
				if r2.Body, err = req.GetBody(); err != nil {
					return nil, err
				}
			}
			r2.Header.Set("Authorization", "Bearer "+tok)
			if resp, err = c.hc.Do(r2); err != nil {
				return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
			}
		}
	}
	for _, w := range want {
		if resp.StatusCode == w {
			return resp, nil
		}
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	resp.Body.Close()
	return nil, &statusError{method: req.Method, url: req.URL.String(), status: resp.StatusCode, want: want, body: string(b)}
}

// drain reads the rest of a body and closes it so the connection is reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func (c *client) url(path string) string {
	return c.base.String() + path
}

// resolve turns a Location header (absolute or relative) into a URL.
func (c *client) resolve(loc string) (*url.URL, error) {
	if loc == "" {
		return nil, fmt.Errorf("missing Location header")
	}
	u, err := url.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("bad Location %q: %w", loc, err)
	}
	return c.base.ResolveReference(u), nil
}

// ping checks that /v2/ answers 200, or 401 with a Bearer challenge, in
// which case it turns token auth on and checks (untimed) that the
// credentials get a token that /v2/ accepts.
func (c *client) ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v2/"), nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req, http.StatusOK, http.StatusUnauthorized)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	ch, ok := parseChallenge(resp.Header.Get("WWW-Authenticate"))
	if !ok {
		return fmt.Errorf("GET %s: 401 without a Bearer challenge (WWW-Authenticate %q)", req.URL, resp.Header.Get("WWW-Authenticate"))
	}
	if c.user == "" {
		return fmt.Errorf("GET %s: the registry wants a token (realm %s): set -user/-password or REGBENCH_USER/REGBENCH_PASSWORD", req.URL, ch["realm"])
	}
	realm, err := c.base.Parse(ch["realm"])
	if err != nil {
		return fmt.Errorf("bad realm %q: %w", ch["realm"], err)
	}
	c.auth = &bearerAuth{user: c.user, password: c.password, realm: realm.String(), service: ch["service"], tokens: map[string]cachedToken{}}
	// Check the credentials now: a token for /v2/ itself.
	tok, err := c.auth.fetch(ctx, c.hc, ch["scope"])
	if err != nil {
		return err
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v2/"), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err = c.do(req, http.StatusOK); err != nil {
		return err
	}
	drain(resp)
	return nil
}

// blob is a pre-generated blob with its digest.
type blob struct {
	data   []byte
	digest string
}

func newBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{data: data, digest: "sha256:" + hex.EncodeToString(sum[:])}
}

// pushBlob uploads a blob the way docker push does: POST to start an
// upload session (202 + Location), PATCH the whole body as
// application/octet-stream (202 + Location), then PUT ?digest= with an empty
// body (201). It checks every status, the Location headers and the
// Docker-Content-Digest of the result.
func (c *client) pushBlob(ctx context.Context, repo string, b blob, chunked bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/v2/"+repo+"/blobs/uploads/"), nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req, http.StatusAccepted)
	if err != nil {
		return err
	}
	drain(resp)
	loc, err := c.resolve(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("POST %s: %w", req.URL, err)
	}

	var body io.Reader = bytes.NewReader(b.data)
	if chunked {
		// Hide the length (and WriterTo) so net/http streams the body with
		// Transfer-Encoding: chunked, as docker's blob writer does.
		body = struct{ io.Reader }{body}
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPatch, loc.String(), body)
	if err != nil {
		return err
	}
	if chunked {
		req.ContentLength = -1
	} else {
		req.ContentLength = int64(len(b.data))
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = c.do(req, http.StatusAccepted)
	if err != nil {
		return err
	}
	drain(resp)
	if r := resp.Header.Get("Range"); r != "" && r != fmt.Sprintf("0-%d", len(b.data)-1) {
		return fmt.Errorf("PATCH %s: Range %q after %d bytes", req.URL, r, len(b.data))
	}
	loc, err = c.resolve(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("PATCH %s: %w", req.URL, err)
	}

	q := loc.Query()
	q.Set("digest", b.digest)
	loc.RawQuery = q.Encode()
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), http.NoBody)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = c.do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != b.digest {
		return fmt.Errorf("PUT %s: Docker-Content-Digest %s, want %s", req.URL, got, b.digest)
	}
	return nil
}

// pullBlob GETs a blob (following redirects), reads and discards the body,
// and checks its length, Docker-Content-Digest and, with verify, its sha256.
func (c *client) pullBlob(ctx context.Context, repo, digest string, size int64, verify bool, buf []byte) error {
	u := c.url("/v2/" + repo + "/blobs/" + digest)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.ContentLength >= 0 && resp.ContentLength != size {
		return fmt.Errorf("GET %s: Content-Length %d, want %d", u, resp.ContentLength, size)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != digest {
		return fmt.Errorf("GET %s: Docker-Content-Digest %s, want %s", u, got, digest)
	}
	var n int64
	if verify {
		h := sha256.New()
		n, err = io.CopyBuffer(h, resp.Body, buf)
		if err == nil {
			if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
				return fmt.Errorf("GET %s: body digest %s", u, got)
			}
		}
	} else {
		n, err = io.CopyBuffer(io.Discard, onlyReader{resp.Body}, buf)
	}
	if err != nil {
		return fmt.Errorf("GET %s: reading body after %d bytes: %w", u, n, err)
	}
	if n != size {
		return fmt.Errorf("GET %s: body %d bytes, want %d", u, n, size)
	}
	return nil
}

// onlyReader hides WriterTo so io.CopyBuffer uses our buffer.
type onlyReader struct{ io.Reader }

// headBlob tells whether a blob exists in repo.
func (c *client) headBlob(ctx context.Context, repo, digest string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.url("/v2/"+repo+"/blobs/"+digest), nil)
	if err != nil {
		return false, err
	}
	resp, err := c.do(req, http.StatusOK, http.StatusNotFound)
	if err != nil {
		return false, err
	}
	drain(resp)
	return resp.StatusCode == http.StatusOK, nil
}

// putManifest PUTs a manifest under ref and checks the answer.
func (c *client) putManifest(ctx context.Context, repo, ref, mediaType string, body []byte) (string, error) {
	sum := sha256.Sum256(body)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.url("/v2/"+repo+"/manifests/"+ref), bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", mediaType)
	resp, err := c.do(req, http.StatusCreated)
	if err != nil {
		return "", err
	}
	drain(resp)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != digest {
		return "", fmt.Errorf("PUT %s: Docker-Content-Digest %s, want %s", req.URL, got, digest)
	}
	return digest, nil
}

// manifestAccept is what docker and containerd send when pulling by tag.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}, ", ")

// checkManifestResponse verifies a HEAD/GET manifest answer's headers.
func checkManifestResponse(resp *http.Response, digest string, size int64, mediaType string) error {
	if got := resp.Header.Get("Docker-Content-Digest"); got != digest {
		return fmt.Errorf("Docker-Content-Digest %q, want %s", got, digest)
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err != nil || n != size {
			return fmt.Errorf("Content-Length %q, want %d", cl, size)
		}
	} else if resp.ContentLength >= 0 && resp.ContentLength != size {
		return fmt.Errorf("Content-Length %d, want %d", resp.ContentLength, size)
	}
	if ct := resp.Header.Get("Content-Type"); ct != mediaType {
		return fmt.Errorf("Content-Type %q, want %s", ct, mediaType)
	}
	return nil
}
