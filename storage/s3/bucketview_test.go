package s3_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/s3"
)

// A store's bucket view reads the whole bucket by bucket-absolute keys,
// outside the store's Root (the stock registry's data of an import, in
// place), with the store's ranges, errors and presigning, and cannot
// write or delete.
func TestBucketView(t *testing.T) { eachServer(t, testBucketView) }

func testBucketView(t *testing.T, srv target) {
	cfg := srv.config(srv.newBucket(t))
	cfg.CreateBucket = true
	whole := open(t, cfg) // what the stock registry writes, at the bucket's top
	endpoint := srv.endpoint
	_, port, _ := strings.Cut(endpoint, ":")
	redirect := "http://localhost:" + port
	if !strings.HasPrefix(endpoint, "127.0.0.1:") {
		redirect = "" // an external endpoint: no second name known
	}
	cfg.Root, cfg.RedirectEndpoint = "slipway", redirect
	rooted := open(t, cfg)
	const stockKey = "docker/registry/v2/blobs/sha256/ab/abcd/data"
	const content = "0123456789 stock layer"
	put(t, whole, stockKey, content)
	put(t, rooted, "k", "slipway's own")

	v := rooted.BucketView()
	ctx := t.Context()
	rc, info, err := v.Get(ctx, stockKey, storage.GetOptions{})
	if err != nil {
		t.Fatalf("view Get(%s): %v", stockKey, err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != content || info.Size != int64(len(content)) || info.Key != stockKey {
		t.Fatalf("view Get = %q %+v, want %q of %d bytes", b, info, content, len(content))
	}
	for _, r := range []struct {
		opts storage.GetOptions
		want string
	}{
		{storage.GetOptions{Offset: 3, Length: 4}, "3456"},
		{storage.GetOptions{Offset: 11}, "stock layer"},
		{storage.GetOptions{Offset: int64(len(content))}, ""},
	} {
		rc, info, err := v.Get(ctx, stockKey, r.opts)
		if err != nil {
			t.Fatalf("view Get(%+v): %v", r.opts, err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != r.want || info.Size != int64(len(content)) {
			t.Errorf("view Get(%+v) = %q (size %d), want %q (size %d)", r.opts, b, info.Size, r.want, len(content))
		}
	}
	if info, err := v.Stat(ctx, stockKey); err != nil || info.Size != int64(len(content)) || info.Key != stockKey {
		t.Errorf("view Stat = %+v, %v", info, err)
	}
	// Bucket-absolute: the store's own key is under its Root, and the
	// stock key is not one of the store's.
	if got := read(t, whole, "slipway/k"); got != "slipway's own" {
		t.Fatalf("slipway/k = %q", got)
	}
	if _, err := v.Stat(ctx, "slipway/k"); err != nil {
		t.Errorf("view Stat(slipway/k) = %v, want the store's object", err)
	}
	if _, err := v.Stat(ctx, "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("view Stat(k) = %v, want ErrNotFound (k is slipway/k in the bucket)", err)
	}
	if _, err := rooted.Stat(ctx, stockKey); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("store Stat(%s) = %v, want ErrNotFound (outside its Root)", stockKey, err)
	}
	missing := "docker/registry/v2/blobs/sha256/ab/gone/data"
	if _, _, err := v.Get(ctx, missing, storage.GetOptions{}); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("view Get(missing) = %v, want ErrNotFound", err)
	}
	if _, err := v.Stat(ctx, missing); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("view Stat(missing) = %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"../x", "/docker/x", ""} {
		if _, _, err := v.Get(ctx, bad, storage.GetOptions{}); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("view Get(%q) = %v, want ErrInvalidKey", bad, err)
		}
		if _, err := v.PresignGet(ctx, bad, time.Minute); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("view PresignGet(%q) = %v, want ErrInvalidKey", bad, err)
		}
	}

	u, err := v.PresignGet(ctx, stockKey, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if redirect != "" && u.Host != "localhost:"+port {
		t.Errorf("presigned host %q, want the redirect endpoint localhost:%s", u.Host, port)
	}
	if status, got := fetch(t, http.MethodGet, u.String()); status != http.StatusOK || got != content {
		t.Fatalf("GET presigned %s = %d %q", u, status, got)
	}
	hu, err := v.PresignHead(ctx, stockKey, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Head(hu.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(content)) {
		t.Fatalf("HEAD presigned = %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	if _, err := v.PresignGet(ctx, stockKey, 0); err == nil {
		t.Error("view PresignGet(expiry 0) succeeded")
	}

	// No write or delete reaches the bucket through the view.
	if _, ok := v.(interface {
		Delete(context.Context, string) error
	}); ok {
		t.Error("the bucket view can delete")
	}
	if _, ok := v.(interface {
		Put(context.Context, string, io.Reader, int64) (storage.Info, error)
	}); ok {
		t.Error("the bucket view can write")
	}
	var _ storage.BucketViewer = rooted
	var _ storage.BucketViewer = (*s3.Store)(nil)
}
