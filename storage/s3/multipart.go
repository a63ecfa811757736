package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/slipway/slipway/storage"
)

// CreateMultipart starts an S3 multipart upload for key.
func (s *Store) CreateMultipart(ctx context.Context, key string) (string, error) {
	obj, err := s.object("create multipart", key)
	if err != nil {
		return "", err
	}
	id, err := s.core.NewMultipartUpload(ctx, s.bucket, obj, s.options(cond{}))
	if err != nil {
		return "", s.fail(ctx, "create multipart", key, err)
	}
	return id, nil
}

// upload checks the key and the upload id of a multipart call.
func (s *Store) upload(op, key, id string) (string, error) {
	obj, err := s.object(op, key)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", fmt.Errorf("s3: %s %q: empty upload id: %w", op, key, storage.ErrNotFound)
	}
	return obj, nil
}

// PutPart uploads part n. S3 needs every part's length up front, so a part
// of unknown size is read into memory when it fits in PartSize, and spilled
// to a temporary file in Config.TempDir beyond that.
func (s *Store) PutPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64) (storage.Part, error) {
	obj, err := s.upload("put part", key, uploadID)
	if err != nil {
		return storage.Part{}, err
	}
	if n < 1 || n > maxPartNumber {
		return storage.Part{}, fmt.Errorf("s3: put part %q: part number %d not in 1..%d", key, n, maxPartNumber)
	}
	var b *body
	if size >= 0 {
		b, err = newBody(ctx, r, size)
	} else {
		var done func()
		b, done, err = s.spool(r)
		defer done()
	}
	if err != nil {
		return storage.Part{}, fmt.Errorf("s3: put part %q: reading body: %w", key, err)
	}
	p, err := s.core.PutObjectPart(ctx, s.bucket, obj, uploadID, n, b.reader(), b.size, s.partOptions())
	if err != nil {
		return storage.Part{}, s.writeFail(ctx, "put part", key, b, err, cond{})
	}
	return storage.Part{Number: n, ETag: p.ETag, Size: b.size}, nil
}

// spool reads a body of unknown size into a pooled buffer, or into a
// temporary file when it outgrows the buffer. done releases either.
func (s *Store) spool(r io.Reader) (*body, func(), error) {
	bp := s.bufs.Get().(*[]byte)
	buf := *bp
	n, err := io.ReadFull(r, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return bytesBody(buf[:n]), func() { s.bufs.Put(bp) }, nil
	}
	if err != nil {
		s.bufs.Put(bp)
		return nil, func() {}, err
	}
	f, err := os.CreateTemp(s.tempDir, "slipway-s3-part-*")
	if err != nil {
		s.bufs.Put(bp)
		return nil, func() {}, err
	}
	done := func() { f.Close(); os.Remove(f.Name()) }
	_, err = f.Write(buf)
	s.bufs.Put(bp)
	var rest int64
	if err == nil {
		rest, err = io.Copy(f, r)
	}
	if err != nil {
		done()
		return nil, func() {}, err
	}
	return &body{size: int64(n) + rest, at: f}, done, nil
}

// ListParts returns the upload's parts in number order, following S3's
// pages of at most 1000 parts.
func (s *Store) ListParts(ctx context.Context, key, uploadID string) ([]storage.Part, error) {
	obj, err := s.upload("list parts", key, uploadID)
	if err != nil {
		return nil, err
	}
	var parts []storage.Part
	marker := 0
	for {
		res, err := s.core.ListObjectParts(ctx, s.bucket, obj, uploadID, marker, 1000)
		if err != nil {
			return nil, s.fail(ctx, "list parts", key, err)
		}
		for _, p := range res.ObjectParts {
			// Unlike PutObjectPart, ListObjectParts leaves S3's quotes on.
			parts = append(parts, storage.Part{Number: p.PartNumber, ETag: strings.Trim(p.ETag, `"`), Size: p.Size})
		}
		if !res.IsTruncated || res.NextPartNumberMarker <= marker {
			return parts, nil
		}
		marker = res.NextPartNumberMarker
	}
}

// CompleteMultipart assembles the parts into key. S3 checks each part's
// ETag (a stale or missing part is ErrPreconditionFailed) and keeps the
// upload when it refuses, as the storage contract asks. The returned size
// is the sum of the parts' sizes as the caller passed them (S3 does not
// return it); they are what PutPart and ListParts reported.
func (s *Store) CompleteMultipart(ctx context.Context, key, uploadID string, parts []storage.Part) (storage.Info, error) {
	obj, err := s.upload("complete multipart", key, uploadID)
	if err != nil {
		return storage.Info{}, err
	}
	if len(parts) == 0 {
		return storage.Info{}, fmt.Errorf("s3: complete multipart %q: no parts", key)
	}
	cps := make([]minio.CompletePart, len(parts))
	var size int64
	for i, p := range parts {
		if p.Number < 1 || (i > 0 && p.Number <= parts[i-1].Number) {
			return storage.Info{}, fmt.Errorf("s3: complete multipart %q: part numbers must ascend", key)
		}
		cps[i] = minio.CompletePart{PartNumber: p.Number, ETag: p.ETag}
		size += p.Size
	}
	ui, err := s.complete(ctx, obj, uploadID, cps, cond{})
	if err != nil {
		if s.uploadGone(ctx, obj, uploadID, err) {
			return storage.Info{}, fmt.Errorf("s3: complete multipart %q: %w: %w", key, storage.ErrNotFound, err)
		}
		return storage.Info{}, s.fail(ctx, "complete multipart", key, err)
	}
	return uploaded(key, size, ui), nil
}

// uploadGone tells whether a complete refused with InvalidPart was in fact
// about an upload that no longer exists: versitygw (v1.8.0) answers so
// where S3 and MinIO say NoSuchUpload. One more request, on this failure
// path only.
func (s *Store) uploadGone(ctx context.Context, obj, uploadID string, err error) bool {
	if minio.ToErrorResponse(err).Code != "InvalidPart" {
		return false
	}
	_, lerr := s.core.ListObjectParts(ctx, s.bucket, obj, uploadID, 0, 1)
	return minio.ToErrorResponse(lerr).Code == "NoSuchUpload"
}

// AbortMultipart drops the upload; S3's NoSuchUpload is success here.
func (s *Store) AbortMultipart(ctx context.Context, key, uploadID string) error {
	obj, err := s.upload("abort multipart", key, uploadID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.core.AbortMultipartUpload(ctx, s.bucket, obj, uploadID); err != nil {
		if errors.Is(classify(err), storage.ErrNotFound) {
			return nil
		}
		return s.fail(ctx, "abort multipart", key, err)
	}
	return nil
}
