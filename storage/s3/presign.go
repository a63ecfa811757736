package s3

import (
	"context"
	"fmt"
	"net/url"
	"time"
)

// maxPresign is SigV4's limit on a presigned URL's lifetime.
const maxPresign = 7 * 24 * time.Hour

// PresignGet returns a URL that reads key until expiry has passed. It is
// signed for RedirectEndpoint's host when one is configured. Signing is
// local: no request is sent, and the object is not checked to exist.
func (s *Store) PresignGet(ctx context.Context, key string, expiry time.Duration) (*url.URL, error) {
	return s.presignURL(ctx, "presign get", key, expiry, false)
}

// PresignHead is PresignGet for HEAD requests.
func (s *Store) PresignHead(ctx context.Context, key string, expiry time.Duration) (*url.URL, error) {
	return s.presignURL(ctx, "presign head", key, expiry, true)
}

func (s *Store) presignURL(ctx context.Context, op, key string, expiry time.Duration, head bool) (*url.URL, error) {
	obj, err := s.object(op, key)
	if err != nil {
		return nil, err
	}
	return s.presignObject(ctx, op, obj, key, expiry, head)
}

// presignObject signs a URL for the S3 object obj, known to callers as key.
func (s *Store) presignObject(ctx context.Context, op, obj, key string, expiry time.Duration, head bool) (*url.URL, error) {
	var err error
	if expiry < time.Second || expiry > maxPresign {
		return nil, fmt.Errorf("s3: %s %q: expiry %v not in 1s..%v", op, key, expiry, maxPresign)
	}
	var u *url.URL
	if head {
		u, err = s.presign.PresignedHeadObject(ctx, s.bucket, obj, expiry, nil)
	} else {
		u, err = s.presign.PresignedGetObject(ctx, s.bucket, obj, expiry, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("s3: %s %q: %w", op, key, err)
	}
	return u, nil
}
