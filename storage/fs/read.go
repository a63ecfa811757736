package fs

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/slipway/slipway/storage"
)

// Get opens key, positioned at opts.Offset. The Info comes from the open
// file, so it always describes the content being read even if the object
// is replaced meanwhile.
func (s *Store) Get(ctx context.Context, key string, opts storage.GetOptions) (io.ReadCloser, storage.Info, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, storage.Info{}, err
	}
	if opts.Offset < 0 {
		return nil, storage.Info{}, fmt.Errorf("fs: get %q: negative offset %d", key, opts.Offset)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, storage.Info{}, notFoundOr("get", key, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = os.ErrNotExist // a directory: no object has this key
	}
	if err == nil && opts.Offset > 0 {
		_, err = f.Seek(opts.Offset, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, storage.Info{}, notFoundOr("get", key, err)
	}
	if opts.Length > 0 {
		return limitedFile{io.LimitReader(f, opts.Length), f}, info(key, fi), nil
	}
	return f, info(key, fi), nil
}

type limitedFile struct {
	io.Reader
	io.Closer
}

// Stat returns key's Info.
func (s *Store) Stat(ctx context.Context, key string) (storage.Info, error) {
	p, err := s.path(key)
	if err != nil {
		return storage.Info{}, err
	}
	fi, err := os.Stat(p)
	if err == nil && !fi.Mode().IsRegular() {
		err = os.ErrNotExist
	}
	if err != nil {
		return storage.Info{}, notFoundOr("stat", key, err)
	}
	return info(key, fi), nil
}

// notFoundOr maps a missing file to storage.ErrNotFound.
func notFoundOr(op, key string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("fs: %s %q: %w", op, key, storage.ErrNotFound)
	}
	return wrap(op, key, err)
}
