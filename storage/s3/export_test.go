package s3

import "context"

// IncompleteUploads counts the bucket's unfinished multipart uploads, so
// tests can check that failed writes abort theirs.
func (s *Store) IncompleteUploads(ctx context.Context) (int, error) {
	n := 0
	for u := range s.client.ListIncompleteUploads(ctx, s.bucket, "", true) {
		if u.Err != nil {
			return n, u.Err
		}
		n++
	}
	return n, nil
}

// ProbePrefix is where New's conditional-write probe writes, under Root.
const ProbePrefix = probePrefix

// SetCopyMax lowers the largest object CopyFrom copies with one
// CopyObject (5 GiB), so tests reach the multipart copy with small
// objects; n must stay at least S3's 5 MiB part minimum.
func (s *Store) SetCopyMax(n int64) { s.copyMax = n }
