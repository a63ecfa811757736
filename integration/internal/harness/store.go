package harness

import (
	"context"
	"testing"
	"time"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
	"github.com/slipway/slipway/storage/s3"
)

// Store opens the registry's storage directly, as Slipway does (the folder,
// or the bucket through storage/s3), so a test can inspect it, e.g. with
// registry.Verify. Only meaningful for Slipway's layout.
func (r *Registry) Store(t testing.TB) storage.Store {
	t.Helper()
	if s := r.S3; s != nil {
		return OpenS3(t, s.MinIO, s.Bucket, s.Root)
	}
	st, err := fs.New(r.Root)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// OpenS3 opens a bucket on m with Slipway's S3 backend.
func OpenS3(t testing.TB, m *MinIO, bucket, root string) storage.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := s3.New(ctx, s3.Config{
		Endpoint:  m.Endpoint(),
		Bucket:    bucket,
		Region:    MinIORegion,
		AccessKey: MinIOAccessKey,
		SecretKey: MinIOSecretKey,
		Root:      root,
	})
	if err != nil {
		t.Fatalf("opening bucket %s on %s: %v", bucket, m.Addr, err)
	}
	return st
}
