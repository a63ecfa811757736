package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/slipway/slipway/storage"
)

// temp is a fully written, fsynced file in the internal tmp dir.
type temp struct {
	path string
	fi   os.FileInfo
}

// remove drops the temp file unless it was renamed away (then it's a no-op).
func (t *temp) remove() { _ = os.Remove(t.path) }

// ctxReader fails reads once ctx is done, so a cancelled upload stops
// between chunks instead of draining the whole body.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// createTemp opens a new, uniquely named file in dir (honouring umask,
// unlike os.CreateTemp's 0600).
func createTemp(dir, prefix string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, prefix+randomHex(8)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
}

// spool copies r (exactly size bytes, or to EOF when size < 0) into a temp
// file, stamps and fsyncs it. On any error nothing is left behind.
func (s *Store) spool(ctx context.Context, r io.Reader, size int64) (_ *temp, err error) {
	f, err := createTemp(s.tmp, "put-")
	if err != nil {
		return nil, err
	}
	t := &temp{path: f.Name()}
	defer func() {
		if err != nil {
			f.Close()
			t.remove()
		}
	}()
	src := io.Reader(ctxReader{ctx, r})
	if size >= 0 {
		src = io.LimitReader(src, size)
	}
	// Hide File.ReadFrom so our larger buffer is used for generic readers.
	buf := s.copyBufs.Get()
	n, err := io.CopyBuffer(&writeback{f: f}, src, buf)
	s.copyBufs.Put(buf) // the copy is done with it, failed or not
	if err != nil {
		return nil, err
	}
	if size >= 0 && n != size {
		return nil, fmt.Errorf("read %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
	}
	if err := setMtime(t.path, s.stamp()); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if t.fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return t, nil
}

// Put writes key atomically: temp file, fsync, rename over the target,
// fsync the directory.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	p, err := s.path(key)
	if err != nil {
		return storage.Info{}, err
	}
	t, err := s.spool(ctx, r, size)
	if err != nil {
		return storage.Info{}, wrap("put", key, err)
	}
	defer t.remove()
	unlock, err := s.lock(key)
	if err != nil {
		return storage.Info{}, err
	}
	err = s.place(p, func() error { return rename(t.path, p) })
	unlock()
	if err == nil {
		err = syncDir(filepath.Dir(p))
	}
	if err != nil {
		return storage.Info{}, wrap("put", key, err)
	}
	return info(key, t.fi), nil
}

// PutIfAbsent links the temp file to the target: link(2) fails with EEXIST
// if anything is there, atomically, and the object appears whole.
func (s *Store) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	p, err := s.path(key)
	if err != nil {
		return storage.Info{}, err
	}
	// Cheap early answer for the common "already there" case; the link
	// below is what decides.
	if _, err := os.Lstat(p); err == nil {
		return storage.Info{}, fmt.Errorf("fs: put %q: exists: %w", key, storage.ErrPreconditionFailed)
	}
	t, err := s.spool(ctx, r, size)
	if err != nil {
		return storage.Info{}, wrap("put", key, err)
	}
	defer t.remove()
	err = s.place(p, func() error { return os.Link(t.path, p) })
	if errors.Is(err, os.ErrExist) {
		return storage.Info{}, fmt.Errorf("fs: put %q: exists: %w", key, storage.ErrPreconditionFailed)
	}
	if err == nil {
		err = syncDir(filepath.Dir(p))
	}
	if err != nil {
		return storage.Info{}, wrap("put", key, err)
	}
	return info(key, t.fi), nil
}

// PutIfMatch replaces key only if its current ETag is etag. The compare and
// the rename happen under the key's flock.
func (s *Store) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (storage.Info, error) {
	p, err := s.path(key)
	if err != nil {
		return storage.Info{}, err
	}
	// Early check: losers of a race skip writing (and fsyncing) a temp file.
	if err := s.match(key, p, etag); err != nil {
		return storage.Info{}, err
	}
	t, err := s.spool(ctx, r, size)
	if err != nil {
		return storage.Info{}, wrap("put", key, err)
	}
	defer t.remove()
	unlock, err := s.lock(key)
	if err != nil {
		return storage.Info{}, err
	}
	err = s.match(key, p, etag)
	if err == nil {
		if err = os.Rename(t.path, p); err != nil {
			err = wrap("put", key, err)
		}
	}
	unlock()
	if err != nil {
		return storage.Info{}, err
	}
	// Outside the lock: the rename is already visible; this only makes it
	// durable, and a later writer's fsync of the same dir covers ours too.
	if err := syncDir(filepath.Dir(p)); err != nil {
		return storage.Info{}, wrap("put", key, err)
	}
	return info(key, t.fi), nil
}

// match reports ErrPreconditionFailed unless key exists with the given ETag.
func (s *Store) match(key, p, etag string) error {
	fi, err := os.Stat(p)
	switch {
	case isNotFound(err) || (err == nil && !fi.Mode().IsRegular()):
		return fmt.Errorf("fs: put %q: no object: %w", key, storage.ErrPreconditionFailed)
	case err != nil:
		return wrap("put", key, err)
	case info(key, fi).ETag != etag:
		return fmt.Errorf("fs: put %q: etag changed: %w", key, storage.ErrPreconditionFailed)
	}
	return nil
}

// writeback starts the kernel writing every full writebackChunk the file
// receives (sync_file_range, which does not wait), so the fsync at the end
// waits for the tail only: receiving the body and writing it to disk
// overlap instead of following each other.
type writeback struct {
	f         *os.File
	off, done int64
}

const writebackChunk = 8 << 20

func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.done >= writebackChunk {
		_ = unix.SyncFileRange(int(w.f.Fd()), w.done, w.off-w.done, unix.SYNC_FILE_RANGE_WRITE)
		w.done = w.off
	}
	return n, err
}
