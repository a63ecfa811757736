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

// The tests run against two S3 implementations, MinIO and versitygw (its
// posix backend), at the endpoints in these variables. For each one not
// set, TestMain starts a server for the run and sets them, so that the
// child processes of RunTwoProcess share that server.
const (
	envEndpoint     = "SLIPWAY_S3_ENDPOINT"
	envAccessKey    = "SLIPWAY_S3_ACCESS_KEY"
	envSecretKey    = "SLIPWAY_S3_SECRET_KEY"
	envMinIOBin     = "SLIPWAY_MINIO_BIN" // optional path to the minio binary
	envVGWEndpoint  = "SLIPWAY_VERSITYGW_ENDPOINT"
	envVGWAccessKey = "SLIPWAY_VERSITYGW_ACCESS_KEY"
	envVGWSecretKey = "SLIPWAY_VERSITYGW_SECRET_KEY"
	envVGWBin       = "SLIPWAY_VERSITYGW_BIN" // optional path to the versitygw binary

	rootUser         = "slipway-test"
	rootPassword     = "slipway-test-secret"
	minioInstall     = "go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
	versitygwInstall = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	for _, srv := range []struct {
		endpoint, access, secret string
		start                    func(dir string) (*s3Server, error)
	}{
		{envEndpoint, envAccessKey, envSecretKey, startMinIO},
		{envVGWEndpoint, envVGWAccessKey, envVGWSecretKey, startVersityGW},
	} {
		if os.Getenv(srv.endpoint) != "" {
			continue
		}
		dir, err := os.MkdirTemp("", "slipway-s3-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "s3 tests:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		s, err := srv.start(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "s3 tests:", err)
			return 1
		}
		defer s.stop()
		os.Setenv(srv.endpoint, s.addr)
		os.Setenv(srv.access, rootUser)
		os.Setenv(srv.secret, rootPassword)
	}
	return m.Run()
}

// target is one S3 implementation the tests run against.
type target struct {
	name                 string
	endpoint             string
	accessKey, secretKey string
	// signPayload is the stores' SignPayload: versitygw (v1.8.0) keeps the
	// bytes of an UNSIGNED-PAYLOAD PUT whose connection broke as a whole
	// object (TestVersityGWTruncatedUnsignedPut); a streaming signature
	// lets it see the body end short.
	signPayload bool
}

func minioTarget() target {
	return target{"minio", os.Getenv(envEndpoint), os.Getenv(envAccessKey), os.Getenv(envSecretKey), false}
}

func versitygwTarget() target {
	return target{"versitygw", os.Getenv(envVGWEndpoint), os.Getenv(envVGWAccessKey), os.Getenv(envVGWSecretKey), true}
}

// eachServer runs f as a subtest per S3 implementation, one after the
// other (the machine's cores are shared with the servers).
func eachServer(t *testing.T, f func(t *testing.T, srv target)) {
	for _, srv := range []target{minioTarget(), versitygwTarget()} {
		t.Run(srv.name, func(t *testing.T) { f(t, srv) })
	}
}

// binary finds a server binary: $envBin, $PATH, then $GOBIN and
// $GOPATH/bin, where `go install` puts it.
func binary(name, envBin, install, envEndpoint, envAccess, envSecret string) (string, error) {
	if p := os.Getenv(envBin); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs := []string{os.Getenv("GOBIN")}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); d != "" && isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s server binary not found in $%s, $PATH, $GOBIN or $GOPATH/bin: "+
		"install it with `%s`, or set %s to a running S3 endpoint (with %s and %s)",
		name, envBin, install, envEndpoint, envAccess, envSecret)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// s3Server is a server process serving one data directory.
type s3Server struct {
	name   string
	addr   string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
}

// startMinIO starts MinIO on free loopback ports and waits until it is live.
func startMinIO(dir string) (*s3Server, error) {
	bin, err := binary("minio", envMinIOBin, minioInstall, envEndpoint, envAccessKey, envSecretKey)
	if err != nil {
		return nil, err
	}
	addrs, err := freeAddrs(2)
	if err != nil {
		return nil, err
	}
	addr, console := addrs[0], addrs[1]
	cmd := exec.Command(bin, "server", "--quiet", "--address", addr, "--console-address", console, dir)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+rootUser, "MINIO_ROOT_PASSWORD="+rootPassword)
	// Live answers 200 before the object layer is up; until then it also
	// sets x-minio-server-status: unavailable and S3 calls fail.
	return startServer("minio", addr, cmd, func() bool {
		resp, err := http.Get("http://" + addr + "/minio/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && resp.Header.Get("X-Minio-Server-Status") != "unavailable"
	})
}

// startVersityGW starts versitygw's posix backend on dir (a filesystem
// with user extended attributes, where it keeps ETags and metadata) on a
// free loopback port, with the same root keys as MinIO.
func startVersityGW(dir string) (*s3Server, error) {
	bin, err := binary("versitygw", envVGWBin, versitygwInstall, envVGWEndpoint, envVGWAccessKey, envVGWSecretKey)
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", addr, "--quiet", "posix", dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+rootUser, "ROOT_SECRET_KEY="+rootPassword)
	return startServer("versitygw", addr, cmd, func() bool { return true })
}

// startServer starts cmd and waits until ready() and a signed S3 call
// both succeed at addr.
func startServer(name, addr string, cmd *exec.Cmd, ready func() bool) (*s3Server, error) {
	srv := &s3Server{name: name, addr: addr, cmd: cmd, out: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = srv.out, srv.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	go func() { _ = cmd.Wait(); close(srv.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for !ready() || !s3Answers(addr) {
		select {
		case <-srv.exited:
			return nil, fmt.Errorf("%s exited before becoming live:\n%s", name, srv.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			srv.stop()
			return nil, fmt.Errorf("%s not live at %s after 60s:\n%s", name, addr, srv.out.String())
		}
	}
	return srv, nil
}

// s3Answers: a signed S3 call succeeds. Health endpoints can say ready
// while S3 calls still get "Server not initialized yet".
func s3Answers(addr string) bool {
	c, err := minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(rootUser, rootPassword, ""), MaxRetries: 1})
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.ListBuckets(ctx)
	return err == nil
}

// stop terminates the server, killing it if it lingers.
func (s *s3Server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func freeAddr() (string, error) {
	addrs, err := freeAddrs(1)
	if err != nil {
		return "", err
	}
	return addrs[0], nil
}

// freeAddrs returns n distinct free loopback addresses: every listener
// stays open until all are picked, so the kernel cannot hand out one port
// twice (MinIO refuses a console address equal to its address).
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
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
func throwawayMinIO(t *testing.T) *s3Server {
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
