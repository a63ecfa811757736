package registry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

// fakeView is a bucket view on a store: here Slipway's own, as in a bucket
// where both roots are empty and the stock layout sits under docker/, so
// a test sees whether anything but the view reaches the outside key.
type fakeView struct{ bucket storage.Store }

func (v fakeView) Get(ctx context.Context, key string, opts storage.GetOptions) (io.ReadCloser, storage.Info, error) {
	return v.bucket.Get(ctx, key, opts)
}

func (v fakeView) Stat(ctx context.Context, key string) (storage.Info, error) {
	return v.bucket.Stat(ctx, key)
}

func (v fakeView) PresignGet(_ context.Context, key string, expiry time.Duration) (*url.URL, error) {
	return url.Parse("https://bucket.test/" + key + "?method=GET&expiry=" + expiry.String())
}

func (v fakeView) PresignHead(_ context.Context, key string, expiry time.Duration) (*url.URL, error) {
	return url.Parse("https://bucket.test/" + key + "?method=HEAD&expiry=" + expiry.String())
}

// withView is a store that gives a bucket view, for Verify.
type withView struct {
	storage.Store
	view storage.BucketView
}

func (w withView) BucketView() storage.BucketView { return w.view }

// newOutsideEnv is a registry whose bucket view reads its own store.
func newOutsideEnv(t *testing.T, opts Options) *env {
	t.Helper()
	dir := t.TempDir()
	bucket, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	opts.BucketView = fakeView{bucket}
	return newEnvWith(t, dir, opts)
}

