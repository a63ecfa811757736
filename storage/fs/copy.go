package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/slipway/slipway/storage"
)

var (
	_ storage.Locator = (*Store)(nil)
	_ storage.Copier  = (*Store)(nil)
)

// Locate returns key's file. It reads nothing.
func (s *Store) Locate(_ context.Context, key string) (storage.Location, error) {
	p, err := s.path(key)
	if err != nil {
		return storage.Location{}, err
	}
	return storage.Location{Path: p}, nil
}

// CopyFrom makes key a hard link to the file src.Path: no byte is copied,
// and deleting either name leaves the other. The shared inode's mtime is
// set to now, as for every object this store writes: the collector judges
// an unnamed data object's age by it, and the source file's old mtime
// would make a just-linked object look abandoned (docs/architecture.md
// 7.4). The content is not touched. Another filesystem (EXDEV), a
// protected_hardlinks refusal or a file this process may not re-stamp
// (EPERM, EACCES), an S3 location, or a file of another size than size
// is errors.ErrUnsupported (the caller copies the bytes instead); a
// missing source is storage.ErrNotFound.
func (s *Store) CopyFrom(ctx context.Context, key string, src storage.Location, size int64) (storage.Info, error) {
	if s.readOnly {
		return storage.Info{}, fmt.Errorf("fs: copy to %q: %w", key, storage.ErrReadOnly)
	}
	p, err := s.path(key)
	if err != nil {
		return storage.Info{}, err
	}
	if src.Path == "" {
		return storage.Info{}, fmt.Errorf("fs: copy to %q from a non-file location: %w", key, errors.ErrUnsupported)
	}
	if err := ctx.Err(); err != nil {
		return storage.Info{}, err
	}
	tmp := filepath.Join(s.tmp, "link-"+randomHex(12))
	if err := os.Link(src.Path, tmp); err != nil {
		return storage.Info{}, copyErr(key, src.Path, err)
	}
	defer os.Remove(tmp) // after the rename: a no-op
	fi, err := os.Lstat(tmp)
	if err == nil && (!fi.Mode().IsRegular() || fi.Size() != size) {
		return storage.Info{}, fmt.Errorf("fs: copy to %q: %s is not a file of %d bytes: %w", key, src.Path, size, errors.ErrUnsupported)
	}
	if err == nil {
		err = setMtime(tmp, s.stamp())
	}
	if err == nil {
		fi, err = os.Lstat(tmp)
	}
	if err != nil {
		return storage.Info{}, copyErr(key, src.Path, err)
	}
	unlock, err := s.lock(key)
	if err != nil {
		return storage.Info{}, err
	}
	err = s.place(p, func() error { return rename(tmp, p) })
	unlock()
	if err == nil {
		err = syncDir(filepath.Dir(p))
	}
	if err != nil {
		return storage.Info{}, wrap("copy", key, err)
	}
	return info(key, fi), nil
}

// copyErr maps the failures that mean "not this way" to ErrUnsupported.
func copyErr(key, src string, err error) error {
	switch {
	case errors.Is(err, syscall.EXDEV), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EMLINK):
		return fmt.Errorf("fs: copy to %q: link %s: %w: %w", key, src, errors.ErrUnsupported, err)
	case isNotFound(err):
		return fmt.Errorf("fs: copy to %q: %s: %w", key, src, storage.ErrNotFound)
	}
	return wrap("copy", key, err)
}
