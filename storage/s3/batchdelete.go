package s3

import (
	"context"

	"github.com/minio/minio-go/v7"

	"github.com/slipway/slipway/storage"
)

// DeleteBatch deletes keys with S3's DeleteObjects (POST ?delete), up to
// 1,000 keys a request (minio-go cuts the list): the collector frees
// objects and their tombstones by the thousand instead of one DELETE
// each. A missing key is no error, as for Delete; the first key S3
// refuses is the error.
func (s *Store) DeleteBatch(ctx context.Context, keys []string) error {
	objs := make([]string, len(keys))
	for i, k := range keys {
		obj, err := s.object("delete", k)
		if err != nil {
			return err
		}
		objs[i] = obj
	}
	ch := make(chan minio.ObjectInfo, len(objs))
	for _, o := range objs {
		ch <- minio.ObjectInfo{Key: o}
	}
	close(ch)
	var first error
	for e := range s.client.RemoveObjects(ctx, s.bucket, ch, minio.RemoveObjectsOptions{}) {
		if first != nil || minio.ToErrorResponse(e.Err).Code == "NoSuchKey" {
			continue // drain: minio-go stops when the channel is read to the end
		}
		key := e.ObjectName
		if len(key) >= len(s.root) {
			key = key[len(s.root):]
		}
		first = s.fail(ctx, "delete", key, e.Err)
	}
	return first
}

var _ storage.BatchDeleter = (*Store)(nil)
