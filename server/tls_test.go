package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/internal/testpki"
)

// tlsClient is an HTTP client trusting ca, offering HTTP/2, with an
// optional client certificate.
func tlsClient(t *testing.T, ca *testpki.CA, client *testpki.Leaf) *http.Client {
	t.Helper()
	conf := &tls.Config{RootCAs: ca.Pool()}
	if client != nil {
		pair, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// getTLS GETs url and returns the response (body closed) and whether its
// connection was reused.
func getTLS(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, bool) {
	t.Helper()
	var reused bool
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp, reused
}

func serial(resp *http.Response) string { return resp.TLS.PeerCertificates[0].SerialNumber.String() }

// With http.tls the server speaks TLS and HTTP/2; with client_ca_file,
// /api/ requires a verified client certificate and /v2/ does not; a reload
// serves the new certificate to new connections while an open one goes on.
func TestTLSServer(t *testing.T) {
	dir := t.TempDir()
	ca, clients := testpki.NewCA(t, "server CA"), testpki.NewCA(t, "client CA")
	first := ca.Server(t, "127.0.0.1")
	cfg := testConfig(t)
	cfg.HTTP.TLS.CertFile, cfg.HTTP.TLS.KeyFile = first.Files(t, dir, "server")
	cfg.HTTP.TLS.ClientCAFile = filepath.Join(dir, "clients.crt")
	testpki.WriteFile(t, cfg.HTTP.TLS.ClientCAFile, clients.PEM)
	s, logs := newTestServerWith(t, cfg, nil, auth.Options{})
	base, _, _ := runServer(t, s)
	base = "https" + strings.TrimPrefix(base, "http")

	anon := tlsClient(t, ca, nil)
	resp, _ := getTLS(t, anon, base+"/healthz")
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("GET /healthz: %s over %s, want 200 over HTTP/2", resp.Status, resp.Proto)
	}
	resp, _ = getTLS(t, anon, base+"/v2/")
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(ch, `realm="`+base+`/auth/token"`) {
		t.Fatalf("GET /v2/ without a client certificate: %s %q, want 401 with an https realm", resp.Status, ch)
	}
	admin := basic(adminUser, adminPass)
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/robots", nil)
	req.Header.Set(admin[0], admin[1])
	r, err := anon.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body auth.APIError
	_ = json.NewDecoder(r.Body).Decode(&body)
	r.Body.Close()
	if r.StatusCode != http.StatusUnauthorized || body.Code != auth.CodeUnauthorized || !strings.Contains(body.Message, "client certificate") {
		t.Fatalf("/api/ without a client certificate: %s %+v, want 401 naming the client certificate", r.Status, body)
	}
	withCert := tlsClient(t, ca, clients.Client(t, "ops"))
	if resp, _ := getTLS(t, withCert, base+"/api/v1/robots", admin...); resp.StatusCode != http.StatusOK {
		t.Fatalf("/api/ with a client certificate: %s", resp.Status)
	}

	// Reload: the open HTTP/2 connection stays and keeps its certificate;
	// a new connection gets the new one.
	if resp, _ = getTLS(t, anon, base+"/healthz"); serial(resp) != first.Cert.SerialNumber.String() {
		t.Fatal("not serving the first certificate")
	}
	second := ca.Server(t, "127.0.0.1")
	second.Write(t, cfg.HTTP.TLS.CertFile, cfg.HTTP.TLS.KeyFile)
	s.ReloadTLS(context.Background())
	resp, reused := getTLS(t, anon, base+"/healthz")
	if resp.StatusCode != http.StatusOK || !reused || serial(resp) != first.Cert.SerialNumber.String() {
		t.Fatalf("open connection after reload: %s, reused %t, serial %s; want 200 on the same connection", resp.Status, reused, serial(resp))
	}
	resp, reused = getTLS(t, tlsClient(t, ca, nil), base+"/healthz")
	if reused || serial(resp) != second.Cert.SerialNumber.String() {
		t.Fatalf("new connection after reload: serial %s, want the second certificate %s", serial(resp), second.Cert.SerialNumber)
	}
	if !strings.Contains(logs.String(), `"msg":"tls certificate reloaded","trigger":"SIGHUP"`) {
		t.Errorf("no reload in the log:\n%s", logs)
	}
}

// Body deadlines hold over HTTP/2 too (http.ResponseController sets the
// stream's read deadline): a token request whose body stalls is answered
// 408 after http.body_timeout.
func TestTLSHTTP2BodyDeadline(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "server CA")
	cfg := testConfig(t)
	cfg.HTTP.BodyTimeout = time.Second
	cfg.HTTP.TLS.CertFile, cfg.HTTP.TLS.KeyFile = ca.Server(t, "127.0.0.1").Files(t, dir, "server")
	s, _ := newTestServerWith(t, cfg, nil, auth.Options{})
	base, _, _ := runServer(t, s)
	base = "https" + strings.TrimPrefix(base, "http")

	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = pw.Write([]byte("grant_type=pass")) }() // then nothing more
	req, _ := http.NewRequest(http.MethodPost, base+"/auth/token", pr)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	start := time.Now()
	resp, err := tlsClient(t, ca, nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := time.Since(start)
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout || took > 3*time.Second {
		t.Fatalf("stalled body over %s: %s after %s, want 408 after about 1s over HTTP/2", resp.Proto, resp.Status, took)
	}
}
