package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/slipway/slipway/storage"
)

// cond is a write's precondition: none, If-None-Match: *, or If-Match.
type cond struct {
	absent bool
	match  string
}

func (c cond) set() bool { return c.absent || c.match != "" }

// options returns the PUT options: no Content-MD5 (a second pass over the
// body; S3 checks nothing we need), and UNSIGNED-PAYLOAD unless the config
// asks for SigV4 payload hashing.
func (s *Store) options(c cond) minio.PutObjectOptions {
	o := minio.PutObjectOptions{SendContentMd5: false, DisableContentSha256: s.unsigned, PartSize: uint64(s.partSize)}
	switch {
	case c.absent:
		o.SetMatchETagExcept("*")
	case c.match != "":
		o.SetMatchETag(c.match)
	}
	return o
}

// Put writes key. S3 replaces objects atomically.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	return s.write(ctx, "put", key, r, size, cond{})
}

// PutIfAbsent writes key with If-None-Match: *.
//
// A write cut short (unavailable) is followed by a Stat: if the key exists,
// the answer is a lost precondition. Some servers (versitygw) answer 412
// to If-None-Match: * before reading the body and close the connection, so
// the client, still sending a large body, sees its write cut instead of the
// 412. If the cut write was this call's own and it landed, the caller sees
// what a retry after a lost answer would: the key exists.
func (s *Store) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	info, err := s.write(ctx, "put if absent", key, r, size, cond{absent: true})
	if errors.Is(err, storage.ErrUnavailable) && ctx.Err() == nil {
		if _, serr := s.Stat(ctx, key); serr == nil {
			return storage.Info{}, fmt.Errorf("s3: put if absent %q: the write was cut (%v) and the key exists: %w", key, err, storage.ErrPreconditionFailed)
		}
	}
	return info, err
}

// PutIfMatch writes key with If-Match: etag. S3 answers 404 when there is
// no object at all; that is a lost precondition too.
func (s *Store) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (storage.Info, error) {
	if _, err := s.object("put if match", key); err == nil && (etag == "" || strings.ContainsAny(etag, `"*`)) {
		// No object has such an ETag; "*" would even match any object.
		return storage.Info{}, fmt.Errorf("s3: put if match %q: ETag %q: %w", key, etag, storage.ErrPreconditionFailed)
	}
	return s.write(ctx, "put if match", key, r, size, cond{match: etag})
}

// write sends bodies of up to PartSize in one PUT and larger ones as a
// multipart upload. A body of known size is streamed from the caller's
// reader as S3 reads it; one of unknown size is held in memory up to
// PartSize first (held.go), so that it still takes a single request when
// it fits, exactly PartSize bytes included.
func (s *Store) write(ctx context.Context, op, key string, r io.Reader, size int64, c cond) (storage.Info, error) {
	obj, err := s.object(op, key)
	if err != nil {
		return storage.Info{}, err
	}
	if size >= 0 && size <= s.partSize {
		b, err := newBody(ctx, r, size)
		if err != nil {
			return storage.Info{}, fmt.Errorf("s3: %s %q: %w", op, key, err)
		}
		return s.putOnce(ctx, op, key, obj, b, c)
	}
	if size >= 0 {
		return s.putMultipart(ctx, op, key, obj, r, size, nil, c)
	}
	h, err := s.hold(r, s.partSize)
	if err == nil { // a whole part: is there more?
		var one [1]byte
		var k int
		if k, err = io.ReadFull(r, one[:]); err == nil {
			return s.putMultipart(ctx, op, key, obj, io.MultiReader(bytes.NewReader(one[:k]), r), -1, h, c)
		}
		if err == io.EOF {
			err = errEnded
		}
	}
	if err != errEnded {
		h.release()
		return storage.Info{}, fmt.Errorf("s3: %s %q: reading body: %w", op, key, err)
	}
	info, err := s.putOnce(ctx, op, key, obj, h.body(), c)
	if err == nil {
		h.release()
	}
	return info, err
}

// putOnce writes the object with one PUT.
func (s *Store) putOnce(ctx context.Context, op, key, obj string, b *body, c cond) (storage.Info, error) {
	var ui minio.UploadInfo
	var err error
	if !c.set() {
		// Idempotent: the retrying client may resend a rewindable body.
		ui, err = s.client.PutObject(ctx, s.bucket, obj, b.reader(), b.size, s.options(c))
	} else {
		err = s.retryUnapplied(ctx, b.stream == nil, func() error {
			var e error
			ui, e = s.once.Client.PutObject(ctx, s.bucket, obj, b.reader(), b.size, s.options(c))
			return e
		})
	}
	if err != nil {
		return storage.Info{}, s.writeFail(ctx, op, key, b, err, c)
	}
	return uploaded(key, b.size, ui), nil
}

// writeFail maps a write's failure. A body that broke or ended short is
// reported as itself (the round trip fails with a transport error that
// would otherwise read as S3 being unavailable). If-Match on a missing
// object is a lost precondition.
func (s *Store) writeFail(ctx context.Context, op, key string, b *body, err error, c cond) error {
	if berr := b.err(); berr != nil && ctx.Err() == nil {
		return fmt.Errorf("s3: %s %q: reading body: %w", op, key, berr)
	}
	if c.match != "" && minio.ToErrorResponse(err).Code == "NoSuchKey" {
		return fmt.Errorf("s3: %s %q: no object: %w", op, key, storage.ErrPreconditionFailed)
	}
	return s.fail(ctx, op, key, err)
}

// uploaded builds the Info of a finished write. S3 does not return the
// modification time of a PUT; the local clock stands in for it.
func uploaded(key string, size int64, ui minio.UploadInfo) storage.Info {
	mod := ui.LastModified
	if mod.IsZero() {
		mod = time.Now().UTC()
	}
	return storage.Info{Key: key, Size: size, ETag: ui.ETag, ModTime: mod}
}
