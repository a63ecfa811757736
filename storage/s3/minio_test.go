package s3_test

import (
	"bytes"
	"context"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The tests run against the S3 endpoint in these variables. When it is not
// set, TestMain starts a MinIO server for the run and sets them, so that
// the child processes of RunTwoProcess share that server.
const (
	envEndpoint  = "SLIPWAY_S3_ENDPOINT"
	envAccessKey = "SLIPWAY_S3_ACCESS_KEY"
	envSecretKey = "SLIPWAY_S3_SECRET_KEY"
	envMinIOBin  = "SLIPWAY_MINIO_BIN" // optional path to the minio binary

	rootUser     = "slipway-test"
	rootPassword = "slipway-test-secret"
	minioInstall = "go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if os.Getenv(envEndpoint) != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "slipway-minio-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3 tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, err := startMinIO(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3 tests:", err)
		return 1
	}
	defer srv.stop()
	os.Setenv(envEndpoint, srv.addr)
	os.Setenv(envAccessKey, rootUser)
	os.Setenv(envSecretKey, rootPassword)
	return m.Run()
}

// minioBinary finds the minio server binary: $SLIPWAY_MINIO_BIN, $PATH,
// then $GOBIN and $GOPATH/bin, where `go install` puts it.
func minioBinary() (string, error) {
	if p := os.Getenv(envMinIOBin); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	dirs := []string{os.Getenv("GOBIN")}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "minio"); d != "" && isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("minio server binary not found in $%s, $PATH, $GOBIN or $GOPATH/bin: "+
		"install it with `%s`, or set %s to a running S3 endpoint (with %s and %s)",
		envMinIOBin, minioInstall, envEndpoint, envAccessKey, envSecretKey)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// minioServer is a MinIO process serving one data directory.
type minioServer struct {
	addr   string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

// startMinIO starts MinIO on free loopback ports and waits until it is live.
func startMinIO(dir string) (*minioServer, error) {
	bin, err := minioBinary()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	console, err := freeAddr()
	if err != nil {
		return nil, err
	}
	srv := &minioServer{addr: addr, out: &syncBuffer{}, exited: make(chan struct{})}
	srv.cmd = exec.Command(bin, "server", "--quiet", "--address", addr, "--console-address", console, dir)
	srv.cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+rootUser, "MINIO_ROOT_PASSWORD="+rootPassword)
	srv.cmd.Stdout, srv.cmd.Stderr = srv.out, srv.out
	if err := srv.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() { _ = srv.cmd.Wait(); close(srv.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Live answers 200 before the object layer is up; until then it
		// also sets x-minio-server-status: unavailable and S3 calls fail.
		resp, err := http.Get("http://" + addr + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && resp.Header.Get("X-Minio-Server-Status") != "unavailable" && s3Answers(addr) {
				return srv, nil
			}
		}
		select {
		case <-srv.exited:
			return nil, fmt.Errorf("minio exited before becoming live:\n%s", srv.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			srv.stop()
			return nil, fmt.Errorf("minio not live at %s after 60s:\n%s", addr, srv.out.String())
		}
	}
}

// s3Answers: a signed S3 call succeeds. Health endpoints can say ready
// while S3 calls still get "Server not initialized yet".
func s3Answers(addr string) bool {
	c, err := minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(rootUser, rootPassword, "")})
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.ListBuckets(ctx)
	return err == nil
}

// stop terminates the server, killing it if it lingers.
func (s *minioServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// syncBuffer collects a process's output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// throwawayMinIO starts a private MinIO for a test that will stop it.
func throwawayMinIO(t *testing.T) *minioServer {
	t.Helper()
	srv, err := startMinIO(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	return srv
}

// waitCtx is a context for setup work that must not hang a test forever.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
