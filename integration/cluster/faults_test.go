package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/integration/internal/harness"
)

// downWithin is how soon HAProxy must mark a dead or draining replica
// down: Fall failed checks Inter apart, plus one interval for the phase of
// the first check and one for a loaded machine.
const downWithin = (harness.HAProxyFall + 2) * harness.HAProxyInter

// TestReplicaKilledMidPush: kill -9 the replica a `docker push` is
// streaming a layer into. HAProxy marks it down within its check
// interval, docker's retries (and HAProxy's redispatch of refused
// connections) finish the push, and the image pulls back whole.
func TestReplicaKilledMidPush(t *testing.T) {
	c := harness.StartCluster(t, harness.ClusterOptions{})
	tools := harness.NewTools(t)
	tools.RequireDocker()
	tools.DockerLogin(c.Host, c.User())
	ref := c.Ref("it/killed:1")
	imageID := tools.BuildScratchImage(ref,
		harness.ImageFile{Path: "/a.bin", Size: 40 << 20},
		harness.ImageFile{Path: "/b.bin", Size: 40 << 20},
		harness.ImageFile{Path: "/c.bin", Size: 40 << 20})

	type result struct {
		out string
		err error
	}
	pushed := make(chan result, 1)
	go func() {
		out, err := tools.Exec(harness.Cmd{Args: []string{"docker", "push", ref}})
		pushed <- result{out, err}
	}()
	victim := receiving(t, c, 2*time.Minute)
	killed := time.Now()
	c.Replicas[victim].Kill()
	_, err := c.LB.WaitState(c.ServerName(victim), "DOWN", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(killed)
	t.Logf("haproxy marked replica %d down %s after kill -9", victim+1, took)
	if took > downWithin {
		t.Errorf("haproxy marked the killed replica down after %s, want within %s (fall %d, inter %s)", took, downWithin, harness.HAProxyFall, harness.HAProxyInter)
	}

	res := <-pushed
	if res.err != nil {
		t.Fatalf("docker push with a replica killed mid-push: %v\n%s", res.err, res.out)
	}
	t.Logf("docker retried: %t", strings.Contains(res.out, "Retrying"))
	digest := firstDigest(t, res.out, "digest: ")
	tools.Run("docker", "rmi", ref)
	if got := firstDigest(t, tools.Run("docker", "pull", ref), "Digest: "); got != digest {
		t.Errorf("pulled %s, pushed %s", got, digest)
	}
	if got := strings.TrimSpace(tools.Run("docker", "image", "inspect", "-f", "{{.Id}}", ref)); got != imageID {
		t.Errorf("pulled image ID %s, built %s", got, imageID)
	}

	// Back in rotation once restarted.
	c.Replicas[victim].Restart()
	if _, err := c.LB.WaitState(c.ServerName(victim), "UP", 10*time.Second); err != nil {
		t.Error(err)
	}
}

// TestReplicaDrainsMidPush: SIGTERM the replica a 200 MiB blob upload is
// streaming into while 16 clients keep sending requests through HAProxy.
// /readyz turns 503 at once, HAProxy takes the replica out, the replica
// stops listening after http.drain_delay but finishes the upload within
// http.shutdown_timeout, and not one request fails.
func TestReplicaDrainsMidPush(t *testing.T) {
	const drain = 3 * time.Second
	const shutdownTimeout = 30 * time.Second // Slipway's default
	c := harness.StartCluster(t, harness.ClusterOptions{DrainDelay: drain})
	img, err := random.Image(4<<10, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, c.Ref("it/load:1")), img, remote.WithAuth(basic(c.User()))); err != nil {
		t.Fatal(err)
	}
	l := startLoad(c, 16, "it/load", "1")
	time.Sleep(500 * time.Millisecond)

	// POST, then a PATCH whose body stops halfway until released.
	const size, half = 200 << 20, 100 << 20
	hc := harness.NewClient(c.User())
	hc.Timeout = 5 * time.Minute
	resp := send(t, hc, http.MethodPost, c.URL()+"/v2/it/drain/blobs/uploads/", nil, -1, http.StatusAccepted)
	if resp == nil {
		t.FailNow()
	}
	loc := resp.Header.Get("Location")
	pr, pw := io.Pipe()
	release := make(chan struct{})
	hash := sha256.New()
	go func() {
		src := rand.NewChaCha8([32]byte{7})
		buf := make([]byte, 1<<20)
		for sent := 0; sent < size; sent += len(buf) {
			if sent == half {
				<-release
			}
			_, _ = src.Read(buf)
			hash.Write(buf)
			if _, err := pw.Write(buf); err != nil {
				return
			}
		}
		pw.Close()
	}()
	patched := make(chan *http.Response, 1)
	go func() { patched <- send(t, hc, http.MethodPatch, loc, pr, size, http.StatusAccepted) }()

	victim := receiving(t, c, time.Minute)
	r := c.Replicas[victim]
	signalled := time.Now()
	r.Terminate()
	if st, el := readyzTurns503(r.URL()); st != http.StatusServiceUnavailable || el > 500*time.Millisecond {
		t.Errorf("/readyz of the draining replica: %d %s after SIGTERM, want 503 at once", st, el)
	}
	if took, err := c.LB.WaitState(c.ServerName(victim), "DOWN", 10*time.Second); err != nil || took > downWithin {
		t.Errorf("haproxy took the draining replica out after %s (%v), want within %s", took, err, downWithin)
	}
	// Still answering (new connections too) once HAProxy took it out,
	// until the drain delay ends.
	if st, _ := readyzTurns503(r.URL()); st != http.StatusServiceUnavailable || time.Since(signalled) > drain {
		t.Errorf("the draining replica answered %d %s after SIGTERM, want 503 (drain_delay %s)", st, time.Since(signalled), drain)
	}
	// Past the drain delay the port is closed, but the upload holds the
	// process until it ends.
	time.Sleep(time.Until(signalled.Add(drain + 500*time.Millisecond)))
	if conn, err := net.DialTimeout("tcp", r.Host, time.Second); err == nil {
		conn.Close()
		t.Errorf("the draining replica still accepts connections %s after SIGTERM (drain_delay %s)", time.Since(signalled), drain)
	}
	if !r.Running() {
		t.Fatal("the draining replica exited with an upload in flight")
	}
	close(release)
	resp = <-patched
	if resp == nil {
		t.FailNow()
	}
	if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", size-1); got != want {
		t.Errorf("PATCH: Range %q, want %q", got, want)
	}
	dgst := "sha256:" + hex.EncodeToString(hash.Sum(nil))
	send(t, hc, http.MethodPut, withDigest(t, resp.Header.Get("Location"), dgst), nil, -1, http.StatusCreated)
	if err := r.WaitExit(drain + shutdownTimeout); err != nil {
		t.Errorf("draining replica: %v", err)
	}
	exited := time.Since(signalled)
	time.Sleep(time.Second) // the load runs on past the exit
	ok, failures := l.finish()
	t.Logf("replica %d exited %s after SIGTERM; load: %d requests answered 200, %d failed", victim+1, exited.Round(time.Millisecond), ok, len(failures))
	if len(failures) > 0 || ok == 0 {
		t.Errorf("%d of the load's requests failed (want none of %d):\n%s", l.failed.Load(), ok+l.failed.Load(), strings.Join(failures, "\n"))
	}
	if head := send(t, hc, http.MethodHead, c.URL()+"/v2/it/drain/blobs/"+dgst, nil, -1, http.StatusOK); head != nil && head.ContentLength != size {
		t.Errorf("HEAD of the uploaded blob: %d bytes, want %d", head.ContentLength, size)
	}
}

