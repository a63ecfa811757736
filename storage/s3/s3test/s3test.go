// Package s3test gives tests outside storage/s3 a storage.Store on a real
// S3 server: the one at $SLIPWAY_S3_ENDPOINT (with $SLIPWAY_S3_ACCESS_KEY
// and $SLIPWAY_S3_SECRET_KEY) when set, else a MinIO server started for
// the test and stopped when it ends ($SLIPWAY_MINIO_BIN, $PATH, $GOBIN or
// $GOPATH/bin). Each call gets a new bucket.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/s3"
)

const (
	rootUser     = "slipway-test"
	rootPassword = "slipway-test-secret"
)

// Server is an S3 endpoint for tests.
type Server struct {
	endpoint, access, secret string
}

// Start returns the server at $SLIPWAY_S3_ENDPOINT, or starts MinIO for
// the test (stopped when it ends). A server that cannot start fails the
// test with the reason.
func Start(t testing.TB) *Server {
	t.Helper()
	if e := os.Getenv("SLIPWAY_S3_ENDPOINT"); e != "" {
		return &Server{e, os.Getenv("SLIPWAY_S3_ACCESS_KEY"), os.Getenv("SLIPWAY_S3_SECRET_KEY")}
	}
	return &Server{startMinIO(t), rootUser, rootPassword}
}

// Store returns a store on a new bucket of the server.
func (s *Server) Store(t testing.TB) storage.Store {
	t.Helper()
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := s3.New(ctx, s3.Config{
		Endpoint: s.endpoint, Bucket: "s3test-" + hex.EncodeToString(suffix), Region: "us-east-1",
		AccessKey: s.access, SecretKey: s.secret, CreateBucket: true,
	})
	if err != nil {
		t.Fatalf("s3 store on %s: %v", s.endpoint, err)
	}
	return st
}

// Store is Start(t).Store(t).
func Store(t testing.TB) storage.Store {
	t.Helper()
	return Start(t).Store(t)
}

// startMinIO starts MinIO on a free loopback port with its data in the
// test's temp dir, waits until it serves, and stops it at the test's end.
func startMinIO(t testing.TB) string {
	t.Helper()
	bin, err := minioBinary()
	if err != nil {
		t.Fatal(err)
	}
	addr, console := freeAddrs(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "server", "--quiet", "--address", addr, "--console-address", console, filepath.Join(dir, "data"))
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+rootUser, "MINIO_ROOT_PASSWORD="+rootPassword)
	logPath := filepath.Join(dir, "minio.log")
	out, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && resp.Header.Get("X-Minio-Server-Status") != "unavailable" {
				return addr
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("minio exited before becoming live:\n%s", b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("minio not live at %s after 60s", addr)
		}
	}
}

func minioBinary() (string, error) {
	if p := os.Getenv("SLIPWAY_MINIO_BIN"); p != "" {
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
		p := filepath.Join(d, "minio")
		if fi, err := os.Stat(p); d != "" && err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("minio binary not found in $SLIPWAY_MINIO_BIN, $PATH, $GOBIN or $GOPATH/bin (bash integration/scripts/setup.sh installs it)")
}

// freeAddrs returns two distinct free loopback addresses (both listeners
// stay open until both are picked).
func freeAddrs(t testing.TB) (string, string) {
	t.Helper()
	var addrs [2]string
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs[0], addrs[1]
}
