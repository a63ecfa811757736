// Package harness starts and stops the registry under test for the
// integration tests, and runs the real clients (docker, ctr, crane, skopeo,
// oras, the OCI conformance suite) against it.
//
// The registry under test is Slipway (cmd/slipway, built once per test
// binary by Main) unless SLIPWAY_IT_REGISTRY=stock, which runs the stock
// distribution registry (`registry`, v3.1.2) instead: a reference to debug
// the tests themselves and to compare behaviour.
//
// Environment:
//
//	SLIPWAY_IT_REGISTRY=slipway|stock  which server to test (default slipway)
//	SLIPWAY_IT_BINARY=PATH             use this slipway binary instead of building one
//	SLIPWAY_IT_STOCK_BINARY=PATH       the stock registry binary (default: `registry` on PATH or in GOPATH/bin)
//	SLIPWAY_IT_LOG_DIR=DIR             keep server logs and reports here (default: a temp dir, removed when all tests pass)
//	SLIPWAY_IT_KEEP_LOGS=1             keep the default log dir even when all tests pass
//	SLIPWAY_IT_MINIO=PATH              the MinIO server binary (default: `minio` on PATH or in GOPATH/bin)
//	SLIPWAY_IT_VERSITYGW=PATH          the versitygw binary (default: `versitygw` on PATH or in GOPATH/bin)
//
// Storage is an empty folder (Start) or a MinIO bucket (StartOpts with
// Options.S3): a fresh bucket on the MinIO shared by the whole test binary
// (SharedMinIO, started on first use and stopped by Main), or on a private
// MinIO a test may stop and start (StartMinIO). With S3.VersityGW the
// bucket is on the shared versitygw instead (SharedVersityGW), the second
// S3 implementation.
package harness

import (
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Kinds of registry the harness can run.
const (
	KindSlipway = "slipway"
	KindStock   = "stock"
)

var (
	kind       string
	slipwayBin string // set by Main in slipway mode
	stockBin   string // set by Main in stock mode
	logDir     string // set by Main
	moduleRoot string // set by Main
)

// Kind is the registry under test: KindSlipway or KindStock.
func Kind() string { return kind }

// IsStock reports whether the tests run against the stock distribution
// registry.
func IsStock() bool { return kind == KindStock }

// SlipwayBinary is the slipway binary under test (built by Main), for
// tests that run it directly; it fails the test against the stock registry.
func SlipwayBinary(t testing.TB) string {
	t.Helper()
	if kind != KindSlipway {
		t.Fatalf("this test runs the slipway binary itself: SLIPWAY_IT_REGISTRY=%s cannot run it", kind)
	}
	return slipwayBin
}

// LogDir is the folder server logs and reports are copied to; it outlives
// the tests when one fails.
func LogDir() string { return logDir }

// ModuleRoot is the root of the slipway module (where go.mod is).
func ModuleRoot() string { return moduleRoot }

// Main prepares the registry binary, runs the tests and cleans up. Call it
// from TestMain: os.Exit(harness.Main(m)).
func Main(m *testing.M) int {
	kind = os.Getenv("SLIPWAY_IT_REGISTRY")
	if kind == "" {
		kind = KindSlipway
	}
	if kind != KindSlipway && kind != KindStock {
		fmt.Fprintf(os.Stderr, "harness: SLIPWAY_IT_REGISTRY=%q: want %q or %q\n", kind, KindSlipway, KindStock)
		return 2
	}
	root, err := findModuleRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "harness: %v\n", err)
		return 2
	}
	moduleRoot = root

	removeLogDir := false
	if d := os.Getenv("SLIPWAY_IT_LOG_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Fprintf(os.Stderr, "harness: %v\n", err)
			return 2
		}
		logDir = d
	} else {
		d, err := os.MkdirTemp("", "slipway-it-logs-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "harness: %v\n", err)
			return 2
		}
		logDir = d
		removeLogDir = os.Getenv("SLIPWAY_IT_KEEP_LOGS") == ""
	}

	var buildDir string
	switch kind {
	case KindSlipway:
		if b := os.Getenv("SLIPWAY_IT_BINARY"); b != "" {
			slipwayBin = b
			break
		}
		buildDir, err = os.MkdirTemp("", "slipway-it-bin-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "harness: %v\n", err)
			return 2
		}
		slipwayBin = filepath.Join(buildDir, "slipway")
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", slipwayBin, "./cmd/slipway")
		cmd.Dir = moduleRoot
		out, err := cmd.CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "harness: go build ./cmd/slipway failed: %v\n%s", err, out)
			os.RemoveAll(buildDir)
			return 1
		}
		fmt.Fprintf(os.Stderr, "harness: built %s in %s\n", slipwayBin, time.Since(start).Round(time.Millisecond))
	case KindStock:
		stockBin = os.Getenv("SLIPWAY_IT_STOCK_BINARY")
		if stockBin == "" {
			stockBin, err = lookTool("registry")
			if err != nil {
				fmt.Fprintf(os.Stderr, "harness: stock registry binary not found (%v); run integration/scripts/setup.sh\n", err)
				return 2
			}
		}
	}
	fmt.Fprintf(os.Stderr, "harness: registry under test: %s\n", kind)

	code := m.Run()
	stopShared()

	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	if code == 0 && removeLogDir {
		os.RemoveAll(logDir)
	} else {
		fmt.Fprintf(os.Stderr, "harness: server logs and reports kept in %s\n", logDir)
	}
	return code
}

