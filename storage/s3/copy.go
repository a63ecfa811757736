package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/storage"
)

const (
	// maxCopyObject is the largest object one CopyObject may copy (S3's
	// limit, and the largest UploadPartCopy part): the default of
	// Store.copyMax.
	maxCopyObject = 5 << 30
	// copyThreads bounds the part copies of one multipart copy in flight.
	copyThreads = 4
)

var _ storage.Copier = (*Store)(nil)

// CopyFrom writes key, with Put's semantics, as a server-side copy of the
// S3 object at src, which must be size bytes: one CopyObject up to 5 GiB
// (Store.copyMax), above that a multipart upload of UploadPartCopy parts of
// at most 5 GiB, each conditional on the source's ETag, completed on the
// single-attempt client. No byte passes through this process. The new
// object has its own LastModified (the collector's age rule for unnamed
// data, docs/architecture.md 7.4, holds as for a Put). It is
// unconditional: the keys it is for (data keys) are fresh.
//
// It returns the Info of the new object, read back with a HEAD. It wraps
// errors.ErrUnsupported, so the caller streams the bytes instead, when src
// is not an S3 object or is on another endpoint than this store's (the
// credentials of one endpoint mean nothing on another), when the endpoint
// refuses the copy (AccessDenied: these credentials may not read the
// source; NotImplemented), and when the source is not size bytes (a copy
// already made is deleted). A missing source is storage.ErrNotFound.
func (s *Store) CopyFrom(ctx context.Context, key string, src storage.Location, size int64) (storage.Info, error) {
	obj, err := s.object("copy", key)
	if err != nil {
		return storage.Info{}, err
	}
	if src.Bucket == "" || src.Object == "" {
		return storage.Info{}, fmt.Errorf("s3: copy to %q from a location that is not an S3 object (%+v): %w", key, src, errors.ErrUnsupported)
	}
	from := src.Bucket + "/" + src.Object
	if !strings.EqualFold(src.Endpoint, s.host()) {
		return storage.Info{}, fmt.Errorf("s3: copy to %q from %s at endpoint %q, not this store's %q: %w",
			key, from, src.Endpoint, s.host(), errors.ErrUnsupported)
	}
	if size < 0 {
		return storage.Info{}, fmt.Errorf("s3: copy to %q from %s: negative size %d", key, from, size)
	}
	if size <= s.copyMax {
		_, err = s.client.CopyObject(ctx,
			minio.CopyDestOptions{Bucket: s.bucket, Object: obj},
			minio.CopySrcOptions{Bucket: src.Bucket, Object: src.Object})
		if err != nil {
			return storage.Info{}, s.copyFail(ctx, key, from, err)
		}
	} else if err := s.copyParts(ctx, key, obj, src, size); err != nil {
		return storage.Info{}, err
	}
	info, err := s.Stat(ctx, key)
	if err != nil {
		return storage.Info{}, err
	}
	if info.Size != size {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = s.Delete(dctx, key)
		return storage.Info{}, wrongSize(key, from, info.Size, size)
	}
	return info, nil
}

// copyParts copies the size bytes of src into obj as a multipart upload of
// UploadPartCopy parts of copyMax bytes (the last one shorter). It checks
// the source's size first (ranges cut from a wrong size would copy a
// prefix), and every part copies only the source object it saw
// (x-amz-copy-source-if-match). A failed upload is aborted.
func (s *Store) copyParts(ctx context.Context, key, obj string, src storage.Location, size int64) (err error) {
	from := src.Bucket + "/" + src.Object
	oi, err := s.client.StatObject(ctx, src.Bucket, src.Object, minio.StatObjectOptions{})
	if err != nil {
		return s.copyFail(ctx, key, from, err)
	}
	if oi.Size != size {
		return wrongSize(key, from, oi.Size, size)
	}
	n := (size + s.copyMax - 1) / s.copyMax
	if n > maxPartNumber {
		return fmt.Errorf("s3: copy to %q from %s: %d bytes exceed %d parts of %d bytes", key, from, size, maxPartNumber, s.copyMax)
	}
	id, err := s.core.NewMultipartUpload(ctx, s.bucket, obj, minio.PutObjectOptions{})
	if err != nil {
		return s.copyFail(ctx, key, from, err)
	}
	defer func() {
		if err != nil {
			s.abort(ctx, obj, id)
		}
	}()
	parts := make([]minio.CompletePart, n)
	// A failed part stops the parts not yet sent, but does not cancel
	// those in flight: the abort must come after the last part the server
	// may still be copying, or that part can outlive the abort (versitygw
	// then keeps the upload).
	var g errgroup.Group
	var failed atomic.Bool
	g.SetLimit(copyThreads)
	for i := range parts {
		off := int64(i) * s.copyMax
		g.Go(func() error {
			if failed.Load() {
				return nil
			}
			p, err := s.core.CopyObjectPart(ctx, src.Bucket, src.Object, s.bucket, obj, id, i+1,
				off, min(s.copyMax, size-off), map[string]string{"x-amz-copy-source-if-match": oi.ETag})
			if err == nil && p.ETag == "" { // an error in a 200 answer
				err = fmt.Errorf("part %d: copied without an ETag", i+1)
			}
			if err != nil {
				failed.Store(true)
			}
			parts[i] = p
			return err
		})
	}
	if err = g.Wait(); err == nil {
		_, err = s.complete(ctx, obj, id, parts, cond{})
	}
	if err != nil {
		return s.copyFail(ctx, key, from, err)
	}
	return nil
}

// copyFail maps a copy's failure: the endpoint refusing it (no read access
// to the source, no server-side copy) is errors.ErrUnsupported, anything
// else is what fail makes of it.
func (s *Store) copyFail(ctx context.Context, key, from string, err error) error {
	var resp minio.ErrorResponse
	if ctx.Err() == nil && errors.As(err, &resp) &&
		(resp.Code == "AccessDenied" || resp.Code == "NotImplemented" || resp.StatusCode == http.StatusNotImplemented) {
		return fmt.Errorf("s3: copy to %q from %s: refused: %w: %w", key, from, errors.ErrUnsupported, err)
	}
	return s.fail(ctx, "copy from "+from+" to", key, err)
}

// wrongSize: the source is not the object the caller described, which a
// streamed copy (hashing the bytes) reports better.
func wrongSize(key, from string, got, want int64) error {
	return fmt.Errorf("s3: copy to %q: %s has %d bytes, not %d: %w", key, from, got, want, errors.ErrUnsupported)
}
