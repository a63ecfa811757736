package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIO credentials of every server the harness starts.
const (
	MinIOAccessKey = "slipway-it"
	MinIOSecretKey = "slipway-it-secret-key"
	// MinIORegion is MinIO's default region.
	MinIORegion = "us-east-1"
)

// MinIO is one S3 server process on 127.0.0.1 serving one data folder:
// MinIO, or versitygw's posix backend (SharedVersityGW), the second S3
// implementation Slipway is tested on. The shared one (SharedMinIO,
// SharedVersityGW) runs for the whole test binary; a private one
// (StartMinIO) belongs to one test, which may stop and start it again on
// the same port and folder to simulate an outage.
type MinIO struct {
	Addr    string // 127.0.0.1:PORT of the S3 API
	DataDir string // kept across Stop/Start
	LogPath string // server output, appended across restarts

	shared    bool
	versitygw bool // versitygw instead of MinIO
	console   string
	// peers are the endpoints of every node of a distributed MinIO
	// (StartMinIOCluster), this one's included; nil for a single server.
	peers []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
}

// sharedServer is one server shared by the test binary.
type sharedServer struct {
	versitygw bool
	once      sync.Once
	srv       *MinIO
	err       error
	dir       string
}

var (
	sharedMinIO     = &sharedServer{}
	sharedVersityGW = &sharedServer{versitygw: true}
)

// SharedMinIO is the MinIO server of this test binary: started on first
// use (once), stopped by Main when the tests are over. Tests must not stop
// it; give each test its own bucket (NewBucket). If MinIO cannot start,
// every test that asks for it fails with the reason.
func SharedMinIO(t testing.TB) *MinIO { return sharedMinIO.get(t) }

// SharedVersityGW is the versitygw server (posix backend) of this test
// binary, under the same rules as SharedMinIO and with the same
// credentials.
func SharedVersityGW(t testing.TB) *MinIO { return sharedVersityGW.get(t) }

func (sh *sharedServer) get(t testing.TB) *MinIO {
	t.Helper()
	m := &MinIO{shared: true, versitygw: sh.versitygw}
	sh.once.Do(func() {
		// A temp dir on the local disk: versitygw keeps ETags in user
		// extended attributes, which it needs the filesystem to support.
		sh.dir, sh.err = os.MkdirTemp("", "slipway-it-"+m.name()+"-")
		if sh.err != nil {
			return
		}
		m.DataDir, m.LogPath = sh.dir, filepath.Join(logDir, m.name()+"-shared.log")
		start := time.Now()
		if sh.err = m.startFresh(); sh.err == nil {
			sh.srv = m
			fmt.Fprintf(os.Stderr, "harness: shared %s on %s (data %s) live in %s\n", m.name(), m.Addr, m.DataDir, time.Since(start).Round(time.Millisecond))
		}
	})
	if sh.err != nil {
		t.Fatalf("shared %s: %v", m.name(), sh.err)
	}
	return sh.srv
}

// stopShared ends the shared servers that were started (Main calls it).
func stopShared() {
	for _, sh := range []*sharedServer{sharedMinIO, sharedVersityGW} {
		if sh.srv != nil {
			_ = sh.srv.stop(false)
		}
		if sh.dir != "" {
			os.RemoveAll(sh.dir)
		}
	}
}

// name is the server's program: "minio" or "versitygw".
func (m *MinIO) name() string {
	if m.versitygw {
		return "versitygw"
	}
	return "minio"
}

// StartMinIO starts a private MinIO server for one test, with an empty
// data folder in the test's temp dir, and stops it when the test ends.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	m := &MinIO{DataDir: filepath.Join(t.TempDir(), "minio")}
	if err := os.MkdirAll(m.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(logDir, Sanitize(t.Name())+"-minio-*.log")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	m.LogPath = f.Name()
	t.Cleanup(func() {
		_ = m.stop(false)
		if t.Failed() {
			t.Logf("minio log (%s), last lines:\n%s", m.LogPath, tail(m.LogPath, 20))
		}
	})
	if err := m.startFresh(); err != nil {
		t.Fatalf("starting MinIO: %v", err)
	}
	return m
}

// startFresh picks free ports (retrying if one is taken meanwhile) and starts.
func (m *MinIO) startFresh() error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		ports := freePortsErr(2)
		m.Addr, m.console = fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
		if err = m.start(); err == nil {
			return nil
		}
		if !strings.Contains(tail(m.LogPath, 20), "already in use") {
			return err
		}
	}
	return err
}

// Endpoint is the S3 endpoint URL, http://127.0.0.1:PORT.
func (m *MinIO) Endpoint() string { return "http://" + m.Addr }