func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil &&
			regexp.MustCompile(`(?m)^module\s+github\.com/slipway/slipway\s*$`).Match(data) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of github.com/slipway/slipway above %s", dir)
		}
	}
}

// Options selects how StartOpts runs the registry.
type Options struct {
	// S3 runs the registry on a MinIO bucket instead of a folder.
	S3 *S3
	// NoPublicURL leaves http.public_url empty, so Slipway builds Location
	// headers and the token realm from each request's Host (and keeps a
	// client that talks through a proxy on the proxy).
	NoPublicURL bool
	// Lockout sets auth.lockout (nil: Slipway's defaults).
	Lockout *Lockout
	// ExtraConfig is appended to Slipway's YAML configuration (top-level
	// sections the harness does not write itself, such as promotion).
	ExtraConfig string
	// HTTPConfig is appended to Slipway's http section: lines indented
	// by two spaces, such as "  body_timeout: 2s\n".
	HTTPConfig string
}

// S3 is the bucket a registry stores its state in.
type S3 struct {
	// MinIO serves the bucket; nil means SharedMinIO, or SharedVersityGW
	// with VersityGW set.
	MinIO *MinIO
	// VersityGW picks the shared versitygw (posix backend) over the shared
	// MinIO when MinIO is nil: the second S3 implementation.
	VersityGW bool
	// Bucket is the bucket's name; "" creates a fresh one (MinIO.NewBucket).
	Bucket string
	// Redirect answers blob GETs with a 307 to a presigned MinIO URL, on
	// RedirectHost (storage.s3.redirect_endpoint).
	Redirect bool
	// CreateBucket sets storage.s3.create_bucket.
	CreateBucket bool
	// Root is the key prefix inside the bucket (storage.s3.root).
	Root string
	// PartSize is storage.s3.part_size ("" for Slipway's default).
	PartSize string
	// RedirectMinSize is storage.s3.redirect_min_size ("" for Slipway's
	// default, 1 MiB: smaller blobs are proxied).
	RedirectMinSize string
}

// RedirectHost is the host presigned URLs name with Redirect on:
// localhost:PORT, the same MinIO under a host name other than the
// registry's 127.0.0.1. Go's http.Client keeps the Authorization header
// when it follows a redirect to the same host name (ports aside), and
// clients that set it on the request itself (the conformance suite) would
// send their registry token along to MinIO, which refuses a presigned
// request that also carries an Authorization header (400 InvalidRequest,
// "request has multiple authentication types"; S3 does the same). A
// registry and its bucket's endpoint are different hosts in production.
func (s *S3) RedirectHost() string {
	_, port, _ := net.SplitHostPort(s.MinIO.Addr)
	return "localhost:" + port
}

