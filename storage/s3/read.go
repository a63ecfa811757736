package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/slipway/slipway/storage"
)

// Get opens key (or a range of it) with one GET. minio.Core is used rather
// than Client.GetObject because it answers synchronously (a missing object
// is an error here, not at the first Read) and hands back the headers,
// whose Content-Range carries the whole object's size for a ranged read.
func (s *Store) Get(ctx context.Context, key string, opts storage.GetOptions) (io.ReadCloser, storage.Info, error) {
	obj, err := s.object("get", key)
	if err != nil {
		return nil, storage.Info{}, err
	}
	return s.getObject(ctx, obj, key, opts)
}

// getObject is Get of the S3 object obj, known to callers as key (the
// key in errors and Info: a store key, or a bucket view's bucket key).
func (s *Store) getObject(ctx context.Context, obj, key string, opts storage.GetOptions) (io.ReadCloser, storage.Info, error) {
	var err error
	if opts.Offset < 0 {
		return nil, storage.Info{}, fmt.Errorf("s3: get %q: negative offset %d", key, opts.Offset)
	}
	var gopts minio.GetObjectOptions
	switch {
	case opts.Length > 0:
		err = gopts.SetRange(opts.Offset, opts.Offset+opts.Length-1)
	case opts.Offset > 0:
		err = gopts.SetRange(opts.Offset, 0) // bytes=offset-
	}
	if err != nil {
		return nil, storage.Info{}, fmt.Errorf("s3: get %q: %w", key, err)
	}
	body, oi, h, err := s.core.GetObject(ctx, s.bucket, obj, gopts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "InvalidRange" {
			return s.emptyTail(ctx, obj, key, opts.Offset, err)
		}
		return nil, storage.Info{}, s.fail(ctx, "get", key, err)
	}
	info := s.info(key, oi)
	if total, ok := rangeTotal(h); ok {
		info.Size = total
	}
	return &readErrors{ReadCloser: body, key: key}, info, nil
}

// readErrors classifies the errors of reading an object's body as the
// request's own are: a server going away while a body streams cuts it with
// a bare "unexpected EOF", which is storage.ErrUnavailable (503), not an
// unknown error. io.EOF, the normal end, passes as is.
type readErrors struct {
	io.ReadCloser
	key string
}

func (r *readErrors) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		if kind := classify(err); kind != nil && !errors.Is(err, kind) {
			err = fmt.Errorf("s3: read %q: %w: %w", r.key, kind, err)
		}
	}
	return n, err
}

// emptyTail answers a read starting at or past the end with nothing, as a
// file would, instead of S3's 416.
func (s *Store) emptyTail(ctx context.Context, obj, key string, offset int64, rangeErr error) (io.ReadCloser, storage.Info, error) {
	info, err := s.statObject(ctx, obj, key)
	if err != nil {
		return nil, storage.Info{}, err
	}
	if offset < info.Size { // replaced by a longer object meanwhile
		return nil, storage.Info{}, s.fail(ctx, "get", key, rangeErr)
	}
	return io.NopCloser(strings.NewReader("")), info, nil
}

// rangeTotal reads the complete length from "Content-Range: bytes a-b/total".
func rangeTotal(h http.Header) (int64, bool) {
	cr := h.Get("Content-Range")
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(cr[i+1:], 10, 64)
	return n, err == nil
}

// Stat returns key's Info with one HEAD.
func (s *Store) Stat(ctx context.Context, key string) (storage.Info, error) {
	obj, err := s.object("stat", key)
	if err != nil {
		return storage.Info{}, err
	}
	return s.statObject(ctx, obj, key)
}

// statObject is Stat of the S3 object obj, known to callers as key.
func (s *Store) statObject(ctx context.Context, obj, key string) (storage.Info, error) {
	oi, err := s.client.StatObject(ctx, s.bucket, obj, minio.StatObjectOptions{})
	if err != nil {
		return storage.Info{}, s.fail(ctx, "stat", key, err)
	}
	return s.info(key, oi), nil
}

func (s *Store) info(key string, oi minio.ObjectInfo) storage.Info {
	return storage.Info{Key: key, Size: oi.Size, ETag: oi.ETag, ModTime: oi.LastModified}
}

// Delete removes key; S3 answers success for a missing key too.
func (s *Store) Delete(ctx context.Context, key string) error {
	obj, err := s.object("delete", key)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, obj, minio.RemoveObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" { // some S3 clones say so
			return nil
		}
		return s.fail(ctx, "delete", key, err)
	}
	return nil
}
