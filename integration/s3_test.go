package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/integration/internal/harness"
)

// TestS3Redirect: with storage.s3.redirect on, a blob GET is a 307 to a
// presigned URL on MinIO that returns the blob; a HEAD is answered by
// Slipway with the digest header; a Range GET is served by Slipway (206).
func TestS3Redirect(t *testing.T) {
	reg := s3RedirectBackend.start(t)
	client := harness.NewClient(reg.User())
	blob := randomBytes(t, 1<<20+3)
	dgst := digest.FromBytes(blob)
	do(t, client, http.MethodPost, reg.URL()+"/v2/it/redirect/blobs/uploads/?digest="+dgst.String(), blob, nil, http.StatusCreated)
	blobURL := reg.URL() + "/v2/it/redirect/blobs/" + dgst.String()

	head := do(t, client, http.MethodHead, blobURL, nil, nil, http.StatusOK)
	if got := head.Header.Get("Docker-Content-Digest"); got != dgst.String() {
		t.Errorf("HEAD: Docker-Content-Digest %q, want %s", got, dgst)
	}
	if got := head.Header.Get("Content-Length"); got != fmt.Sprint(len(blob)) {
		t.Errorf("HEAD: Content-Length %q, want %d", got, len(blob))
	}

	noFollow := &http.Client{Transport: client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(blobURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("GET %s: %s, want 307", blobURL, resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if loc.Host != reg.S3.RedirectHost() || loc.Query().Get("X-Amz-Signature") == "" || !strings.HasPrefix(loc.Path, "/"+reg.S3.Bucket+"/data/") {
		t.Errorf("GET: redirected to %s, want a presigned URL on MinIO (%s) for a data/ object of bucket %s", loc, reg.S3.RedirectHost(), reg.S3.Bucket)
	}
	// The presigned URL needs no token (the client sends none off /v2/).
	got := do(t, client, http.MethodGet, loc.String(), nil, nil, http.StatusOK)
	if !bytes.Equal(got.body, blob) {
		t.Errorf("presigned URL returned %d bytes (%s), want the blob", len(got.body), digest.FromBytes(got.body))
	}

	part := do(t, client, http.MethodGet, blobURL, nil, map[string]string{"Range": "bytes=100-199"}, http.StatusPartialContent)
	if !bytes.Equal(part.body, blob[100:200]) {
		t.Errorf("Range GET: wrong bytes")
	}

	// With the default redirect_min_size (1 MiB), a smaller blob is served
	// by Slipway; one of 1 MiB is redirected.
	def := backend{name: "s3-redirect-default", s3: &harness.S3{Redirect: true}}.start(t)
	dc := harness.NewClient(def.User())
	noFollow = &http.Client{Transport: dc.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, size := range []int{1<<20 - 1, 1 << 20} {
		b := randomBytes(t, size)
		d := digest.FromBytes(b)
		do(t, dc, http.MethodPost, def.URL()+"/v2/it/threshold/blobs/uploads/?digest="+d.String(), b, nil, http.StatusCreated)
		resp, err := noFollow.Get(def.URL() + "/v2/it/threshold/blobs/" + d.String())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case size < 1<<20 && (resp.StatusCode != http.StatusOK || !bytes.Equal(body, b)):
			t.Errorf("GET of a %d-byte blob: %s, %d bytes; want 200 with the blob from Slipway", size, resp.Status, len(body))
		case size >= 1<<20 && resp.StatusCode != http.StatusTemporaryRedirect:
			t.Errorf("GET of a %d-byte blob: %s, want 307", size, resp.Status)
		}
	}
}

// slowLayer streams its first fastBytes compressed bytes at full speed,
// then chunk bytes per tick, so an outage can land in the middle of its
// upload; reached is closed once the fast part has been read. Once
// unthrottled, it streams at full speed.
type slowLayer struct {
	v1.Layer
	fastBytes   int64
	chunk       int64
	tick        time.Duration
	reached     chan struct{}
	once        sync.Once
	sent        atomic.Int64 // bytes handed to the client, all attempts
	unthrottled atomic.Bool
}

func (l *slowLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return &slowReader{rc: rc, l: l}, nil
}

type slowReader struct {
	rc     io.ReadCloser
	l      *slowLayer
	n      int64
	credit int64 // bytes that may go before the next tick
}

func (r *slowReader) Read(p []byte) (int, error) {
	if !r.l.unthrottled.Load() {
		if r.n >= r.l.fastBytes {
			r.l.once.Do(func() { close(r.l.reached) })
			if r.credit <= 0 {
				time.Sleep(r.l.tick)
				r.credit = r.l.chunk
			}
			if int64(len(p)) > r.credit {
				p = p[:r.credit]
			}
		} else if rest := r.l.fastBytes - r.n; int64(len(p)) > rest {
			p = p[:rest]
		}
	}
	n, err := r.rc.Read(p)
	r.n += int64(n)
	r.credit -= int64(n)
	r.l.sent.Add(int64(n))
	return n, err
}

func (r *slowReader) Close() error { return r.rc.Close() }

// getStatus is the status of GET url (0 on a transport error), logged in
// as the registry's user.
func getStatus(reg *harness.Registry, url string) (int, []byte, error) {
	c := &http.Client{Transport: harness.AuthTransport(reg.User()), Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, nil
}

// TestS3Outage stops MinIO in the middle of a push of a large layer (a
// go-containerregistry push whose layer streams slowly after its first
// 20 MiB): the client gets an error, Slipway stays up (/healthz 200) but
// not ready (/readyz 503 with a reason), reads answer 503; once MinIO is
// back /readyz is 200 again, the interrupted tag is absent (or whole), a
// retried push succeeds and pulls with the right digest, and
// registry.Verify finds nothing half-written in the bucket.
func TestS3Outage(t *testing.T) {
	harness.SlipwayBinary(t) // /readyz and Verify are Slipway's
	m := harness.StartMinIO(t)
	reg := harness.StartOpts(t, harness.Options{S3: &harness.S3{MinIO: m}})
	plat := v1.Platform{OS: "linux", Architecture: "amd64"}

	base := ociImage(t, 2, 128<<10, plat)
	if err := remote.Write(parseRef(t, reg.Ref("it/outage:base")), base, as(reg.User())); err != nil {
		t.Fatal(err)
	}

	big, err := random.Layer(40<<20, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	// 20 MiB at once (Slipway's first 16 MiB part reaches MinIO), then 5 MiB/s.
	slow := &slowLayer{Layer: big, fastBytes: 20 << 20, chunk: 256 << 10, tick: 50 * time.Millisecond, reached: make(chan struct{})}
	img, err := mutate.AppendLayers(ociImage(t, 1, 64<<10, plat), slow)
	if err != nil {
		t.Fatal(err)
	}
	ref := parseRef(t, reg.Ref("it/outage:big"))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		// One attempt: the point is what the client sees, not whether it retries.
		errc <- remote.Write(ref, img, remote.WithContext(ctx), remote.WithRetryBackoff(remote.Backoff{Steps: 1}), as(reg.User()))
	}()
	select {
	case <-slow.reached:
	case err := <-errc:
		t.Fatalf("push ended (%v) before the slow part of the layer was reached", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the push did not reach the slow part of the layer within 2m")
	}
	stopped := time.Now()
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("MinIO stopped (took %s) after %d MiB of the layer were sent", time.Since(stopped).Round(time.Millisecond), slow.sent.Load()>>20)

	var pushErr error
	select {
	case pushErr = <-errc:
	case <-time.After(2 * time.Minute):
		t.Fatal("the push neither failed nor finished within 2m of MinIO stopping")
	}
	if pushErr == nil {
		t.Fatalf("push succeeded although MinIO stopped in its middle (%d MiB sent)", slow.sent.Load()>>20)
	}
	var terr *transport.Error
	if errors.As(pushErr, &terr) {
		t.Logf("push failed %s after MinIO stopped: HTTP %d: %v", time.Since(stopped).Round(time.Millisecond), terr.StatusCode, pushErr)
		if terr.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("push failed with HTTP %d, want 503 (storage unavailable): %v", terr.StatusCode, pushErr)
		}
	} else {
		t.Logf("push failed %s after MinIO stopped (no HTTP status: the connection was cut): %v", time.Since(stopped).Round(time.Millisecond), pushErr)
	}

	// Slipway is alive, not ready, and says why.
	if !reg.Running() {
		t.Fatalf("slipway exited when MinIO stopped")
	}
	if st, body, err := getStatus(reg, reg.URL()+"/healthz"); err != nil || st != http.StatusOK {
		t.Errorf("GET /healthz during the outage: %d %v %s, want 200", st, err, body)
	}
	st, body, err := getStatus(reg, reg.URL()+"/readyz")
	var ready struct{ Status, Reason string }
	_ = json.Unmarshal(body, &ready)
	switch {
	case err != nil || st != http.StatusServiceUnavailable:
		t.Errorf("GET /readyz during the outage: %d %v %s, want 503", st, err, body)
	case ready.Reason == "":
		t.Errorf("GET /readyz during the outage: 503 without a reason: %s", body)
	case !strings.Contains(ready.Reason, reg.S3.Bucket) && !strings.Contains(ready.Reason, m.Addr):
		t.Errorf("GET /readyz during the outage: reason %q names neither the bucket %s nor MinIO's address %s", ready.Reason, reg.S3.Bucket, m.Addr)
	default:
		t.Logf("GET /readyz during the outage: 503 %s", body)
	}
	readStart := time.Now()
	if st, body, err := getStatus(reg, reg.URL()+"/v2/it/outage/manifests/base"); err != nil || st != http.StatusServiceUnavailable {
		t.Errorf("GET a manifest during the outage: %d %v %s, want 503", st, err, body)
	} else {
		t.Logf("GET a manifest during the outage: 503 after %s: %s", time.Since(readStart).Round(time.Millisecond), bytes.TrimSpace(body))
	}

	// MinIO comes back: Slipway is ready again without a restart.
	restart := time.Now()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("MinIO live again after %s", time.Since(restart).Round(time.Millisecond))
	back := time.Now()
	deadline := back.Add(30 * time.Second)
	for {
		st, body, err := getStatus(reg, reg.URL()+"/readyz")
		if err == nil && st == http.StatusOK {
			t.Logf("/readyz 200 %s after MinIO restarted", time.Since(back).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %v %s 30s after MinIO restarted", st, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !reg.Running() {
		t.Fatal("slipway exited during the outage")
	}

	// Nothing half-written is visible. (What the failed push left behind,
	// invisible to clients, is garbage collection's: logged, not required.)
	verifyStore(t, reg)
	var incomplete []string
	for u := range m.Client(t).ListIncompleteUploads(ctx, reg.S3.Bucket, "", true) {
		if u.Err != nil {
			t.Fatalf("listing incomplete multipart uploads: %v", u.Err)
		}
		incomplete = append(incomplete, u.Key)
	}
	t.Logf("left by the failed push: %d incomplete multipart uploads %v, %d upload sessions",
		len(incomplete), incomplete, len(listStore(t, reg, "uploads/")))
	if requireWholeOrAbsent(t, ref.String(), as(reg.User())) {
		t.Errorf("%s is visible although its push failed", ref)
	}
	requirePulls(t, reg.Ref("it/outage:base"), base, as(reg.User()))

	// A retried push (at full speed) succeeds and pulls back.
	slow.unthrottled.Store(true)
	retry := time.Now()
	if err := remote.Write(ref, img, remote.WithContext(ctx), as(reg.User())); err != nil {
		t.Fatalf("retried push after the outage: %v", err)
	}
	t.Logf("retried push took %s", time.Since(retry).Round(time.Millisecond))
	requirePulls(t, ref.String(), img, as(reg.User()))
	verifyStore(t, reg)
}

// serveExpectingFailure runs `slipway serve` with cfg and requires it to
// exit non-zero within limit; it returns the combined output.
func serveExpectingFailure(t *testing.T, cfg string, limit time.Duration) string {
	t.Helper()
	bin := harness.SlipwayBinary(t)
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("slipway serve still running after %s (want it to refuse to start):\n%s", limit, out.String())
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		t.Logf("slipway serve exited %d after %s:\n%s", ee.ExitCode(), took, strings.TrimSpace(out.String()))
	default:
		t.Fatalf("slipway serve: %v after %s, want a non-zero exit:\n%s", err, took, out.String())
	}
	return out.String()
}

// s3Config is a Slipway config on bucket at endpoint.
func s3Config(endpoint, bucket string, create bool) string {
	return fmt.Sprintf(`http:
  addr: "127.0.0.1:0"
storage:
  s3:
    endpoint: %q
    bucket: %q
    access_key: %q
    secret_key: %q
    create_bucket: %t
log:
  level: debug
`, endpoint, bucket, harness.MinIOAccessKey, harness.MinIOSecretKey, create)
}

// TestS3Bucket: `slipway serve` on a bucket that does not exist, with
// create_bucket: false, exits non-zero and names the bucket (and creates
// nothing); with create_bucket: true it creates the bucket and serves. An
// unreachable endpoint also stops it from starting, with the endpoint named.
func TestS3Bucket(t *testing.T) {
	harness.SlipwayBinary(t) // storage.s3.create_bucket is Slipway's
	m := harness.SharedMinIO(t)
	exists := func(bucket string) bool {
		ok, err := m.Client(t).BucketExists(context.Background(), bucket)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	t.Run("missing", func(t *testing.T) {
		bucket := harness.BucketName(t)
		out := serveExpectingFailure(t, s3Config(m.Addr, bucket, false), time.Minute)
		if !strings.Contains(out, bucket) {
			t.Errorf("the error does not name the bucket %q:\n%s", bucket, out)
		}
		if !strings.Contains(out, "create_bucket") {
			t.Errorf("the error does not mention storage.s3.create_bucket:\n%s", out)
		}
		if exists(bucket) {
			t.Errorf("bucket %s was created although create_bucket is false", bucket)
		}
	})

	t.Run("create", func(t *testing.T) {
		bucket := harness.BucketName(t)
		reg := harness.StartOpts(t, harness.Options{S3: &harness.S3{MinIO: m, Bucket: bucket, CreateBucket: true}})
		if !exists(bucket) {
			t.Fatalf("bucket %s missing although create_bucket is true and slipway started", bucket)
		}
		img := ociImage(t, 1, 64<<10, v1.Platform{OS: "linux", Architecture: "amd64"})
		if err := remote.Write(parseRef(t, reg.Ref("it/created:1")), img, as(reg.User())); err != nil {
			t.Fatal(err)
		}
		requirePulls(t, reg.Ref("it/created:1"), img, as(reg.User()))
		// A second replica on the now existing bucket, create_bucket still on.
		requirePulls(t, reg.StartReplica(t).Ref("it/created:1"), img, as(reg.User()))
	})

	t.Run("unreachable", func(t *testing.T) {
		dead := fmt.Sprintf("127.0.0.1:%d", closedPort(t))
		out := serveExpectingFailure(t, s3Config(dead, harness.BucketName(t), false), 90*time.Second)
		if !strings.Contains(out, dead) {
			t.Errorf("the error does not name the endpoint %s:\n%s", dead, out)
		}
	})
}

// closedPort is a loopback port nothing listens on (at the moment).
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// throttledBody passes a request body through: its first fastBytes at
// once, then chunk bytes per tick, until unthrottled. reached fires once a
// body has passed fastBytes.
type throttledBody struct {
	io.ReadCloser
	n, fastBytes, chunk, credit int64
	tick                        time.Duration
	unthrottled                 *atomic.Bool
	reached                     func()
}

func (b *throttledBody) Read(p []byte) (int, error) {
	if !b.unthrottled.Load() && b.n >= b.fastBytes {
		b.reached()
		if b.credit <= 0 {
			time.Sleep(b.tick)
			b.credit = b.chunk
		}
		if int64(len(p)) > b.credit {
			p = p[:b.credit]
		}
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	b.credit -= int64(n)
	return n, err
}

// TestS3OutageDocker stops MinIO while `docker push` streams a 40 MiB
// layer (through a proxy that slows the upload down after 20 MiB, so the
// stop lands inside it). Slipway answers the upload with an error, docker
// reports it ("Retrying in N seconds") and retries; MinIO is started again
// meanwhile, so the push ends well; the image pulls back with the same
// digest and image ID, and registry.Verify finds the bucket consistent.
func TestS3OutageDocker(t *testing.T) {
	harness.SlipwayBinary(t)
	tools := harness.NewTools(t)
	tools.RequireDocker()
	m := harness.StartMinIO(t)
	// No public_url: Locations stay relative, so docker stays on the proxy.
	reg := harness.StartOpts(t, harness.Options{S3: &harness.S3{MinIO: m, Redirect: true}, NoPublicURL: true})
	proxy := harness.NewRecordingProxy(t, reg)
	// The token realm follows the Host, so docker logs in through the proxy.
	tools.DockerLogin(proxy.Host, reg.User())

	var unthrottled atomic.Bool
	reached := make(chan struct{})
	var once sync.Once
	proxy.SetBodyFilter(func(req *http.Request, body io.ReadCloser) io.ReadCloser {
		if !strings.Contains(req.URL.Path, "/blobs/uploads/") {
			return body
		}
		return &throttledBody{ReadCloser: body, fastBytes: 20 << 20, chunk: 256 << 10, tick: 50 * time.Millisecond,
			unthrottled: &unthrottled, reached: func() { once.Do(func() { close(reached) }) }}
	})

	ref := proxy.Ref("it/outage-docker:1")
	imageID := buildScratchImage(t, tools, ref, imageFile{"/small.bin", 8 << 10}, imageFile{"/big.bin", 40 << 20})

	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := tools.Exec(harness.Cmd{Args: []string{"docker", "push", ref}})
		done <- result{out, err}
	}()
	select {
	case <-reached:
	case r := <-done:
		t.Fatalf("docker push ended before 20 MiB of the layer went through (%v):\n%s", r.err, r.out)
	case <-time.After(3 * time.Minute):
		t.Fatal("docker push did not send 20 MiB of the layer within 3m")
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()

	// Wait for Slipway to fail the upload: the client is told.
	var failed []string
	for deadline := time.Now().Add(time.Minute); len(failed) == 0; {
		for _, e := range proxy.Exchanges() {
			if strings.Contains(e.Path, "/blobs/uploads/") && e.Status >= 500 {
				failed = append(failed, e.String())
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no upload request failed within 1m of MinIO stopping; requests:\n%v", proxy.Exchanges())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%s after MinIO stopped, the upload failed: %v", time.Since(stopped).Round(time.Millisecond), failed)
	if !reg.Running() {
		t.Fatal("slipway exited when MinIO stopped")
	}
	if st, body, err := getStatus(reg, reg.URL()+"/readyz"); err != nil || st != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz during the outage: %d %v %s, want 503", st, err, body)
	}

	unthrottled.Store(true)
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(4 * time.Minute):
		t.Fatal("docker push did not finish within 4m of MinIO's restart")
	}
	if r.err != nil {
		t.Fatalf("docker push failed although MinIO came back during its retries: %v\n%s", r.err, r.out)
	}
	if !strings.Contains(r.out, "Retrying in") {
		t.Errorf("docker push output shows no retry, so docker saw no error:\n%s", r.out)
	}
	pushDigest := firstMatch(t, regexp.MustCompile(`digest: (sha256:[0-9a-f]{64}) size: \d+`), r.out, "pushed digest")
	t.Logf("docker push retried and succeeded: %s", pushDigest)

	tools.Run("docker", "rmi", ref)
	pullOut := tools.Run("docker", "pull", ref)
	if d := firstMatch(t, regexp.MustCompile(`Digest: (sha256:[0-9a-f]{64})`), pullOut, "pulled digest"); d != pushDigest {
		t.Errorf("docker pull digest %s, pushed %s", d, pushDigest)
	}
	if got := strings.TrimSpace(tools.Run("docker", "image", "inspect", "-f", "{{.Id}}", ref)); got != imageID {
		t.Errorf("pulled image ID %s, built %s", got, imageID)
	}
	if st, body, err := getStatus(reg, reg.URL()+"/readyz"); err != nil || st != http.StatusOK {
		t.Errorf("GET /readyz after the outage: %d %v %s, want 200", st, err, body)
	}
	verifyStore(t, reg)
}