// TestMinIONodeKilledMidPush: kill -9 one MinIO node of four while an
// image is pushed through HAProxy: erasure coding keeps the bucket
// writable and readable, the push completes and every blob pulls back
// whole.
func TestMinIONodeKilledMidPush(t *testing.T) {
	c := harness.StartCluster(t, harness.ClusterOptions{})
	img, err := random.Image(24<<20, 4)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	dst := ref(t, c.Ref("it/minio-node:1"))
	pushed := make(chan error, 1)
	go func() {
		pushed <- remote.Write(dst, img, remote.WithAuth(basic(c.User())))
	}()
	receiving(t, c, time.Minute)
	// Node 4 is no replica's endpoint: the replicas keep their S3
	// connection, the bucket loses a quarter of its drives.
	if err := c.MinIO[3].Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-pushed; err != nil {
		t.Fatalf("push with a minio node killed: %v", err)
	}
	tools := harness.NewTools(t)
	tools.CraneLogin(c.Host, c.User())
	if got := strings.TrimSpace(tools.Run("crane", "digest", "--insecure", c.Ref("it/minio-node:1"))); got != want.String() {
		t.Errorf("digest %s, pushed %s", got, want)
	}
	// Every blob read back and checked against its digest.
	tools.Run("crane", "validate", "--insecure", "--remote", c.Ref("it/minio-node:1"))
	states, err := c.LB.States()
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Replicas {
		if st := states[c.ServerName(i)]; st != "UP" {
			t.Errorf("replica %d is %q in haproxy with a minio node down, want UP", i+1, st)
		}
	}
}

// readyzTurns503 polls GET /readyz at base (a new connection each time)
// until it answers 503, for 5s at most, and returns the last status (0:
// no answer) and how long that took.
func readyzTurns503(base string) (int, time.Duration) {
	start := time.Now()
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	status := 0
	for time.Since(start) < 5*time.Second {
		status = 0
		if resp, err := hc.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if status = resp.StatusCode; status == http.StatusServiceUnavailable {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return status, time.Since(start)
}

// send makes one request (body of size bytes, -1 unknown) and fails the
// test unless the answer has status want.
func send(t *testing.T, hc *http.Client, method, u string, body io.Reader, size int64, want int) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Error(err)
		return nil
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, u, err)
		return nil
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Errorf("%s %s: %s, want %d: %s", method, u, resp.Status, want, b)
	}
	return resp
}

// withDigest adds digest=d to an upload URL's query.
func withDigest(t *testing.T, loc, d string) string {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("digest", d)
	u.RawQuery = q.Encode()
	return u.String()
}
