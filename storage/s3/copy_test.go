package s3_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/s3"
)

// recorder is a transport that notes every request ("METHOD path?query",
// with " copy-from=<source>" for a server-side copy) and, when refuse is
// set, answers the copies it selects with 403 AccessDenied.
type recorder struct {
	mu     sync.Mutex
	reqs   []string
	refuse func(*http.Request) bool
}

func (rec *recorder) RoundTrip(r *http.Request) (*http.Response, error) {
	line := r.Method + " " + r.URL.Path
	if r.URL.RawQuery != "" {
		line += "?" + r.URL.RawQuery
	}
	if c := r.Header.Get("X-Amz-Copy-Source"); c != "" {
		line += " copy-from=" + c
	}
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, line)
	rec.mu.Unlock()
	if rec.refuse != nil && rec.refuse(r) {
		body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>`
		return &http.Response{StatusCode: http.StatusForbidden, Status: "403 Forbidden", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)), Request: r}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

// since returns the requests sent after the first n.
func (rec *recorder) since(n int) []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.reqs[n:])
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.reqs)
}

// stockObject puts data at a bucket key with a plain client, as the stock
// registry would, and returns the source store (read-only, rooted at the
// stock root "stock") and the key it knows the object by.
func stockObject(t *testing.T, srv target, bucket string, data []byte) (storage.Store, string) {
	t.Helper()
	const key = "docker/registry/v2/blobs/sha256/ab/abcd/data"
	if _, err := srv.client(t).PutObject(t.Context(), bucket, "stock/"+key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := srv.config(bucket)
	cfg.Root = "stock"
	src, err := s3.NewReadOnly(waitCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src, key
}

func locate(t *testing.T, s storage.Store, key string) storage.Location {
	t.Helper()
	l, ok := s.(storage.Locator)
	if !ok {
		t.Fatalf("%T is no storage.Locator", s)
	}
	loc, err := l.Locate(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// wantServerSide fails unless every request of a copy is a copy, a HEAD,
// or multipart bookkeeping: no byte of the object went through the client.
func wantServerSide(t *testing.T, reqs []string) {
	t.Helper()
	for _, r := range reqs {
		copying := strings.HasPrefix(r, "PUT ") && strings.Contains(r, " copy-from=")
		bookkeeping := strings.HasPrefix(r, "POST ") && (strings.Contains(r, "?uploads") || strings.Contains(r, "uploadId="))
		if !copying && !bookkeeping && !strings.HasPrefix(r, "HEAD ") {
			t.Errorf("a copy sent %q: not a server-side copy", r)
		}
	}
}

func TestCopyFrom(t *testing.T) { eachServer(t, testCopyFrom) }

func testCopyFrom(t *testing.T, srv target) {
	data := []byte("a stock registry's layer")
	for _, tc := range []struct {
		name        string
		otherBucket bool
	}{{"same bucket", false}, {"other bucket", true}} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			dst := srv.newStore(t, func(c *s3.Config) { c.Root = "slipway"; c.Transport = rec })
			bucket := locate(t, dst, "x").Bucket
			if tc.otherBucket {
				bucket = srv.newBucket(t)
				if err := srv.client(t).MakeBucket(t.Context(), bucket, minio.MakeBucketOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			src, key := stockObject(t, srv, bucket, data)
			loc := locate(t, src, key)
			if loc.Bucket != bucket || loc.Object != "stock/"+key || loc.Endpoint != srv.endpoint {
				t.Fatalf("Locate = %+v, want bucket %s, object stock/%s, endpoint %s", loc, bucket, key, srv.endpoint)
			}

			n := rec.count()
			info, err := dst.CopyFrom(t.Context(), "data/ab/copy", loc, int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if info.Key != "data/ab/copy" || info.Size != int64(len(data)) || info.ETag == "" || info.ModTime.IsZero() {
				t.Errorf("CopyFrom returned %+v", info)
			}
			reqs := rec.since(n)
			wantServerSide(t, reqs)
			if len(reqs) != 2 { // the CopyObject and the HEAD checking its size
				t.Errorf("the copy took %d requests, want 2: %q", len(reqs), reqs)
			}
			if got := read(t, dst, "data/ab/copy"); got != string(data) {
				t.Errorf("copied %q, want %q", got, data)
			}
			if got := read(t, src, key); got != string(data) {
				t.Errorf("the source now holds %q", got)
			}
		})
	}
}

func TestCopyFromRefusals(t *testing.T) { eachServer(t, testCopyFromRefusals) }

func testCopyFromRefusals(t *testing.T, srv target) {
	data := []byte("twelve bytes")
	rec := &recorder{}
	s := srv.newStore(t, func(c *s3.Config) { c.Transport = rec })
	dst := storage.Copier(s)
	src, key := stockObject(t, srv, locate(t, s, "x").Bucket, data)
	loc := locate(t, src, key)
	ctx := t.Context()

	n := rec.count()
	for _, other := range []storage.Location{
		{Endpoint: "elsewhere.example:9000", Bucket: loc.Bucket, Object: loc.Object},
		{Path: "/var/lib/registry/docker/registry/v2/blobs/sha256/ab/abcd/data"},
		{Endpoint: loc.Endpoint, Bucket: loc.Bucket},
	} {
		if _, err := dst.CopyFrom(ctx, "data/ab/x", other, int64(len(data))); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("copy from %+v: %v, want ErrUnsupported", other, err)
		}
	}
	if reqs := rec.since(n); len(reqs) != 0 {
		t.Errorf("refusing a location sent %q", reqs)
	}

	for _, size := range []int64{int64(len(data)) - 1, int64(len(data)) + 1} {
		_, err := dst.CopyFrom(ctx, "data/ab/wrong", loc, size)
		if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "12 bytes") {
			t.Errorf("copy of 12 bytes said to be %d: %v, want ErrUnsupported naming the size", size, err)
		}
		if _, err := s.Stat(ctx, "data/ab/wrong"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a copy of the wrong size is left behind: %v", err)
		}
	}

	missing := loc
	missing.Object += "-missing"
	if _, err := dst.CopyFrom(ctx, "data/ab/missing", missing, 1); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("copy of a missing object: %v, want ErrNotFound", err)
	}

	rec.refuse = func(r *http.Request) bool { return r.Header.Get("X-Amz-Copy-Source") != "" }
	_, err := dst.CopyFrom(ctx, "data/ab/denied", loc, int64(len(data)))
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "AccessDenied") && !strings.Contains(err.Error(), "Access Denied") {
		t.Errorf("a copy the endpoint refuses: %v, want ErrUnsupported with the refusal", err)
	}
}

// Above copyMax (5 GiB; lowered here to S3's 5 MiB part minimum), the copy
// is a multipart upload of UploadPartCopy parts.
func TestCopyFromMultipart(t *testing.T) { eachServer(t, testCopyFromMultipart) }

func testCopyFromMultipart(t *testing.T, srv target) {
	data := make([]byte, 12<<20)
	_, _ = rand.Read(data)
	rec := &recorder{}
	s := srv.newStore(t, func(c *s3.Config) { c.Transport = rec })
	s.SetCopyMax(5 << 20)
	src, key := stockObject(t, srv, locate(t, s, "x").Bucket, data)
	loc := locate(t, src, key)
	ctx := t.Context()

	n := rec.count()
	info, err := s.CopyFrom(ctx, "data/cd/big", loc, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("CopyFrom returned %+v", info)
	}
	reqs := rec.since(n)
	wantServerSide(t, reqs)
	parts := 0
	for _, r := range reqs {
		if strings.Contains(r, "partNumber=") && strings.Contains(r, " copy-from=") {
			parts++
		}
	}
	// HEAD of the source, initiate, 3 part copies (5+5+2 MiB), complete,
	// HEAD of the copy.
	if parts != 3 || len(reqs) != 7 {
		t.Errorf("the copy took %d part copies in %d requests, want 3 in 7: %q", parts, len(reqs), reqs)
	}
	if got := read(t, s, "data/cd/big"); got != string(data) {
		t.Errorf("the copy differs from the source (%d bytes)", len(got))
	}

	if _, err := s.CopyFrom(ctx, "data/cd/short", loc, int64(len(data))-1); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("a multipart copy of the wrong size: %v, want ErrUnsupported", err)
	}
	if _, err := s.Stat(ctx, "data/cd/short"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a copy of the wrong size is left behind: %v", err)
	}

	rec.refuse = func(r *http.Request) bool { return strings.Contains(r.URL.RawQuery, "partNumber=2") }
	if _, err := s.CopyFrom(ctx, "data/cd/denied", loc, int64(len(data))); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("a part copy the endpoint refuses: %v, want ErrUnsupported", err)
	}
	wantNoUploads(t, s)
	if _, err := s.Stat(ctx, "data/cd/denied"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a refused multipart copy left an object: %v", err)
	}
}

// A store opened read-only changes nothing in its bucket, sends only
// reads, and refuses every write before it reaches S3.
func TestNewReadOnly(t *testing.T) { eachServer(t, testNewReadOnly) }

func testNewReadOnly(t *testing.T, srv target) {
	bucket := srv.newBucket(t)
	c := srv.client(t)
	ctx := t.Context()
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"stock/docker/registry/v2/blobs/sha256/ab/abcd/data", "stock/docker/registry/v2/repositories/app/_layers/sha256/abcd/link", "other"} {
		if _, err := c.PutObject(ctx, bucket, k, strings.NewReader(k), int64(len(k)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	listing := func() []string {
		var out []string
		for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			out = append(out, o.Key+" "+o.ETag+" "+o.LastModified.String())
		}
		return out
	}
	before := listing()

	rec := &recorder{}
	cfg := srv.config(bucket)
	cfg.Root = "stock"
	cfg.Transport = rec
	s, err := s3.NewReadOnly(waitCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	const blob = "docker/registry/v2/blobs/sha256/ab/abcd/data"
	if got := read(t, s, blob); got != "stock/"+blob {
		t.Errorf("read %q", got)
	}
	page, err := s.List(ctx, storage.ListOptions{Prefix: "docker/"})
	if err != nil || len(page.Objects) != 2 {
		t.Errorf("list: %+v, %v", page, err)
	}
	if _, ok := s.(storage.Presigner); !ok {
		t.Error("a read-only store does not presign")
	}
	if loc := locate(t, s, blob); loc.Object != "stock/"+blob {
		t.Errorf("Locate = %+v", loc)
	}
	if _, ok := s.(storage.Copier); ok { // the source must stay unwritable
		t.Error("a read-only store offers CopyFrom")
	}
	writes := map[string]func() error{
		"put":           func() error { _, err := s.Put(ctx, blob, strings.NewReader("x"), 1); return err },
		"put-if-absent": func() error { _, err := s.PutIfAbsent(ctx, "new", strings.NewReader("x"), 1); return err },
		"put-if-match":  func() error { _, err := s.PutIfMatch(ctx, blob, strings.NewReader("x"), 1, "etag"); return err },
		"delete":        func() error { return s.Delete(ctx, blob) },
	}
	for op, write := range writes {
		if err := write(); !errors.Is(err, storage.ErrReadOnly) {
			t.Errorf("%s: %v, want ErrReadOnly", op, err)
		}
	}
	for _, r := range rec.since(0) {
		if !strings.HasPrefix(r, "GET ") && !strings.HasPrefix(r, "HEAD ") {
			t.Errorf("a read-only store sent %q", r)
		}
	}
	if after := listing(); !slices.Equal(before, after) {
		t.Errorf("the bucket changed:\nbefore %q\nafter  %q", before, after)
	}

	cfg.CreateBucket = true
	if _, err := s3.NewReadOnly(ctx, cfg); err == nil || !strings.Contains(err.Error(), "create_bucket") {
		t.Errorf("read-only with create_bucket: %v", err)
	}
	cfg.CreateBucket = false
	cfg.Bucket = srv.newBucket(t)
	if _, err := s3.NewReadOnly(ctx, cfg); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("read-only on a missing bucket: %v", err)
	}
}
