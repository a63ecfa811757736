package storage

import (
	"context"
	"io"
)

// BucketView reads objects of the bucket a backend stores into by their
// bucket-absolute keys, outside the backend's root: the stock registry's
// data objects that an imported blob's descriptor names in place
// (docs/architecture.md §7.2). It has no method that writes or deletes,
// so whoever holds it cannot change data Slipway does not own.
type BucketView interface {
	Get(ctx context.Context, bucketKey string, opts GetOptions) (io.ReadCloser, Info, error)
	Stat(ctx context.Context, bucketKey string) (Info, error)
	Presigner
}

// BucketViewer is implemented by backends that can give a BucketView of
// their bucket (storage/s3; a folder has no bucket).
type BucketViewer interface {
	BucketView() BucketView
}
