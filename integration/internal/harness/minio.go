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

// MinIO is one MinIO server process on 127.0.0.1 serving one data folder.
// The shared one (SharedMinIO) runs for the whole test binary; a private
// one (StartMinIO) belongs to one test, which may stop and start it again
// on the same port and folder to simulate an outage.
type MinIO struct {
	Addr    string // 127.0.0.1:PORT of the S3 API
	DataDir string // kept across Stop/Start
	LogPath string // server output, appended across restarts

	shared  bool
	console string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
}

var (
	sharedOnce  sync.Once
	sharedMinIO *MinIO
	sharedErr   error
	sharedDir   string
)

// SharedMinIO is the MinIO server of this test binary: started on first
// use (once), stopped by Main when the tests are over. Tests must not stop
// it; give each test its own bucket (NewBucket). If MinIO cannot start,
// every test that asks for it fails with the reason.
func SharedMinIO(t testing.TB) *MinIO {
	t.Helper()
	sharedOnce.Do(func() {
		var err error
		sharedDir, err = os.MkdirTemp("", "slipway-it-minio-")
		if err != nil {
			sharedErr = err
			return
		}
		m := &MinIO{DataDir: sharedDir, shared: true, LogPath: filepath.Join(logDir, "minio-shared.log")}
		start := time.Now()
		if sharedErr = m.startFresh(); sharedErr == nil {
			sharedMinIO = m
			fmt.Fprintf(os.Stderr, "harness: shared MinIO on %s (data %s) live in %s\n", m.Addr, m.DataDir, time.Since(start).Round(time.Millisecond))
		}
	})
	if sharedErr != nil {
		t.Fatalf("shared MinIO: %v", sharedErr)
	}
	return sharedMinIO
}

// stopShared ends the shared MinIO, if it was started (Main calls it).
func stopShared() {
	if sharedMinIO != nil {
		_ = sharedMinIO.stop(false)
	}
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
}

// StartMinIO starts a private MinIO server for one test, with an empty
// data folder in the test's temp dir, and stops it when the test ends.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	m := &MinIO{DataDir: filepath.Join(t.TempDir(), "minio")}
	if err := os.MkdirAll(m.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(logDir, sanitize(t.Name())+"-minio-*.log")
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
		m.Addr, m.console = fmt.Sprintf("127.0.0.1:%d", freePortErr()), fmt.Sprintf("127.0.0.1:%d", freePortErr())
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

func (m *MinIO) start() error {
	bin := os.Getenv("SLIPWAY_IT_MINIO")
	if bin == "" {
		var err error
		if bin, err = lookTool("minio"); err != nil {
			return fmt.Errorf("minio server binary: %v; %s (or set SLIPWAY_IT_MINIO)", err, setupHint)
		}
	}
	m.mu.Lock()
	if m.cmd != nil {
		m.mu.Unlock()
		return errors.New("minio already running")
	}
	m.mu.Unlock()
	logf, err := os.OpenFile(m.LogPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	m.starts++
	fmt.Fprintf(logf, "===== harness: start #%d of minio on %s, data %s, %s\n", m.starts, m.Addr, m.DataDir, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, "server", "--quiet", "--address", m.Addr, "--console-address", m.console, m.DataDir)
	cmd.Env = append(filterEnv(os.Environ(), "MINIO_"),
		"MINIO_ROOT_USER="+MinIOAccessKey,
		"MINIO_ROOT_PASSWORD="+MinIOSecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group (Kill reaches its children); killed with the
	// test binary if that dies without cleaning up (a -timeout panic).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", bin, err)
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

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			m.mu.Lock()
			m.cmd = nil
			m.mu.Unlock()
			return fmt.Errorf("minio exited before it was live:\n%s", tail(m.LogPath, 20))
		default:
		}
		// Live answers 200 before the object layer is up; until then it
		// also sets x-minio-server-status: unavailable and S3 calls fail.
		resp, err := client.Get(m.Endpoint() + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			status := resp.Header.Get("X-Minio-Server-Status")
			if resp.StatusCode == http.StatusOK && status != "unavailable" {
				// Health can say ready while S3 calls still get "Server
				// not initialized yet": wait for a signed call to work.
				c, err := minio.New(m.Addr, &minio.Options{Creds: credentials.NewStaticV4(MinIOAccessKey, MinIOSecretKey, "")})
				if err == nil {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, err = c.ListBuckets(ctx)
					cancel()
				}
				if err == nil {
					return nil
				}
				status = err.Error()
			}
			lastErr = fmt.Errorf("GET /minio/health/ready: %s (server status %q)", resp.Status, status)
		} else {
			lastErr = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = m.stop(true)
	return fmt.Errorf("minio not live on %s within 60s: %v\n%s", m.Addr, lastErr, tail(m.LogPath, 20))
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

// Running reports whether the MinIO process is alive.
func (m *MinIO) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
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
