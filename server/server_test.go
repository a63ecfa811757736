package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/crypto/bcrypt"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

// logBuffer collects log output; the server writes from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines decodes the JSON log records.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

// failingStore is a store whose Ping fails, as an unreachable backend's does.
type failingStore struct{ storage.Store }

func (failingStore) Ping(context.Context) error {
	return fmt.Errorf("bucket gone: %w", storage.ErrUnavailable)
}

// Test accounts: an admin and a user with grants. Their bcrypt hashes use
// the lowest cost, so tests stay fast.
const (
	adminUser = "ops"
	adminPass = "ops-password"
	ciUser    = "ci"
	ciPass    = "ci-password"
)

func testConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Storage.Filesystem.Root = t.TempDir()
	cfg.Auth.SigningKey = filepath.Join(t.TempDir(), "keys", "token.pem")
	cfg.Auth.Users = []config.User{
		{Name: adminUser, PasswordHash: testHash(t, adminPass), Admin: true},
		{Name: ciUser, PasswordHash: testHash(t, ciPass), Grants: []config.Grant{
			{Repos: "staging/*", Actions: []string{"pull", "push"}},
			{Repos: "production/*", Actions: []string{"pull", "push", "delete"}},
			{Repos: "shared/*", Actions: []string{"pull"}},
		}},
	}
	cfg.Log.Level = "debug"
	// Shutdown tests time the listener's closing; TestRunDrainDelay sets
	// its own.
	cfg.HTTP.DrainDelay = 0
	return cfg
}

func testHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func newTestServer(t *testing.T, store storage.Store) (*Server, *logBuffer) {
	t.Helper()
	cfg := testConfig(t)
	if store == nil {
		st, err := fs.New(cfg.Storage.Filesystem.Root)
		if err != nil {
			t.Fatal(err)
		}
		store = st
	}
	return newTestServerWith(t, cfg, store, auth.Options{})
}

// newTestServerWith wires a server on cfg and store (nil: a filesystem
// store at cfg's root) with auth's test hooks.
func newTestServerWith(t *testing.T, cfg config.Config, store storage.Store, ao auth.Options) (*Server, *logBuffer) {
	t.Helper()
	if store == nil {
		st, err := fs.New(cfg.Storage.Filesystem.Root)
		if err != nil {
			t.Fatal(err)
		}
		store = st
	}
	logs := &logBuffer{}
	s, err := newServerWith(cfg, NewLogger(logs, slog.LevelDebug), store, ao)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, logs
}

func do(h http.Handler, method, target string, hdr http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHealthz(t *testing.T) {
	s, _ := newTestServer(t, nil)
	rec := do(s.Handler(), http.MethodGet, "/healthz", nil)
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Fatalf("GET /healthz = %d %q", rec.Code, rec.Body)
	}
	if rec := do(s.Handler(), http.MethodHead, "/healthz", nil); rec.Code != http.StatusOK {
		t.Fatalf("HEAD /healthz = %d", rec.Code)
	}
}

func TestReadyz(t *testing.T) {
	s, _ := newTestServer(t, nil)
	if rec := do(s.Handler(), http.MethodGet, "/readyz", nil); rec.Code != http.StatusOK {
		t.Fatalf("GET /readyz on a working store = %d %q", rec.Code, rec.Body)
	}

	s, _ = newTestServer(t, failingStore{})
	rec := do(s.Handler(), http.MethodGet, "/readyz", nil)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz on a failing store = %d, want 503", rec.Code)
	}
	var body struct{ Status, Reason string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Status != "unavailable" || !strings.Contains(body.Reason, "bucket gone") {
		t.Fatalf("body = %+v", body)
	}
}

func TestReadyzWhileDraining(t *testing.T) {
	s, _ := newTestServer(t, nil)
	s.draining.Store(true)
	if rec := do(s.Handler(), http.MethodGet, "/readyz", nil); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz while shutting down = %d, want 503", rec.Code)
	}
}