// stockBlob writes data where the stock registry keeps it and returns its
// digest and bucket key.
func stockBlob(t *testing.T, s storage.Store, data string) (digest.Digest, string) {
	t.Helper()
	d := digest.FromString(data)
	key := "docker/registry/v2/blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data"
	if _, err := s.Put(t.Context(), key, strings.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	return d, key
}

// An imported blob whose data stays in the stock layout reads like any
// other: GET, HEAD, ranges, ReadBlob, and its descriptor is the outside
// format.
func TestOutsideBlobRead(t *testing.T) {
	e := newOutsideEnv(t, Options{})
	const data = "0123456789 stock layer"
	d, key := stockBlob(t, e.store, data)
	created, err := e.reg.meta.ImportOutsideBlob(t.Context(), "imported", d, key, int64(len(data)))
	if err != nil || !created {
		t.Fatalf("ImportOutsideBlob = %v, %v; want created", created, err)
	}
	want := `{"data":{"bucket_key":"` + key + `"},"size":22}`
	if got := string(readKey(t, e.store, blobKey(d))); got != want {
		t.Fatalf("descriptor %s, want %s", got, want)
	}
	path := "/v2/imported/blobs/" + d.String()
	r := e.do("GET", path, nil)
	wantStatus(t, r, http.StatusOK)
	if string(r.body) != data {
		t.Errorf("GET body %q, want %q", r.body, data)
	}
	r = e.do("HEAD", path, nil)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Content-Length", strconv.Itoa(len(data)))
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	r = e.do("GET", path, nil, "Range", "bytes=3-6")
	wantStatus(t, r, http.StatusPartialContent)
	wantHeader(t, r, "Content-Range", "bytes 3-6/22")
	if string(r.body) != "3456" {
		t.Errorf("range body %q, want 3456", r.body)
	}
	b, err := e.reg.meta.ReadBlob(t.Context(), d, 1<<10)
	if err != nil || string(b) != data {
		t.Errorf("ReadBlob = %q, %v", b, err)
	}
	// Not in another repository.
	wantError(t, e.do("GET", "/v2/other/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
}

// A redirect presigns the outside key through the view.
func TestOutsideBlobRedirect(t *testing.T) {
	e := newOutsideEnv(t, Options{Redirect: true, RedirectExpiry: time.Minute})
	d, key := stockBlob(t, e.store, "redirected layer")
	if _, err := e.reg.meta.ImportOutsideBlob(t.Context(), "imported", d, key, 16); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get(e.url("/v2/imported/blobs/" + d.String()))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	want := "https://bucket.test/" + key + "?method=GET&expiry=1m0s"
	if res.StatusCode != http.StatusTemporaryRedirect || res.Header.Get("Location") != want {
		t.Fatalf("GET = %d Location %q, want 307 to %s", res.StatusCode, res.Header.Get("Location"), want)
	}
}

// Outside data the stock registry's collector deleted is BLOB_UNKNOWN on
// GET, even with the descriptor cached, and Verify reports it, as it does
// data of another size.
func TestOutsideBlobGone(t *testing.T) {
	e := newOutsideEnv(t, Options{})
	const data = "soon gone"
	d, key := stockBlob(t, e.store, data)
	if _, err := e.reg.meta.ImportOutsideBlob(t.Context(), "imported", d, key, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	path := "/v2/imported/blobs/" + d.String()
	wantStatus(t, e.do("GET", path, nil), http.StatusOK) // caches the descriptor and the link
	if err := e.store.Delete(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	wantError(t, e.do("GET", path, nil), http.StatusNotFound, "BLOB_UNKNOWN")
	wantError(t, e.do("GET", path, nil, "Range", "bytes=0-1"), http.StatusNotFound, "BLOB_UNKNOWN")
	verify := func() []string {
		problems, err := Verify(t.Context(), withView{e.store, fakeView{e.store}})
		if err != nil {
			t.Fatal(err)
		}
		return problems
	}
	if p := verify(); len(p) != 1 || !strings.Contains(p[0], key+" missing") {
		t.Errorf("Verify = %q, want the outside data %s missing", p, key)
	}
	if _, err := e.store.Put(t.Context(), key, strings.NewReader(data+"!"), int64(len(data)+1)); err != nil {
		t.Fatal(err)
	}
	if p := verify(); len(p) != 1 || !strings.Contains(p[0], "holds 10 bytes, descriptor says 9") {
		t.Errorf("Verify = %q, want the outside data's size reported", p)
	}
	// Put back as it was: the env's own Verify finds the store clean.
	if _, err := e.store.Put(t.Context(), key, strings.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

// Without a bucket view an outside blob answers 500 to GET (HEAD needs
// the descriptor only), and Verify says it cannot check it.
func TestOutsideBlobWithoutView(t *testing.T) {
	e := newEnv(t)
	d, key := stockBlob(t, e.store, "no view")
	if _, err := e.reg.meta.ImportOutsideBlob(t.Context(), "imported", d, key, 7); err != nil {
		t.Fatal(err)
	}
	path := "/v2/imported/blobs/" + d.String()
	wantError(t, e.do("GET", path, nil), http.StatusInternalServerError, "UNKNOWN")
	wantStatus(t, e.do("HEAD", path, nil), http.StatusOK)
	if _, err := e.reg.meta.ReadBlob(t.Context(), d, 1<<10); !errors.Is(err, errNoBucketView) {
		t.Errorf("ReadBlob = %v, want errNoBucketView", err)
	}
	problems, err := Verify(t.Context(), e.store)
	if err != nil || len(problems) != 1 || !strings.Contains(problems[0], key) || !strings.Contains(problems[0], "no bucket view") {
		t.Errorf("Verify = %q, %v; want the outside data unverifiable", problems, err)
	}
	wantStatus(t, e.do("DELETE", path, nil), http.StatusAccepted) // the env's Verify then sees no link
}

// Nothing that deletes data ever gets the outside key: DeleteObject (the
// collector's delete) removes the descriptor only, DescriptorData (the
// collector's view) names no data and 0 bytes.
func TestOutsideBlobDeleteKeepsData(t *testing.T) {
	e := newOutsideEnv(t, Options{})
	d, key := stockBlob(t, e.store, "stock data stays")
	if _, err := e.reg.meta.ImportOutsideBlob(t.Context(), "imported", d, key, 16); err != nil {
		t.Fatal(err)
	}
	keys, size, err := DescriptorData(readKey(t, e.store, blobKey(d)))
	if err != nil || len(keys) != 0 || size != 0 {
		t.Errorf("DescriptorData = %q %d %v, want no data keys and 0 bytes", keys, size, err)
	}
	wantStatus(t, e.do("DELETE", "/v2/imported/blobs/"+d.String(), nil), http.StatusAccepted)
	if err := e.reg.meta.DeleteObject(t.Context(), blobKey(d)); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.reg.meta.exists(t.Context(), blobKey(d)); err != nil || ok {
		t.Errorf("descriptor still there after DeleteObject (%v)", err)
	}
	if got := string(readKey(t, e.store, key)); got != "stock data stays" {
		t.Errorf("outside data %q after DeleteObject", got)
	}
	wantNoKeysUnder(t, e.store, DataPrefix)
}

// Importing a blob the registry holds changes nothing (the existing
// descriptor wins, the stock data is not touched) and links it; a rerun
// is the same.
func TestImportOutsideBlobDedupe(t *testing.T) {
	e := newOutsideEnv(t, Options{})
	const data = "pushed before the import"
	d, key := stockBlob(t, e.store, data)
	e.pushBlob("pushed", []byte(data))
	before := string(readKey(t, e.store, blobKey(d)))
	for _, repo := range []string{"pushed", "imported", "imported"} {
		created, err := e.reg.meta.ImportOutsideBlob(t.Context(), repo, d, key, int64(len(data)))
		if err != nil || created {
			t.Fatalf("ImportOutsideBlob(%s) = %v, %v; want the existing descriptor", repo, created, err)
		}
	}
	if got := string(readKey(t, e.store, blobKey(d))); got != before || !strings.Contains(got, `"data":"data/`) {
		t.Errorf("descriptor %s, want the push's %s", got, before)
	}
	if got := string(readKey(t, e.store, key)); got != data {
		t.Errorf("stock data %q", got)
	}
	r := e.do("GET", "/v2/imported/blobs/"+d.String(), nil)
	wantStatus(t, r, http.StatusOK)
	if string(r.body) != data {
		t.Errorf("GET body %q", r.body)
	}

	// An outside descriptor wins over a later one too.
	d2, key2 := stockBlob(t, e.store, "imported first")
	if created, err := e.reg.meta.ImportOutsideBlob(t.Context(), "a", d2, key2, 14); err != nil || !created {
		t.Fatalf("first import = %v, %v", created, err)
	}
	if created, err := e.reg.meta.ImportOutsideBlob(t.Context(), "b", d2, "docker/elsewhere", 14); err != nil || created {
		t.Fatalf("second import = %v, %v; want the first descriptor", created, err)
	}
	wantStatus(t, e.do("GET", "/v2/b/blobs/"+d2.String(), nil), http.StatusOK)
	if _, err := e.reg.meta.ImportOutsideBlob(t.Context(), "a", d2, "../x", 14); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("ImportOutsideBlob(../x) = %v, want ErrInvalidKey", err)
	}
}

// The stored forms: descriptors written before outside data existed read
// and write back byte for byte; an outside reference is strict.
func TestBlobDescFormat(t *testing.T) {
	for _, raw := range []string{
		`{"data":"data/ab/x","size":3}`,
		`{"size":0}`,
		`{"size":5,"segments":[{"key":"data/aa/1","size":2},{"key":"data/bb/2","size":3}]}`,
		`{"data":{"bucket_key":"docker/registry/v2/blobs/sha256/ab/abcd/data"},"size":7}`,
	} {
		var bd blobDesc
		if err := json.Unmarshal([]byte(raw), &bd); err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		if b, err := json.Marshal(bd); err != nil || string(b) != raw {
			t.Errorf("%s reads as %+v and writes back as %s (%v)", raw, bd, b, err)
		}
	}
	var old blobDesc
	mustUnmarshal(t, []byte(`{"data":"data/ab/x","size":3}`), &old)
	if old.Outside != "" || len(old.segments()) != 1 || old.segments()[0].Key != "data/ab/x" {
		t.Errorf("old descriptor reads as %+v", old)
	}
	for _, bad := range []string{
		`{"data":{"bucket_key":""},"size":1}`,
		`{"data":{},"size":1}`,
		`{"data":{"bucket_key":"k","etag":"x"},"size":1}`,
		`{"data":{"bucket_key":"k"},"segments":[{"key":"data/aa/1","size":1}],"size":1}`,
		`{"data":5,"size":1}`,
	} {
		var bd blobDesc
		if err := json.Unmarshal([]byte(bad), &bd); err == nil {
			t.Errorf("%s reads as %+v, want an error", bad, bd)
		}
	}
	if _, err := json.Marshal(blobDesc{Data: "data/ab/x", Outside: "k", Size: 1}); err == nil {
		t.Error("a descriptor with both a data key and outside data was written")
	}
}
