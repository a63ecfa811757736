package s3

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// body is a request body of known size. A rewindable one (held in memory,
// or a section of the caller's io.ReaderAt) can be sent as often as retries
// need; a stream is sent once and watched, so that its own failure is not
// mistaken for S3's.
type body struct {
	size   int64
	at     io.ReaderAt // rewindable, from offset off
	off    int64
	stream *watched
}

// newBody wraps the caller's reader. A reader that can also seek is
// checked to hold size bytes up front, and then read by position.
func newBody(ctx context.Context, r io.Reader, size int64) (*body, error) {
	ra, isAt := r.(io.ReaderAt)
	sk, isSeeker := r.(io.Seeker)
	if !isAt || !isSeeker {
		return &body{size: size, stream: &watched{ctx: ctx, r: r, want: size}}, nil
	}
	cur, err := sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, err
	}
	end, err := sk.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	if _, err := sk.Seek(cur, io.SeekStart); err != nil {
		return nil, err
	}
	if end-cur < size {
		return nil, fmt.Errorf("body holds %d bytes, not %d: %w", end-cur, size, io.ErrUnexpectedEOF)
	}
	return &body{size: size, at: ra, off: cur}, nil
}

// reader returns the body to send. Sections are io.Seekers, which is what
// tells minio-go that it may resend them.
func (b *body) reader() io.Reader {
	if b.stream != nil {
		return b.stream
	}
	return io.NewSectionReader(b.at, b.off, b.size)
}

// err is the stream's own failure, if any.
func (b *body) err() error {
	if b == nil || b.stream == nil {
		return nil
	}
	b.stream.mu.Lock()
	defer b.stream.mu.Unlock()
	return b.stream.fail
}

// watched records a stream's read error, or that it ended before the
// announced size. It also stops at once when ctx is done: the transport
// notices a cancelled request only between writes, and could otherwise
// send the rest of a streaming body, letting S3 store an object whose
// write already failed. The transport reads it from its own goroutine,
// hence the lock.
type watched struct {
	ctx  context.Context
	r    io.Reader
	want int64
	mu   sync.Mutex
	n    int64
	fail error
}

func (w *watched) Read(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	w.mu.Lock()
	left := w.want - w.n
	w.mu.Unlock()
	if left <= 0 {
		return 0, io.EOF // like the filesystem: bytes past size are not read
	}
	n, err := w.r.Read(p[:min(int64(len(p)), left)])
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += int64(n)
	switch {
	case err == io.EOF && w.n < w.want:
		w.fail = fmt.Errorf("body ended after %d of %d bytes: %w", w.n, w.want, io.ErrUnexpectedEOF)
	case err != nil && err != io.EOF:
		w.fail = err
	}
	return n, err
}
