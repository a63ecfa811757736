package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/slipway/slipway/integration/internal/harness"
)

// backend is a storage the client tests run the registry on: each test body
// runs once per backend, as a subtest named after it
// (go test -run 'TestSkopeo/s3-redirect' picks one).
type backend struct {
	name string
	s3   *harness.S3 // nil: a folder (storage.filesystem)
}

var (
	// fsBackend: an empty folder per test.
	fsBackend = backend{name: "fs"}
	// s3Backend: a fresh bucket on the shared MinIO, blob GETs served by
	// Slipway (the bytes stream through it).
	s3Backend = backend{name: "s3", s3: &harness.S3{}}
	// s3RedirectBackend: a fresh bucket, every blob GET answered 307 with
	// a presigned MinIO URL (the production setting, with
	// redirect_min_size 0 so that small test blobs are redirected too;
	// TestS3Redirect checks the default threshold).
	s3RedirectBackend = backend{name: "s3-redirect", s3: &harness.S3{Redirect: true, RedirectMinSize: "0"}}
	// versitygwBackend: the same as s3-redirect on the shared versitygw
	// (posix backend), the second S3 implementation: its presigned URLs,
	// conditional writes and multipart uploads, not only MinIO's.
	versitygwBackend = backend{name: "versitygw", s3: &harness.S3{VersityGW: true, Redirect: true, RedirectMinSize: "0"}}

	allBackends = []backend{fsBackend, s3Backend, s3RedirectBackend}
)

// start runs a registry on the backend for this test.
func (b backend) start(t *testing.T) *harness.Registry {
	t.Helper()
	return b.startOpts(t, harness.Options{})
}

// startOpts is start with options (their S3 is the backend's).
func (b backend) startOpts(t *testing.T, opts harness.Options) *harness.Registry {
	t.Helper()
	opts.S3 = nil
	if b.s3 != nil {
		s := *b.s3
		opts.S3 = &s
	}
	return harness.StartOpts(t, opts)
}

// eachBackend runs f as a subtest per backend.
func eachBackend(t *testing.T, bs []backend, f func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range bs {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// redirects reports whether blob GETs on b are answered with a 307.
func (b backend) redirects() bool { return b.s3 != nil && b.s3.Redirect }

// requestLine is one request line of Slipway's access log.
type requestLine struct {
	Msg, Method, Route string
	UserAgent          string `json:"user_agent"`
	Status             int
}

// accessLog returns the requests in Slipway's access log from clients
// whose User-Agent contains ua ("" for any).
func accessLog(reg *harness.Registry, ua string) []requestLine {
	var out []requestLine
	for _, line := range strings.Split(reg.Logs(), "\n") {
		var e requestLine
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &e) != nil || e.Msg != "request" {
			continue
		}
		if strings.Contains(e.UserAgent, ua) {
			out = append(out, e)
		}
	}
	return out
}

// blobGETs counts, in Slipway's access log, the blob GETs from clients whose
// User-Agent contains ua ("" for any) that were answered with a redirect
// (307) and with the bytes (200/206).
func blobGETs(t *testing.T, reg *harness.Registry, ua string) (redirected, served int) {
	t.Helper()
	for _, e := range accessLog(reg, ua) {
		if e.Method != "GET" || e.Route != "blob" {
			continue
		}
		switch e.Status {
		case 307:
			redirected++
		case 200, 206:
			served++
		}
	}
	return redirected, served
}

// checkBlobReads requires that the client (by User-Agent) read blobs the
// way the backend says: through a redirect on s3-redirect, from Slipway
// itself elsewhere. Slipway only: the stock registry logs another format.
func checkBlobReads(t *testing.T, reg *harness.Registry, b backend, ua string) {
	t.Helper()
	if harness.IsStock() {
		return
	}
	red, served := blobGETs(t, reg, ua)
	t.Logf("blob GETs by %q: %d redirected (307), %d served (200/206)", ua, red, served)
	switch {
	case b.redirects() && red == 0:
		t.Errorf("%s: no blob GET by %q was redirected (307) to MinIO; %d were served by Slipway", b.name, ua, served)
	case !b.redirects() && red > 0:
		t.Errorf("%s: %d blob GETs by %q were redirected although redirect is off", b.name, red, ua)
	case !b.redirects() && served == 0:
		t.Errorf("%s: no blob GET by %q reached Slipway", b.name, ua)
	}
}
