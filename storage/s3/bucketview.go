package s3

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/slipway/slipway/storage"
)

var _ storage.BucketViewer = (*Store)(nil)

// BucketView returns a read-only view of the store's whole bucket: its
// keys are bucket-absolute S3 object names, Root not prepended, so it
// reaches objects outside the store's keys (the stock registry's data an
// imported descriptor names, docs/architecture.md §7.2). It shares the
// store's clients: the same endpoint, credentials, retries and error
// mapping (storage.ErrNotFound, storage.ErrUnavailable…), and presigns
// for the same RedirectEndpoint. Keys must follow storage.ValidKey.
func (s *Store) BucketView() storage.BucketView { return bucketView{s} }

// bucketView has Get, Stat and the presigners, and deliberately nothing
// that writes or deletes.
type bucketView struct{ s *Store }

// object checks a bucket key; the S3 object name is the key itself.
func (v bucketView) object(op, key string) error {
	if !storage.ValidKey(key) {
		return fmt.Errorf("s3: %s %q (bucket %q): %w", op, key, v.s.bucket, storage.ErrInvalidKey)
	}
	return nil
}

// Get is Store.Get of a bucket key, ranges included.
func (v bucketView) Get(ctx context.Context, key string, opts storage.GetOptions) (io.ReadCloser, storage.Info, error) {
	if err := v.object("bucket get", key); err != nil {
		return nil, storage.Info{}, err
	}
	return v.s.getObject(ctx, key, key, opts)
}

// Stat is Store.Stat of a bucket key.
func (v bucketView) Stat(ctx context.Context, key string) (storage.Info, error) {
	if err := v.object("bucket stat", key); err != nil {
		return storage.Info{}, err
	}
	return v.s.statObject(ctx, key, key)
}

// PresignGet is Store.PresignGet of a bucket key.
func (v bucketView) PresignGet(ctx context.Context, key string, expiry time.Duration) (*url.URL, error) {
	if err := v.object("bucket presign get", key); err != nil {
		return nil, err
	}
	return v.s.presignObject(ctx, "bucket presign get", key, key, expiry, false)
}

// PresignHead is Store.PresignHead of a bucket key.
func (v bucketView) PresignHead(ctx context.Context, key string, expiry time.Duration) (*url.URL, error) {
	if err := v.object("bucket presign head", key); err != nil {
		return nil, err
	}
	return v.s.presignObject(ctx, "bucket presign head", key, key, expiry, true)
}