// Registry is one running registry process on 127.0.0.1.
type Registry struct {
	t           testing.TB
	name        string // for log file names
	Host        string // 127.0.0.1:PORT, what clients put in references
	Root        string // filesystem storage root, kept across Kill/Restart ("" on S3)
	S3          *S3    // the bucket on S3 (MinIO and Bucket filled in), else nil
	noPublicURL bool
	LogPath     string // server output, appended across restarts
	cfgPath     string
	secret      string // http.secret, shared with replicas
	// writeDelay is Slipway's storage.test_write_delay (crash tests).
	writeDelay time.Duration
	// signingKey and verificationKeys are auth.signing_key and
	// auth.verification_keys; replicas share them.
	signingKey       string
	verificationKeys []string
	lockout          *Lockout
	extraConfig      string
	httpConfig       string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	waitErr error
	starts  int
}

// Start runs a fresh registry with an empty storage root on a free port,
// waits until it answers, and stops it (SIGTERM) when the test ends. If the
// test failed, the tail of the server's log is shown.
func Start(t testing.TB) *Registry {
	t.Helper()
	return StartOpts(t, Options{})
}

// StartOpts is Start with a choice of storage: an empty folder, or a bucket
// (a fresh one on the shared MinIO unless opts.S3 names one).
func StartOpts(t testing.TB, opts Options) *Registry {
	t.Helper()
	if err := makeAccounts(); err != nil {
		t.Fatalf("making the test accounts: %v", err)
	}
	r := &Registry{t: t, name: sanitize(t.Name()), secret: randomHex(16), noPublicURL: opts.NoPublicURL,
		signingKey: defaultSigningKey(t), lockout: opts.Lockout, extraConfig: opts.ExtraConfig, httpConfig: opts.HTTPConfig}
	if opts.S3 != nil {
		s := *opts.S3
		switch {
		case s.MinIO != nil:
		case s.VersityGW:
			s.MinIO = SharedVersityGW(t)
		default:
			s.MinIO = SharedMinIO(t)
		}
		if s.Bucket == "" {
			s.Bucket = s.MinIO.NewBucket(t)
		}
		r.S3 = &s
	} else {
		r.Root = filepath.Join(t.TempDir(), "data")
		if err := os.MkdirAll(r.Root, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.launch()
	return r
}

// StartReplica starts a second registry process on the same storage (the
// same bucket, or the same folder), with its own port and log, stopped when
// the test ends: two replicas behind one load balancer, as it were.
func (r *Registry) StartReplica(t testing.TB) *Registry {
	t.Helper()
	r2 := &Registry{t: t, name: r.name + "-replica", Root: r.Root, secret: r.secret, writeDelay: r.writeDelay, noPublicURL: r.noPublicURL,
		signingKey: r.signingKey, verificationKeys: r.verificationKeys, lockout: r.lockout, extraConfig: r.extraConfig, httpConfig: r.httpConfig}
	if r.S3 != nil {
		s := *r.S3
		r2.S3 = &s
	}
	r2.launch()
	return r2
}

// Backend is "fs" or "s3".
func (r *Registry) Backend() string {
	if r.S3 != nil {
		return "s3"
	}
	return "fs"
}

// launch prepares the log and config of a new Registry and starts it on a
// free port.
func (r *Registry) launch() {
	t := r.t
	t.Helper()
	f, err := os.CreateTemp(logDir, r.name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	r.LogPath = f.Name()
	r.cfgPath = filepath.Join(t.TempDir(), "config.yml")

	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("stopping %s: %v", kind, err)
		}
		if t.Failed() {
			t.Logf("%s log (%s), last lines:\n%s", kind, r.LogPath, tail(r.LogPath, 40))
		}
	})

	// A free port can be taken between our probe and the server's bind:
	// retry with another one if the server says so.
	for attempt := 0; ; attempt++ {
		r.Host = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		if err := r.writeConfig(); err != nil {
			t.Fatal(err)
		}
		err := r.start()
		if err == nil {
			return
		}
		if attempt < 3 && strings.Contains(tail(r.LogPath, 20), "address already in use") {
			continue
		}
		t.Fatalf("%v\n%s log (%s):\n%s", err, kind, r.LogPath, tail(r.LogPath, 80))
	}
}

func (r *Registry) storageDesc() string {
	if s := r.S3; s != nil {
		return fmt.Sprintf("bucket %s on %s %s (redirect %t)", s.Bucket, s.MinIO.name(), s.MinIO.Addr, s.Redirect)
	}
	return "root " + r.Root
}

