package fs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// Objects are files in a directory tree mirroring their keys. Writers
// create parent directories on demand and Delete prunes them once empty,
// concurrently and without a global lock; these helpers keep that safe.

// placeRetries bounds how often a write recreates a parent directory that a
// concurrent Delete pruned between our mkdirs and our rename.
const placeRetries = 8

// syncDir makes a rename, link or unlink in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirs creates dir and any missing parents below root, fsyncing each
// parent so a new object's path survives a crash along with the object.
func (s *Store) mkdirs(dir string) error {
	if dir == s.root {
		return nil
	}
	err := os.Mkdir(dir, 0o777)
	if errors.Is(err, os.ErrNotExist) {
		if err := s.mkdirs(filepath.Dir(dir)); err != nil {
			return err
		}
		err = os.Mkdir(dir, 0o777)
	}
	switch {
	case err == nil:
		return syncDir(filepath.Dir(dir))
	case errors.Is(err, os.ErrExist):
		return nil
	}
	return err
}

// place runs op (a rename or link onto target), creating target's parent
// directories when op reports them missing. It retries because Delete
// prunes empty directories concurrently and may remove one we just made.
func (s *Store) place(target string, op func() error) error {
	var err error
	for range placeRetries {
		if err = op(); !errors.Is(err, os.ErrNotExist) {
			return err
		}
		// mkdirs itself can lose a parent to a prune: just go round again.
		if err = s.mkdirs(filepath.Dir(target)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return err
}

// rename moves a finished file to target. Renaming a file over a
// directory (a key that is a "directory" of other keys) fails with EEXIST
// or ENOTEMPTY on Linux; report it as the clash it is.
func rename(src, target string) error {
	err := os.Rename(src, target)
	if errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY) {
		return &os.LinkError{Op: "rename", Old: src, New: target, Err: syscall.EISDIR}
	}
	return err
}

// Delete unlinks the object, then prunes directories it leaves empty so
// deleted trees don't linger as empty (but listed-through) directories.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	unlock, err := s.lock(key)
	if err != nil {
		return err
	}
	// unlink(2), not os.Remove: a directory at p is not an object and must
	// not be removed.
	err = syscall.Unlink(p)
	unlock()
	switch {
	case isNotFound(err), errors.Is(err, syscall.EISDIR):
		return nil // EISDIR: p is a directory, i.e. no object
	case err != nil:
		return wrap("delete", key, err)
	}
	dir := filepath.Dir(p)
	for dir != s.root && syscall.Rmdir(dir) == nil {
		dir = filepath.Dir(dir)
	}
	// dir is the deepest survivor: fsyncing it makes the unlink (or the
	// rmdir of the subtree holding it) durable.
	if err := syncDir(dir); err != nil && !isNotFound(err) {
		return wrap("delete", key, err)
	}
	return nil
}
