package s3

import (
	"context"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"

	"github.com/slipway/slipway/storage"
)

// putMultipart writes a body larger than PartSize as a multipart upload of
// PartSize parts, completed under the write's precondition. minio-go's
// PutObject would split the body itself, but it drops If-None-Match and
// If-Match from CompleteMultipartUpload (completeUploadOpts), the one
// request where checking them is atomic with the write.
//
// size may be -1; then first holds the first PartSize bytes, already read
// from r; putMultipart takes it over.
func (s *Store) putMultipart(ctx context.Context, op, key, obj string, r io.Reader, size int64, first *held, c cond) (_ storage.Info, err error) {
	src, err := s.newParts(ctx, r, size, first)
	if err != nil {
		return storage.Info{}, fmt.Errorf("s3: %s %q: %w", op, key, err)
	}
	defer func() {
		if err == nil { // see held.release
			src.release()
		}
	}()
	id, err := s.core.NewMultipartUpload(ctx, s.bucket, obj, s.options(cond{}))
	if err != nil {
		return storage.Info{}, s.fail(ctx, op, key, err)
	}
	defer func() {
		if err != nil {
			s.abort(ctx, obj, id)
		}
	}()
	var parts []minio.CompletePart
	var total int64
	for n := 1; ; n++ {
		b, err := src.next()
		if err != nil {
			return storage.Info{}, fmt.Errorf("s3: %s %q: reading body: %w", op, key, err)
		}
		if b == nil {
			break
		}
		if n > maxPartNumber {
			return storage.Info{}, fmt.Errorf("s3: %s %q: body exceeds %d parts of %d bytes", op, key, maxPartNumber, s.partSize)
		}
		p, err := s.core.PutObjectPart(ctx, s.bucket, obj, id, n, b.reader(), b.size, s.partOptions())
		if err != nil {
			return storage.Info{}, s.fail(ctx, op, key, err)
		}
		parts = append(parts, minio.CompletePart{PartNumber: n, ETag: p.ETag})
		total += b.size
	}
	ui, err := s.complete(ctx, obj, id, parts, c)
	if err != nil {
		return storage.Info{}, s.writeFail(ctx, op, key, nil, err, c)
	}
	return uploaded(key, total, ui), nil
}

func (s *Store) partOptions() minio.PutObjectPartOptions {
	return minio.PutObjectPartOptions{DisableContentSha256: s.unsigned}
}

// complete finishes an upload on the single-attempt client: a resent
// complete whose first answer was lost would find no upload any more.
func (s *Store) complete(ctx context.Context, obj, id string, parts []minio.CompletePart, c cond) (minio.UploadInfo, error) {
	var ui minio.UploadInfo
	err := s.retryUnapplied(ctx, true, func() error {
		var e error
		ui, e = s.once.CompleteMultipartUpload(ctx, s.bucket, obj, id, parts, s.options(c))
		return e
	})
	return ui, err
}

// abort drops a failed upload, even when ctx is already cancelled.
func (s *Store) abort(ctx context.Context, obj, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = s.core.AbortMultipartUpload(ctx, s.bucket, obj, id)
}

// parts cuts a body into PartSize parts: sections of a seekable reader, or
// parts held in memory one at a time (so that each can be resent on
// retries).
type parts struct {
	s     *Store
	r     io.Reader
	size  int64 // -1: until EOF
	whole *body // seekable reader, read by position
	cur   *held // the part last returned, or the first one not yet
	first bool  // cur holds the first part, not returned yet
	done  int64
	eof   bool
}

func (s *Store) newParts(ctx context.Context, r io.Reader, size int64, first *held) (*parts, error) {
	p := &parts{s: s, r: r, size: size, cur: first, first: first != nil}
	if size >= 0 {
		b, err := newBody(ctx, r, size)
		if err != nil {
			return nil, err
		}
		if b.stream == nil {
			p.whole = b
		}
	}
	return p, nil
}

func (p *parts) release() {
	p.cur.release()
	p.cur = nil
}

// next returns the next part, or nil after the last. It releases the part
// returned before.
func (p *parts) next() (*body, error) {
	want := p.s.partSize
	if p.size >= 0 {
		want = min(p.s.partSize, p.size-p.done)
		if want == 0 {
			return nil, nil
		}
	}
	if p.whole != nil {
		b := &body{size: want, at: p.whole.at, off: p.whole.off + p.done}
		p.done += want
		return b, nil
	}
	if p.first {
		p.first = false
		p.done += p.cur.n
		return p.cur.body(), nil
	}
	p.release()
	if p.eof {
		return nil, nil
	}
	h, err := p.s.hold(p.r, want)
	switch {
	case err == errEnded && p.size >= 0:
		h.release()
		return nil, fmt.Errorf("body ended after %d of %d bytes: %w", p.done+h.n, p.size, io.ErrUnexpectedEOF)
	case err == errEnded:
		p.eof = true
	case err != nil:
		return nil, err
	}
	p.cur = h
	p.done += h.n
	if h.n == 0 {
		return nil, nil
	}
	return h.body(), nil
}
