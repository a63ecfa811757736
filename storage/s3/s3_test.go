package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/s3"
	"github.com/slipway/slipway/storage/storagetest"
)

// config returns a Config for the server's endpoint and bucket.
func (srv target) config(bucket string) s3.Config {
	return s3.Config{
		Endpoint:    srv.endpoint,
		Bucket:      bucket,
		AccessKey:   srv.accessKey,
		SecretKey:   srv.secretKey,
		SignPayload: srv.signPayload,
	}
}

// client is a plain minio-go client on the server, for what the tests
// check or break behind a store's back.
func (srv target) client(t testing.TB) *minio.Client {
	c, err := minio.New(srv.endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.accessKey, srv.secretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newBucket names a fresh bucket, removed with its content after the test.
func (srv target) newBucket(t testing.TB) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "slipway-test-" + hex.EncodeToString(b)
	c := srv.client(t)
	t.Cleanup(func() {
		// Best effort: the server's data dir goes away anyway. Not
		// t.Context(): it is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.RemoveBucketWithOptions(ctx, name, minio.RemoveBucketOptions{ForceDelete: true})
	})
	return name
}

func open(t *testing.T, cfg s3.Config) *s3.Store {
	t.Helper()
	s, err := s3.New(waitCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newStore opens a store on a fresh bucket, applying edits to the config.
func (srv target) newStore(t *testing.T, edits ...func(*s3.Config)) *s3.Store {
	cfg := srv.config(srv.newBucket(t))
	cfg.CreateBucket = true
	for _, e := range edits {
		e(&cfg)
	}
	return open(t, cfg)
}

func TestSuite(t *testing.T) {
	eachServer(t, func(t *testing.T, srv target) {
		// Parts of 5 MiB, S3's smallest: the suite's large bodies span
		// three. Whatever a subtest cuts short leaves no upload behind.
		storagetest.Run(t, func(t *testing.T) storage.Store {
			s := srv.newStore(t, func(c *s3.Config) { c.PartSize = 5 << 20 })
			t.Cleanup(func() {
				// t.Context() is done by now.
				if n, err := s.IncompleteUploads(context.Background()); err != nil || n != 0 {
					t.Errorf("incomplete uploads = %d, %v; want none", n, err)
				}
			})
			return s
		})
	})
}

// Two processes on one bucket: S3's conditional writes must serialise them.
func TestTwoProcess(t *testing.T) {
	eachServer(t, func(t *testing.T, srv target) {
		storagetest.RunTwoProcess(t,
			func(t *testing.T) string {
				cfg := srv.config(srv.newBucket(t))
				cfg.CreateBucket = true
				open(t, cfg)
				return cfg.Bucket
			},
			func(t *testing.T, bucket string) storage.Store { return open(t, srv.config(bucket)) })
	})
}

func put(t *testing.T, s storage.Store, key, data string) storage.Info {
	t.Helper()
	info, err := s.Put(t.Context(), key, strings.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func read(t *testing.T, s storage.Store, key string) string {
	t.Helper()
	rc, _, err := s.Get(t.Context(), key, storage.GetOptions{})
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return string(b)
}

func TestMissingBucket(t *testing.T) { eachServer(t, testMissingBucket) }

func testMissingBucket(t *testing.T, srv target) {
	bucket := srv.newBucket(t)
	_, err := s3.New(waitCtx(t), srv.config(bucket))
	want := fmt.Sprintf("bucket %q does not exist (set storage.s3.create_bucket: true to create it)", bucket)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("New(missing bucket) = %v, want an error containing %q", err, want)
	}
}

func TestCreateBucket(t *testing.T) { eachServer(t, testCreateBucket) }

func testCreateBucket(t *testing.T, srv target) {
	cfg := srv.config(srv.newBucket(t))
	cfg.CreateBucket = true
	s := open(t, cfg)
	put(t, s, "k", "v")
	again := open(t, cfg) // the bucket exists now: no error
	if got := read(t, again, "k"); got != "v" {
		t.Fatalf("k = %q, want v", got)
	}
	cfg.CreateBucket = false
	open(t, cfg)
}

// A store with a Root sees only its own keys, without the prefix.
func TestRootIsolates(t *testing.T) { eachServer(t, testRootIsolates) }

func testRootIsolates(t *testing.T, srv target) {
	cfg := srv.config(srv.newBucket(t))
	cfg.CreateBucket = true
	whole := open(t, cfg)
	cfg.Root = "a"
	a := open(t, cfg)
	cfg.Root = "/b/c/"
	bc := open(t, cfg)
	put(t, a, "k", "in a")
	put(t, bc, "k", "in b/c")
	put(t, whole, "k", "top")
	if got := read(t, a, "k"); got != "in a" {
		t.Fatalf("a: k = %q", got)
	}
	if got := read(t, bc, "k"); got != "in b/c" {
		t.Fatalf("b/c: k = %q", got)
	}
	if got := storagetest.Keys(t, a, ""); len(got) != 1 || got[0] != "k" {
		t.Fatalf("a lists %q, want [k]", got)
	}
	if got := strings.Join(storagetest.Keys(t, whole, ""), " "); got != "a/k b/c/k k" {
		t.Fatalf("bucket lists %q, want a/k b/c/k k", got)
	}
	cfg.Root, cfg.PartSize = "/b/c/", 5<<20
	bcParts := open(t, cfg)
	big := strings.Repeat("m", 6<<20) // two parts
	if _, err := bcParts.Put(t.Context(), "mp", strings.NewReader(big), int64(len(big))); err != nil {
		t.Fatal(err)
	}
	if got := read(t, whole, "b/c/mp"); got != big {
		t.Fatalf("b/c/mp holds %d bytes, want %d", len(got), len(big))
	}
	if _, err := s3.New(t.Context(), s3.Config{Endpoint: cfg.Endpoint, Bucket: cfg.Bucket, Root: "a/../b"}); !errors.Is(err, storage.ErrInvalidKey) {
		t.Fatalf("New(root a/../b) = %v, want ErrInvalidKey", err)
	}
}

// Presigned URLs work with plain net/http, for the RedirectEndpoint's host
// (here another name for the same server), and stop working on expiry.
func TestPresign(t *testing.T) { eachServer(t, testPresign) }

func testPresign(t *testing.T, srv target) {
	endpoint := srv.endpoint
	_, port, _ := strings.Cut(endpoint, ":")
	redirect := "http://localhost:" + port
	if !strings.HasPrefix(endpoint, "127.0.0.1:") {
		redirect = "" // an external endpoint: no second name known
	}
	var requests atomic.Int64
	s := srv.newStore(t, func(c *s3.Config) {
		c.RedirectEndpoint = redirect
		c.Transport = counting(&requests)
	})
	put(t, s, "blob", "presigned content")
	before := requests.Load()
	u, err := s.PresignGet(t.Context(), "blob", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	hu, err := s.PresignHead(t.Context(), "blob", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if n := requests.Load() - before; n != 0 {
		t.Errorf("presigning sent %d requests, want none", n)
	}
	if redirect != "" && u.Host != "localhost:"+port {
		t.Errorf("presigned host %q, want localhost:%s", u.Host, port)
	}
	status, got := fetch(t, http.MethodGet, u.String())
	if status != http.StatusOK || got != "presigned content" {
		t.Fatalf("GET presigned = %d %q", status, got)
	}
	resp, err := http.Head(hu.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len("presigned content")) {
		t.Fatalf("HEAD presigned = %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	if status, _ := fetch(t, http.MethodHead, u.String()); status == http.StatusOK {
		t.Errorf("a GET URL served HEAD too: the method is not signed")
	}

	short, err := s.PresignGet(t.Context(), "blob", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	if status, _ := fetch(t, http.MethodGet, short.String()); status != http.StatusForbidden {
		t.Fatalf("GET expired URL = %d, want 403", status)
	}
	for _, d := range []time.Duration{0, -time.Second, 8 * 24 * time.Hour} {
		if _, err := s.PresignGet(t.Context(), "blob", d); err == nil {
			t.Errorf("PresignGet(expiry %v) succeeded", d)
		}
	}
	if _, err := s.PresignGet(t.Context(), "../x", time.Minute); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("PresignGet(../x) = %v, want ErrInvalidKey", err)
	}
}

func fetch(t *testing.T, method, u string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// With the server gone, operations fail with ErrUnavailable within the
// retry bounds instead of hanging or reporting a missing object.
func TestUnavailable(t *testing.T) {
	srv := throwawayMinIO(t)
	cfg := s3.Config{Endpoint: srv.addr, Bucket: "gone", AccessKey: rootUser, SecretKey: rootPassword}
	cfg.CreateBucket = true
	cfg.MaxRetries = 2
	s := open(t, cfg)
	put(t, s, "k", "v")
	srv.stop()

	start := time.Now()
	_, _, err := s.Get(t.Context(), "k", storage.GetOptions{})
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Get with MinIO stopped = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Get took %v to fail", d)
	}
	if !strings.Contains(err.Error(), `"k"`) {
		t.Errorf("error %q does not name the key", err)
	}
	ops := map[string]func() error{
		"Stat":        func() error { _, err := s.Stat(t.Context(), "k"); return err },
		"Put":         func() error { _, err := s.Put(t.Context(), "k", strings.NewReader("x"), 1); return err },
		"PutIfAbsent": func() error { _, err := s.PutIfAbsent(t.Context(), "n", strings.NewReader("x"), 1); return err },
		"PutIfMatch":  func() error { _, err := s.PutIfMatch(t.Context(), "k", strings.NewReader("x"), 1, "e"); return err },
		"PutIfAbsent stream": func() error {
			_, err := s.PutIfAbsent(t.Context(), "n", io.MultiReader(strings.NewReader("x")), 1)
			return err
		},
		"Put multipart": func() error {
			_, err := s.Put(t.Context(), "m", bytes.NewReader(make([]byte, 17<<20)), 17<<20)
			return err
		},
		"List":   func() error { _, err := s.List(t.Context(), storage.ListOptions{}); return err },
		"Delete": func() error { return s.Delete(t.Context(), "k") },
		"Ping":   func() error { return s.Ping(t.Context()) },
		"New": func() error {
			_, err := s3.New(t.Context(), cfg)
			return err
		},
	}
	for name, op := range ops {
		start := time.Now()
		err := op()
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s with MinIO stopped = %v, want ErrUnavailable", name, err)
		}
		d := time.Since(start)
		if d > 10*time.Second {
			t.Errorf("%s took %v to fail", name, d)
		}
		t.Logf("%s failed after %v: %v", name, d.Round(time.Millisecond), err)
	}
}

// A bucket deleted under a running store: Ping says so, reads do not claim
// that objects are missing.
func TestBucketDeleted(t *testing.T) { eachServer(t, testBucketDeleted) }

func testBucketDeleted(t *testing.T, srv target) {
	cfg := srv.config(srv.newBucket(t))
	cfg.CreateBucket = true
	s := open(t, cfg)
	if err := srv.client(t).RemoveBucket(t.Context(), cfg.Bucket); err != nil {
		t.Fatal(err)
	}
	err := s.Ping(t.Context())
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), fmt.Sprintf("bucket %q does not exist", cfg.Bucket)) {
		t.Fatalf("Ping = %v, want ErrUnavailable naming the missing bucket", err)
	}
	if _, _, err := s.Get(t.Context(), "k", storage.GetOptions{}); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Get = %v, want ErrUnavailable", err)
	}
}

// Racers on one key, with bodies small enough for one PUT and large enough
// for a multipart upload (the precondition then sits on the completion):
// exactly one wins, and the object holds its content.
func TestPutIfAbsentRace(t *testing.T) { eachServer(t, testPutIfAbsentRace) }

func testPutIfAbsentRace(t *testing.T, srv target) {
	s := srv.newStore(t, func(c *s3.Config) { c.PartSize = 5 << 20 })
	for _, tc := range []struct {
		name           string
		size, racers   int
		unknown, large bool
	}{
		{"small", 100, 32, false, false},
		{"small-unknown-size", 100, 32, true, false},
		{"multipart", 5<<20 + 1, 6, false, true},
		{"multipart-unknown-size", 5<<20 + 1, 6, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "race/" + tc.name
			bodies := make([][]byte, tc.racers)
			errs := make([]error, tc.racers)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for g := range tc.racers {
				bodies[g] = bytes.Repeat([]byte{byte('a' + g)}, tc.size)
				wg.Go(func() {
					<-start
					var r io.Reader = bytes.NewReader(bodies[g])
					size := int64(tc.size)
					if tc.unknown {
						r, size = io.MultiReader(r), -1 // hides the length
					}
					_, errs[g] = s.PutIfAbsent(t.Context(), key, r, size)
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for g, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Fatalf("racers %d and %d both won", winner, g)
				case err == nil:
					winner = g
				case !errors.Is(err, storage.ErrPreconditionFailed):
					t.Fatalf("racer %d: %v", g, err)
				}
			}
			if winner < 0 {
				t.Fatal("nobody won")
			}
			if got := read(t, s, key); got != string(bodies[winner]) {
				t.Fatalf("object does not hold the winner's content")
			}
		})
	}
	wantNoUploads(t, s)
}

// wantNoUploads checks that failed multipart writes aborted their uploads.
func wantNoUploads(t *testing.T, s *s3.Store) {
	t.Helper()
	n, err := s.IncompleteUploads(t.Context())
	if err != nil || n != 0 {
		t.Fatalf("incomplete uploads = %d, %v; want none", n, err)
	}
}

// PutIfMatch across the multipart path: a stale ETag loses, the current
// one wins, and a missing object is a lost precondition too.
func TestPutIfMatchLarge(t *testing.T) { eachServer(t, testPutIfMatchLarge) }

func testPutIfMatchLarge(t *testing.T, srv target) {
	s := srv.newStore(t, func(c *s3.Config) { c.PartSize = 5 << 20 })
	big := func(c byte) io.Reader { return bytes.NewReader(bytes.Repeat([]byte{c}, 6<<20)) }
	if _, err := s.PutIfMatch(t.Context(), "k", big('x'), 6<<20, "nope"); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("PutIfMatch(missing) = %v, want ErrPreconditionFailed", err)
	}
	v1 := put(t, s, "k", "v1")
	v2, err := s.PutIfMatch(t.Context(), "k", big('a'), 6<<20, v1.ETag)
	if err != nil || v2.Size != 6<<20 {
		t.Fatalf("PutIfMatch(current) = %+v, %v", v2, err)
	}
	if _, err := s.PutIfMatch(t.Context(), "k", io.MultiReader(big('b')), -1, v1.ETag); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("PutIfMatch(stale, size -1) = %v, want ErrPreconditionFailed", err)
	}
	if info, err := s.Stat(t.Context(), "k"); err != nil || info.ETag != v2.ETag {
		t.Fatalf("Stat = %+v, %v; want ETag %q", info, err, v2.ETag)
	}
	wantNoUploads(t, s)
}

// Unknown sizes beyond PartSize go multipart; up to PartSize (exactly
// PartSize included) they take one PUT.
func TestUnknownSizeLarge(t *testing.T) { eachServer(t, testUnknownSizeLarge) }

func testUnknownSizeLarge(t *testing.T, srv target) {
	var n atomic.Int64
	s := srv.newStore(t, func(c *s3.Config) { c.Transport = counting(&n); c.PartSize = 5 << 20 })
	for _, tc := range []struct {
		size     int
		requests int64
	}{
		{5 << 20, 1},
		{5<<20 + 1, 4}, // create, two parts, complete
		{11<<20 + 3, 5},
	} {
		data := bytes.Repeat([]byte("0123456789abcdef"), tc.size/16+1)[:tc.size]
		before := n.Load()
		info, err := s.Put(t.Context(), "big", io.MultiReader(bytes.NewReader(data)), -1)
		if err != nil || info.Size != int64(len(data)) {
			t.Fatalf("Put(%d bytes, size -1) = %+v, %v", tc.size, info, err)
		}
		if got := n.Load() - before; got != tc.requests {
			t.Errorf("Put(%d bytes, size -1) took %d requests, want %d", tc.size, got, tc.requests)
		}
		if read(t, s, "big") != string(data) {
			t.Fatalf("Put(%d bytes, size -1): wrong content", tc.size)
		}
	}
}

// Bytes past the announced size are left unread, as on the filesystem,
// on the one-PUT path as well as the multipart one.
func TestBodyLongerThanSize(t *testing.T) { eachServer(t, testBodyLongerThanSize) }

func testBodyLongerThanSize(t *testing.T, srv target) {
	s := srv.newStore(t, func(c *s3.Config) { c.PartSize = 5 << 20 })
	long := bytes.Repeat([]byte("0123456789"), (6<<20)/10+10)
	for _, size := range []int{3, 6 << 20} {
		r := io.MultiReader(bytes.NewReader(long)) // a stream, not seekable
		if _, err := s.Put(t.Context(), "k", r, int64(size)); err != nil {
			t.Fatalf("Put(size %d) of a longer body: %v", size, err)
		}
		if got := read(t, s, "k"); got != string(long[:size]) {
			t.Fatalf("Put(size %d) stored %d bytes", size, len(got))
		}
	}
}

// Requests per operation: small objects take exactly one request, and
// nothing asks the bucket for its location again.
func TestRequestCounts(t *testing.T) { eachServer(t, testRequestCounts) }

func testRequestCounts(t *testing.T, srv target) {
	var n atomic.Int64
	s := srv.newStore(t, func(c *s3.Config) { c.Transport = counting(&n); c.PartSize = 5 << 20 })
	ctx := t.Context()
	big := bytes.Repeat([]byte{'z'}, 6<<20)
	for _, tc := range []struct {
		name string
		want int64
		op   func() error
	}{
		{"Put", 1, func() error { _, err := s.Put(ctx, "a", strings.NewReader("x"), 1); return err }},
		{"Put size -1", 1, func() error { _, err := s.Put(ctx, "b", io.MultiReader(strings.NewReader("x")), -1); return err }},
		{"PutIfAbsent", 1, func() error { _, err := s.PutIfAbsent(ctx, "c", strings.NewReader("x"), 1); return err }},
		{"PutIfAbsent lost", 1, func() error {
			if _, err := s.PutIfAbsent(ctx, "c", strings.NewReader("x"), 1); !errors.Is(err, storage.ErrPreconditionFailed) {
				return fmt.Errorf("got %v", err)
			}
			return nil
		}},
		{"Stat", 1, func() error { _, err := s.Stat(ctx, "a"); return err }},
		{"Get", 1, func() error { _, err := io.ReadAll(must(s.Get(ctx, "a", storage.GetOptions{}))); return err }},
		{"List", 1, func() error { _, err := s.List(ctx, storage.ListOptions{MaxKeys: 1}); return err }},
		{"Delete", 1, func() error { return s.Delete(ctx, "b") }},
		{"Put 6 MiB (2 parts)", 4, func() error { _, err := s.Put(ctx, "big", bytes.NewReader(big), int64(len(big))); return err }},
		{"PresignGet", 0, func() error { _, err := s.PresignGet(ctx, "a", time.Minute); return err }},
	} {
		before := n.Load()
		if err := tc.op(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := n.Load() - before; got != tc.want {
			t.Errorf("%s took %d requests, want %d", tc.name, got, tc.want)
		}
	}
}

// must turns Get's results into a reader that fails with Get's error.
func must(rc io.ReadCloser, _ storage.Info, err error) io.Reader {
	if err != nil {
		return errReader{err}
	}
	return rc
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// counting returns a transport that counts the requests it sends.
func counting(n *atomic.Int64) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		n.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// BenchmarkPut compares UNSIGNED-PAYLOAD (the default) with SigV4 payload
// signing (SignPayload), which streams a SHA-256 over every byte on http
// endpoints, for one-PUT and multipart sizes, with the body's size known
// or not (docker's chunked PATCH), and reports allocations: a body of
// unknown size is held in reused chunks (held.go), not a new buffer.
func BenchmarkPut(b *testing.B) {
	for _, signed := range []bool{false, true} {
		for _, size := range []int{1 << 20, 16 << 20, 64 << 20} {
			for _, known := range []bool{true, false} {
				b.Run(fmt.Sprintf("signed=%v/size=%dMiB/known=%v", signed, size>>20, known), func(b *testing.B) {
					cfg := minioTarget().config(minioTarget().newBucket(b))
					cfg.CreateBucket, cfg.SignPayload = true, signed
					s, err := s3.New(b.Context(), cfg)
					if err != nil {
						b.Fatal(err)
					}
					data := bytes.Repeat([]byte{'x'}, size)
					b.SetBytes(int64(size))
					b.ReportAllocs()
					for b.Loop() {
						var r io.Reader = bytes.NewReader(data)
						n := int64(size)
						if !known {
							r, n = io.MultiReader(r), -1
						}
						if _, err := s.Put(b.Context(), "obj", r, n); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