// URL is the registry's base URL, http://127.0.0.1:PORT.
func (r *Registry) URL() string { return "http://" + r.Host }

// Ref is a reference on this registry: Ref("it/app:1") = "127.0.0.1:PORT/it/app:1".
func (r *Registry) Ref(repoAndTag string) string { return r.Host + "/" + repoAndTag }

func (r *Registry) writeConfig() error {
	var cfg string
	switch kind {
	case KindStock:
		storage := fmt.Sprintf("  filesystem:\n    rootdirectory: %q\n", r.Root)
		if s := r.S3; s != nil {
			storage = fmt.Sprintf(`  s3:
    accesskey: %q
    secretkey: %q
    region: %q
    regionendpoint: %q
    forcepathstyle: true
    bucket: %q
    secure: false
    rootdirectory: %q
  redirect:
    disable: %t
`, MinIOAccessKey, MinIOSecretKey, MinIORegion, s.MinIO.Endpoint(), s.Bucket, "/"+s.Root, !s.Redirect)
		}
		cfg = fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
storage:
%s  delete:
    enabled: true
http:
  addr: %q
  secret: %q
`, storage, r.Host, r.secret)
	default:
		storage := fmt.Sprintf("  filesystem:\n    root: %q\n", r.Root)
		if s := r.S3; s != nil {
			storage = fmt.Sprintf(`  s3:
    endpoint: %q
    bucket: %q
    access_key: %q
    secret_key: %q
    secure: false
    root: %q
    create_bucket: %t
    redirect: %t
`, s.MinIO.Addr, s.Bucket, MinIOAccessKey, MinIOSecretKey, s.Root, s.CreateBucket, s.Redirect)
			if s.PartSize != "" {
				storage += fmt.Sprintf("    part_size: %q\n", s.PartSize)
			}
			if s.RedirectMinSize != "" {
				storage += fmt.Sprintf("    redirect_min_size: %q\n", s.RedirectMinSize)
			}
			if s.Redirect {
				storage += fmt.Sprintf("    redirect_endpoint: %q\n", s.RedirectHost())
			}
		}
		publicURL := r.URL()
		if r.noPublicURL {
			publicURL = ""
		}
		cfg = fmt.Sprintf(`http:
  addr: %q
  public_url: %q
  secret: %q
%sstorage:
%s  test_write_delay: %s
log:
  level: debug
%s%s`, r.Host, publicURL, r.secret, r.httpConfig, storage, r.writeDelay, r.authConfig(), r.extraConfig)
	}
	return os.WriteFile(r.cfgPath, []byte(cfg), 0o644)
}

func (r *Registry) start() error {
	r.mu.Lock()
	running := r.cmd != nil
	r.mu.Unlock()
	if running {
		return errors.New("registry already running")
	}
	logf, err := os.OpenFile(r.LogPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	r.starts++
	fmt.Fprintf(logf, "===== harness: start #%d of %s on %s, %s, %s\n", r.starts, kind, r.Host, r.storageDesc(), time.Now().Format(time.RFC3339Nano))

	var cmd *exec.Cmd
	switch kind {
	case KindStock:
		cmd = exec.Command(stockBin, "serve", r.cfgPath)
	default:
		cmd = exec.Command(slipwayBin, "serve", "--config", r.cfgPath)
	}
	// The server must listen where the config says, whatever the caller's
	// environment holds.
	cmd.Env = filterEnv(os.Environ(), "SLIPWAY_HTTP_", "SLIPWAY_STORAGE_", "SLIPWAY_LOG_", "SLIPWAY_AUTH_", "SLIPWAY_ADMIN_PASSWORD=", "SLIPWAY_STAGES", "REGISTRY_", "OTEL_")
	if kind == KindStock {
		// distribution v3 exports traces to localhost:4318 unless told not to.
		cmd.Env = append(cmd.Env, "OTEL_TRACES_EXPORTER=none")
	}
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Its own process group (Kill reaches its children); killed with the
	// test binary if that dies without cleaning up (a -timeout panic).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", kind, err)
	}
	done := make(chan struct{})
	r.mu.Lock()
	r.cmd, r.done, r.waitErr = cmd, done, nil
	r.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		r.mu.Lock()
		r.waitErr = err
		r.mu.Unlock()
		close(done)
	}()

	// Slipway answers /healthz; the stock registry has no such route on its
	// main port, so wait for /v2/ there.
	probe := "/healthz"
	if kind == KindStock {
		probe = "/v2/"
	}
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			r.mu.Lock()
			r.cmd = nil
			werr := r.waitErr
			r.mu.Unlock()
			return fmt.Errorf("%s exited before it answered %s: %v", kind, probe, werr)
		default:
		}
		resp, err := client.Get(r.URL() + probe)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			lastErr = fmt.Errorf("GET %s: %s", probe, resp.Status)
		} else {
			lastErr = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Kill()
	return fmt.Errorf("%s did not answer GET %s with 200 within 30s: %v", kind, probe, lastErr)
}

// Stop sends SIGTERM and waits (up to 30s, then SIGKILL). It is a no-op if
// the server is not running. A server that exits with an error after
// SIGTERM is reported.
func (r *Registry) Stop() error {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return nil
	}
	closeIdleClientConns()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-done:
		r.mu.Lock()
		err = r.waitErr
		r.mu.Unlock()
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		err = errors.New("did not exit within 30s of SIGTERM; killed")
	}
	r.mu.Lock()
	r.cmd = nil
	r.mu.Unlock()
	// The stock registry only drains on SIGTERM with http.draintimeout set,
	// and then waits out idle keep-alive connections and exits 1: let it die
	// of the signal instead, and don't count that against it.
	var ee *exec.ExitError
	if kind == KindStock && errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			err = nil
		}
	}
	return err
}

// closeIdleClientConns closes the idle keep-alive connections of the HTTP
// clients in this process (net/http's and go-containerregistry's default
// transports). A connection dialed but never used (the transport dials
// ahead when requests run in parallel) stays "new" on the server side, and
// http.Server.Shutdown waits 5s before it counts such a connection as idle:
// without this every graceful stop after a go-containerregistry push took
// 5s longer.
func closeIdleClientConns() {
	for _, rt := range []http.RoundTripper{http.DefaultTransport, remote.DefaultTransport} {
		if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}

// Kill stops the server with SIGKILL, as a crash would, and waits for it.
func (r *Registry) Kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	r.mu.Lock()
	r.cmd = nil
	r.mu.Unlock()
}

// Restart starts the server again on the same port and storage root (after
// Stop or Kill; a running server is stopped first).
func (r *Registry) Restart() {
	r.t.Helper()
	if err := r.Stop(); err != nil {
		r.t.Logf("stopping before restart: %v", err)
	}
	if err := r.start(); err != nil {
		r.t.Fatalf("restart: %v\n%s log (%s):\n%s", err, kind, r.LogPath, tail(r.LogPath, 80))
	}
}

// SetWriteDelay makes every storage write of Slipway wait d, from the next
// Restart on, so that a Kill lands inside a push. 0 turns it off.
func (r *Registry) SetWriteDelay(d time.Duration) {
	r.t.Helper()
	if kind != KindSlipway {
		r.t.Fatalf("write delays are a Slipway test hook")
	}
	r.writeDelay = d
	if err := r.writeConfig(); err != nil {
		r.t.Fatal(err)
	}
}

// Running reports whether the server process is alive.
func (r *Registry) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// PID is the process id of the running server, 0 when it is not running
// (the soak samples /proc/<pid>/status for its memory).
func (r *Registry) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Logs returns the server's output so far.
func (r *Registry) Logs() string {
	b, _ := os.ReadFile(r.LogPath)
	return string(b)
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// freePortsErr is n distinct free ports outside a test (0 for any it
// could not get: the bind then fails with a clear error). Every listener
// stays open until all are picked, so no port is handed out twice.
func freePortsErr(n int) []int {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			continue
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = cryptorand.Read(b)
	return hex.EncodeToString(b)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for i, l := range lines {
		if len(l) > 500 {
			lines[i] = l[:500] + "..."
		}
	}
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func sanitize(name string) string {
	return regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(name, "_")
}

func filterEnv(env []string, dropPrefixes ...string) []string {
	out := env[:0:0]
outer:
	for _, kv := range env {
		for _, p := range dropPrefixes {
			if strings.HasPrefix(kv, p) {
				continue outer
			}
		}
		out = append(out, kv)
	}
	return out
}
