package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// StartMinIOCluster starts a distributed MinIO for one test: n server
// processes ("nodes"), one drive (a folder in the test's temp dir) each,
// which erasure-code every object across the n drives (with 4 drives: 2
// data and 2 parity shards, so one node can be lost for reads and writes).
// Every node serves the whole S3 API. They are stopped when the test ends;
// a test may Stop, Kill or Start one node.
//
// The nodes listen on 127.0.0.1, unless MinIO would take the host for a
// container (/.dockerenv or /run/.containerenv): there MinIO waits forever
// for a loopback endpoint to "resolve to a valid IP" (its
// hostResolveToLocalhost), so the nodes listen on this host's first
// non-loopback IPv4 address instead.
func StartMinIOCluster(t testing.TB, n int) []*MinIO {
	t.Helper()
	host, err := minioClusterHost()
	if err != nil {
		t.Fatal(err)
	}
	nodes := make([]*MinIO, n)
	peers := make([]string, n)
	ports := freePortsErr(2 * n)
	for i := range nodes {
		m := &MinIO{DataDir: filepath.Join(t.TempDir(), fmt.Sprintf("drive%d", i+1))}
		if err := os.MkdirAll(m.DataDir, 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.CreateTemp(logDir, fmt.Sprintf("%s-minio%d-*.log", Sanitize(t.Name()), i+1))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		m.LogPath = f.Name()
		m.Addr = net.JoinHostPort(host, fmt.Sprint(ports[2*i]))
		m.console = fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])
		peers[i] = "http://" + m.Addr + m.DataDir
		nodes[i] = m
	}
	for i, m := range nodes {
		m.peers = peers
		t.Cleanup(func() {
			_ = m.stop(false)
			if t.Failed() {
				t.Logf("minio node %d log (%s), last lines:\n%s", i+1, m.LogPath, tail(m.LogPath, 20))
			}
		})
	}
	// The nodes wait for each other: start all, then wait for each.
	start := time.Now()
	dones := make([]chan struct{}, n)
	for i, m := range nodes {
		if dones[i], err = m.spawn(); err != nil {
			t.Fatalf("starting minio node %d: %v", i+1, err)
		}
	}
	for i, m := range nodes {
		if err := m.waitLive(dones[i]); err != nil {
			t.Fatalf("minio node %d: %v", i+1, err)
		}
	}
	// Each node judges write quorum for itself: a replica may talk to any
	// of them first (its start-up probe writes).
	for i, m := range nodes {
		if err := waitClusterHealthy(m); err != nil {
			t.Fatalf("minio node %d: %v", i+1, err)
		}
	}
	// A 200 from /minio/health/cluster is not enough: a node may still
	// answer a PUT with 503 SlowDownWrite (no write quorum yet, seen in CI
	// a few seconds after every node said healthy), and a replica whose
	// start-up probe gets that exits. Live means a PUT succeeds through
	// every node.
	if err := waitWritable(t, nodes); err != nil {
		t.Fatal(err)
	}
	t.Logf("distributed minio: %d nodes (%s) live in %s", n, strings.Join(peers, " "), time.Since(start).Round(time.Millisecond))
	return nodes
}

// waitWritable creates a bucket and waits until an object can be written
// and deleted through each node in turn.
func waitWritable(t testing.TB, nodes []*MinIO) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const bucket = "warm-up"
	err := retry(ctx, func() error {
		err := nodes[0].Client(t).MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: MinIORegion})
		if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
			return nil // an earlier try made it and its answer was lost
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("distributed minio: creating bucket %s through node 1: %w", bucket, err)
	}
	for i, m := range nodes {
		c := m.Client(t)
		err := retry(ctx, func() error {
			if _, err := c.PutObject(ctx, bucket, "probe", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
				return err
			}
			return c.RemoveObject(ctx, bucket, "probe", minio.RemoveObjectOptions{})
		})
		if err != nil {
			return fmt.Errorf("distributed minio: node %d not writable within 60s: %w", i+1, err)
		}
	}
	return nil
}

// retry calls f every 100 ms until it succeeds or ctx ends, and returns
// f's last error.
func retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitClusterHealthy waits until m reports that the cluster has write
// quorum (GET /minio/health/cluster: 200).
func waitClusterHealthy(m *MinIO) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := client.Get(m.Endpoint() + "/minio/health/cluster")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("distributed minio not healthy within 60s (GET /minio/health/cluster: %s)", last)
}

// minioClusterHost is the address distributed MinIO nodes listen on (see
// StartMinIOCluster).
func minioClusterHost() (string, error) {
	container := false
	for _, f := range []string{"/.dockerenv", "/run/.containerenv"} {
		if _, err := os.Stat(f); err == nil {
			container = true
		}
	}
	if !container && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return "127.0.0.1", nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "", fmt.Errorf("distributed minio in a container needs a non-loopback IPv4 address, and this host has none")
}
