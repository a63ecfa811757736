package server

import (
	"context"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

// viewStore is a backend with a bucket view (as storage/s3 has), the view
// reading the store itself.
type viewStore struct{ storage.Store }

func (v viewStore) BucketView() storage.BucketView { return storeView{v.Store} }

type storeView struct{ s storage.Store }

func (v storeView) Get(ctx context.Context, key string, o storage.GetOptions) (io.ReadCloser, storage.Info, error) {
	return v.s.Get(ctx, key, o)
}
func (v storeView) Stat(ctx context.Context, key string) (storage.Info, error) {
	return v.s.Stat(ctx, key)
}
func (v storeView) PresignGet(context.Context, string, time.Duration) (*url.URL, error) {
	return nil, storage.ErrUnavailable
}
func (v storeView) PresignHead(context.Context, string, time.Duration) (*url.URL, error) {
	return nil, storage.ErrUnavailable
}

// The registry reads an imported blob's outside data through the bucket
// view the server found on the backend; without one it cannot.
func TestRegistryGetsBucketView(t *testing.T) {
	for _, withView := range []bool{true, false} {
		cfg := testConfig(t)
		st, err := fs.New(cfg.Storage.Filesystem.Root)
		if err != nil {
			t.Fatal(err)
		}
		var store storage.Store = st
		if withView {
			store = viewStore{st}
		}
		s, _ := newTestServerWith(t, cfg, store, auth.Options{})
		const data = "stock data"
		d := digest.FromString(data)
		key := "docker/registry/v2/blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data"
		if _, err := st.Put(t.Context(), key, strings.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		meta := s.registry.Metadata()
		if _, err := meta.ImportOutsideBlob(t.Context(), "imported", d, key, int64(len(data))); err != nil {
			t.Fatal(err)
		}
		b, err := meta.ReadBlob(t.Context(), d, 1<<10)
		switch {
		case withView && (err != nil || string(b) != data):
			t.Errorf("with a bucket view: ReadBlob = %q, %v", b, err)
		case !withView && (err == nil || !strings.Contains(err.Error(), "no bucket view")):
			t.Errorf("without a bucket view: ReadBlob = %q, %v; want an error saying so", b, err)
		}
	}
}
