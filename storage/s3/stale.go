package s3

import (
	"context"
	"errors"
	"time"

	"github.com/slipway/slipway/storage"
)

var _ storage.StaleMultipartAborter = (*Store)(nil)

// AbortStaleMultipart lists the bucket's incomplete multipart uploads under
// prefix and aborts those initiated before cutoff. Several replicas may run
// it at once: aborting an upload twice is harmless.
func (s *Store) AbortStaleMultipart(ctx context.Context, prefix string, cutoff time.Time) (int, error) {
	keyMarker, idMarker, n := "", "", 0
	for {
		res, err := s.core.ListMultipartUploads(ctx, s.bucket, s.root+prefix, keyMarker, idMarker, "", 1000)
		if err != nil {
			return n, s.fail(ctx, "list multipart uploads", prefix, err)
		}
		for _, u := range res.Uploads {
			if !u.Initiated.Before(cutoff) {
				continue
			}
			if err := s.core.AbortMultipartUpload(ctx, s.bucket, u.Key, u.UploadID); err != nil && !errors.Is(classify(err), storage.ErrNotFound) {
				return n, s.fail(ctx, "abort multipart", u.Key, err)
			}
			n++
		}
		if !res.IsTruncated {
			return n, nil
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
}