// command is the server's command line and environment.
func (m *MinIO) command() (*exec.Cmd, error) {
	env, tool := "SLIPWAY_IT_MINIO", "minio"
	if m.versitygw {
		env, tool = "SLIPWAY_IT_VERSITYGW", "versitygw"
	}
	bin := os.Getenv(env)
	if bin == "" {
		var err error
		if bin, err = lookTool(tool); err != nil {
			return nil, fmt.Errorf("%s server binary: %v; %s (or set %s)", tool, err, setupHint, env)
		}
	}
	if m.versitygw {
		cmd := exec.Command(bin, "--port", m.Addr, "--quiet", "posix", m.DataDir)
		cmd.Env = append(FilterEnv(FilterEnv(os.Environ(), "VGW_"), "ROOT_"),
			"ROOT_ACCESS_KEY="+MinIOAccessKey,
			"ROOT_SECRET_KEY="+MinIOSecretKey,
		)
		return cmd, nil
	}
	drives := []string{m.DataDir}
	if m.peers != nil {
		drives = m.peers
	}
	cmd := exec.Command(bin, append([]string{"server", "--quiet", "--address", m.Addr, "--console-address", m.console}, drives...)...)
	cmd.Env = append(FilterEnv(os.Environ(), "MINIO_"),
		"MINIO_ROOT_USER="+MinIOAccessKey,
		"MINIO_ROOT_PASSWORD="+MinIOSecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	if m.peers != nil {
		// A distributed node's drive is a folder on the root disk, which
		// MinIO refuses outside CI mode.
		cmd.Env = append(cmd.Env, "MINIO_CI_CD=1")
	}
	return cmd, nil
}

// start spawns the server and waits until it is live.
func (m *MinIO) start() error {
	done, err := m.spawn()
	if err != nil {
		return err
	}
	return m.waitLive(done)
}

// spawn starts the server process without waiting for it; done is closed
// when it exits.
func (m *MinIO) spawn() (chan struct{}, error) {
	cmd, err := m.command()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.cmd != nil {
		m.mu.Unlock()
		return nil, errors.New(m.name() + " already running")
	}
	m.mu.Unlock()
	logf, err := os.OpenFile(m.LogPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	m.starts++
	fmt.Fprintf(logf, "===== harness: start #%d of %s on %s, data %s, %s\n", m.starts, m.name(), m.Addr, m.DataDir, time.Now().Format(time.RFC3339Nano))
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group (Kill reaches its children); killed with the
	// test binary if that dies without cleaning up (a -timeout panic).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	done := make(chan struct{})
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	return done, nil
}

// waitLive waits (60s at most) until the spawned server answers S3 calls;
// done is spawn's.
func (m *MinIO) waitLive(done chan struct{}) error {
	deadline := time.Now().Add(60 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			m.mu.Lock()
			m.cmd = nil
			m.mu.Unlock()
			return fmt.Errorf("%s exited before it was live:\n%s", m.name(), tail(m.LogPath, 20))
		default:
		}
		if lastErr = m.live(); lastErr == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = m.stop(true)
	return fmt.Errorf("%s not live on %s within 60s: %v\n%s", m.name(), m.Addr, lastErr, tail(m.LogPath, 20))
}

// live tells whether S3 calls work yet.
func (m *MinIO) live() error {
	if !m.versitygw {
		// Live answers 200 before the object layer is up; until then it
		// also sets x-minio-server-status: unavailable and S3 calls fail.
		client := &http.Client{Timeout: 2 * time.Second}
		resp, err := client.Get(m.Endpoint() + "/minio/health/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if status := resp.Header.Get("X-Minio-Server-Status"); resp.StatusCode != http.StatusOK || status == "unavailable" {
			return fmt.Errorf("GET /minio/health/ready: %s (server status %q)", resp.Status, status)
		}
	}
	// Health can say ready while S3 calls still get "Server not
	// initialized yet": wait for a signed call to work.
	c, err := minio.New(m.Addr, &minio.Options{Creds: credentials.NewStaticV4(MinIOAccessKey, MinIOSecretKey, ""), MaxRetries: 1})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.ListBuckets(ctx)
	return err
}

// Stop ends a private MinIO with SIGTERM (SIGKILL after 15s) and waits.
// The shared one cannot be stopped.
func (m *MinIO) Stop() error {
	if m.shared {
		return errors.New("the shared MinIO cannot be stopped by a test: use StartMinIO")
	}
	return m.stop(false)
}

// Kill ends a private MinIO with SIGKILL, as a crash would, and waits.
func (m *MinIO) Kill() error {
	if m.shared {
		return errors.New("the shared MinIO cannot be killed by a test: use StartMinIO")
	}
	return m.stop(true)
}

func (m *MinIO) stop(kill bool) error {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if kill {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	} else {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	m.mu.Lock()
	m.cmd = nil
	m.mu.Unlock()
	return nil
}

// Start runs a stopped private MinIO again, on the same port and data
// folder, and waits until it is live.
func (m *MinIO) Start() error {
	if m.shared {
		return errors.New("the shared MinIO is started by the harness")
	}
	return m.start()
}

// Client is a minio-go client with the root credentials (to create buckets
// and look inside them).
func (m *MinIO) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(m.Addr, &minio.Options{
		Creds:  credentials.NewStaticV4(MinIOAccessKey, MinIOSecretKey, ""),
		Region: MinIORegion,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewBucket creates an empty bucket named after the test (plus a random
// suffix) and returns its name.
func (m *MinIO) NewBucket(t testing.TB) string {
	t.Helper()
	name := BucketName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{Region: MinIORegion}); err != nil {
		t.Fatalf("creating bucket %s on %s: %v", name, m.Addr, err)
	}
	return name
}

// BucketName is a fresh valid bucket name derived from the test's name
// (3-63 characters of [a-z0-9-]); no bucket is created.
func BucketName(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			if s := b.String(); s != "" && !strings.HasSuffix(s, "-") {
				b.WriteByte('-')
			}
		}
	}
	base := strings.Trim(b.String(), "-")
	if len(base) > 45 {
		base = strings.Trim(base[:45], "-")
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	return "it-" + base + "-" + hex.EncodeToString(suffix)
}

// Objects lists every object key in a bucket under prefix, in order.
func (m *MinIO) Objects(t testing.TB, bucket, prefix string) []minio.ObjectInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []minio.ObjectInfo
	for o := range m.Client(t).ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("listing %s/%s: %v", bucket, prefix, o.Err)
		}
		out = append(out, o)
	}
	return out
}