func TestMetrics(t *testing.T) {
	s, _ := newTestServer(t, nil)
	h := s.Handler()
	bearer := http.Header{"Authorization": {"Bearer " + token(t, h, adminUser, adminPass, "repository:library/app:pull")}}
	do(h, http.MethodGet, "/v2/", bearer)
	do(h, http.MethodGet, "/v2/library/app/manifests/latest", bearer)
	do(h, "BREW", "/nowhere", nil)

	rec := do(h, http.MethodGet, "/metrics", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	text := rec.Body.String()
	for _, want := range []string{
		`slipway_http_requests_total{method="GET",route="base",status="200"} 1`,
		`slipway_http_requests_total{method="GET",route="manifest",status="404"} 1`,
		`slipway_http_requests_total{method="OTHER",route="other",status="404"} 1`,
		`slipway_http_request_duration_seconds_bucket{method="GET",route="base",le="+Inf"} 1`,
		`slipway_http_request_bytes_total{method="GET",route="base"}`,
		`slipway_http_response_bytes_total{method="GET",route="base"} 2`, // "{}"
		"slipway_uploads_in_progress",
		"go_goroutines",
		"process_cpu_seconds_total",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestRouteLabel(t *testing.T) {
	cases := map[string]string{
		"/v2":                        "base",
		"/v2/":                       "base",
		"/v2/_catalog":               "catalog",
		"/v2/a/b/c/tags/list":        "tags",
		"/v2/a/blobs/uploads/":       "blob_upload",
		"/v2/a/blobs/uploads/0a1b2c": "blob_upload",
		"/v2/a/b/blobs/sha256:" + strings.Repeat("a", 64): "blob",
		"/v2/a/manifests/latest":                          "manifest",
		"/v2/blobs/manifests/v1":                          "manifest", // a repository named "blobs"
		"/v2/a/referrers/sha256:abc":                      "referrers",
		"/v2/a/garbage":                                   "other",
		"/no/such/route":                                  "other",
	}
	for path, want := range cases {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest(http.MethodGet, path, nil)
		if got := routeLabel(c); got != want {
			t.Errorf("routeLabel(%q) = %q, want %q", path, got, want)
		}
	}

	// Other routes are labelled with their pattern, known only after routing.
	s, _ := newTestServer(t, nil)
	do(s.Handler(), http.MethodGet, "/healthz", nil)
	rec := do(s.Handler(), http.MethodGet, "/metrics", nil)
	if !strings.Contains(rec.Body.String(), `route="/healthz"`) {
		t.Error(`no route="/healthz" in /metrics`)
	}
}

func TestRequestID(t *testing.T) {
	s, _ := newTestServer(t, nil)
	h := s.Handler()

	rec := do(h, http.MethodGet, "/healthz", http.Header{"X-Request-Id": {"abc-123.def_4:5"}})
	if got := rec.Header().Get(RequestIDHeader); got != "abc-123.def_4:5" {
		t.Fatalf("sane id not echoed: %q", got)
	}
	rec = do(h, http.MethodGet, "/healthz", nil)
	generated := rec.Header().Get(RequestIDHeader)
	if !saneRequestID(generated) || len(generated) < 16 {
		t.Fatalf("no usable id generated: %q", generated)
	}
	for _, bad := range []string{"has space", "new\nline", strings.Repeat("x", 129), `"quoted"`} {
		rec = do(h, http.MethodGet, "/healthz", http.Header{"X-Request-Id": {bad}})
		if got := rec.Header().Get(RequestIDHeader); got == bad || !saneRequestID(got) {
			t.Errorf("insane id %q answered with %q", bad, got)
		}
	}
	if rec := do(h, http.MethodGet, "/healthz", nil); rec.Header().Get(RequestIDHeader) == generated {
		t.Fatal("generated ids repeat")
	}
}

func TestAccessLogHasNoSecrets(t *testing.T) {
	s, logs := newTestServer(t, nil)
	hdr := http.Header{
		"Authorization": {"Bearer secret-token-AAA"},
		"X-Request-Id":  {"req-42"},
	}
	rec := do(s.Handler(), http.MethodGet, "/v2/library/app/tags/list?n=10&token=secret-query-BBB", hdr)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status = %d", rec.Code)
	}
	out := logs.String()
	for _, secret := range []string{"secret-token-AAA", "secret-query-BBB", "Bearer", "token=", "n=10"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	var access map[string]any
	for _, l := range logs.lines(t) {
		if l["msg"] == "request" {
			access = l
		}
	}
	if access == nil {
		t.Fatalf("no access line in:\n%s", out)
	}
	want := map[string]any{
		"request_id": "req-42", "method": "GET", "path": "/v2/library/app/tags/list",
		"route": "tags", "status": float64(401), "remote": "192.0.2.1:1234",
	}
	for k, v := range want {
		if access[k] != v {
			t.Errorf("access[%q] = %v, want %v", k, access[k], v)
		}
	}
	for _, k := range []string{"bytes_in", "bytes_out", "duration_ms", "level", "time"} {
		if _, ok := access[k]; !ok {
			t.Errorf("access line lacks %q: %v", k, access)
		}
	}
}

func TestRecoverAnswers500WithoutStack(t *testing.T) {
	s, logs := newTestServer(t, nil)
	s.engine.GET("/boom", func(*gin.Context) { panic("kaboom") })
	rec := do(s.Handler(), http.MethodGet, "/boom", http.Header{"X-Request-Id": {"boom-1"}})
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d", rec.Code)
	}
	if body := rec.Body.String(); strings.Contains(body, "kaboom") || strings.Contains(body, "goroutine") {
		t.Fatalf("panic details leaked to the client: %q", body)
	}
	out := logs.String()
	if !strings.Contains(out, "kaboom") || !strings.Contains(out, `"request_id":"boom-1"`) {
		t.Fatalf("panic not logged with its request id:\n%s", out)
	}
	if !strings.Contains(out, `"status":500`) {
		t.Fatalf("access line does not show the 500:\n%s", out)
	}
}

func TestRecoverAfterWriteDropsConnection(t *testing.T) {
	s, _ := newTestServer(t, nil)
	s.engine.GET("/half", func(c *gin.Context) {
		// Chunked, and flushed: the client would take a clean end of
		// stream as the whole body.
		_, _ = c.Writer.Write([]byte("partial"))
		c.Writer.Flush()
		panic("midway")
	})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/half")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("a response broken by a panic arrived as if complete")
	}
}

func TestNew(t *testing.T) {
	cfg := testConfig(t)
	s, err := New(cfg, NewLogger(io.Discard, slog.LevelInfo))
	if err != nil {
		t.Fatal(err)
	}
	if rec := do(s.Handler(), http.MethodGet, "/readyz", nil); rec.Code != http.StatusOK {
		t.Fatalf("readyz = %d %q", rec.Code, rec.Body)
	}
	cfg.Log.Level = "loud"
	if _, err := New(cfg, NewLogger(io.Discard, slog.LevelInfo)); err == nil {
		t.Fatal("New accepted an invalid config")
	}
}

// runServer starts Run on 127.0.0.1:0 and returns its base URL and result.
func runServer(t *testing.T, s *Server) (string, context.CancelFunc, <-chan error) {
	t.Helper()
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	if s.Addr() == "" || strings.HasSuffix(s.Addr(), ":0") {
		t.Fatalf("Addr() = %q after Listen", s.Addr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(cancel)
	return "http://" + s.Addr(), cancel, done
}

func TestRunServesAndShutsDownGracefully(t *testing.T) {
	s, _ := newTestServer(t, nil)
	started, release := make(chan struct{}), make(chan struct{})
	s.engine.GET("/slow", func(c *gin.Context) {
		close(started)
		<-release
		c.String(http.StatusOK, "finished")
	})
	base, stop, done := runServer(t, s)

	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz over TCP = %d", resp.StatusCode)
	}

	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			slow <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(b)
	}()
	<-started
	stop() // as SIGTERM does via main's context

	// New connections are refused while the in-flight request still runs.
	time.Sleep(50 * time.Millisecond)
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("server still accepting after shutdown began")
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) before the in-flight request finished", err)
	default:
	}
	close(release)
	if got := <-slow; got != "finished" {
		t.Fatalf("in-flight request got %q", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

// TestRunDrainDelay: after the shutdown signal /readyz is 503 at once,
// other requests are still served (new connections too) for
// http.drain_delay, and only then does the listener close.
func TestRunDrainDelay(t *testing.T) {
	s, _ := newTestServer(t, nil)
	const delay = 600 * time.Millisecond
	s.cfg.HTTP.DrainDelay = delay
	base, stop, done := runServer(t, s)
	status := func(path string) int {
		t.Helper()
		// A new connection each time: the listener itself must accept.
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
		resp, err := c.Get(base + path)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := status("/readyz"); st != http.StatusOK {
		t.Fatalf("readyz before shutdown = %d", st)
	}
	stopped := time.Now()
	stop()
	time.Sleep(50 * time.Millisecond)
	if st := status("/readyz"); st != http.StatusServiceUnavailable {
		t.Errorf("readyz while draining = %d, want 503", st)
	}
	if st := status("/healthz"); st != http.StatusOK {
		t.Errorf("healthz while draining = %d, want 200 (still serving)", st)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) %s after the signal, before the drain delay", err, time.Since(stopped))
	default:
	}
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if el := time.Since(stopped); el < delay {
		t.Errorf("Run returned %s after the signal, want at least the drain delay %s", el, delay)
	}
	if st := status("/healthz"); st != -1 {
		t.Errorf("healthz after shutdown = %d, want a refused connection", st)
	}
}

func TestRunCutsOffAfterShutdownTimeout(t *testing.T) {
	s, logs := newTestServer(t, nil)
	s.cfg.HTTP.ShutdownTimeout = 100 * time.Millisecond
	started := make(chan struct{})
	s.engine.GET("/stuck", func(c *gin.Context) {
		close(started)
		<-c.Request.Context().Done() // ends only when the connection is closed
	})
	base, stop, done := runServer(t, s)
	go func() {
		if resp, err := http.Get(base + "/stuck"); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil after a cut-off shutdown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the shutdown timeout")
	}
	if !strings.Contains(logs.String(), "shutdown timeout passed") {
		t.Fatal("cut-off not logged")
	}
}

func TestRunListenError(t *testing.T) {
	s, _ := newTestServer(t, nil)
	s.cfg.HTTP.Addr = "256.0.0.1:1"
	if err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Run = %v, want a listen error", err)
	}
}
