// Package fs is the filesystem backend of storage.Store: object key k is the
// file root/k, so an operator can inspect (and back up) the store with
// ordinary tools.
//
// Every write goes to a temporary file inside the store, is fsynced, and is
// then renamed (or hard-linked) into place, so a crash at any moment leaves
// the old object or the whole new one. Conditional writes are serialised
// across goroutines and processes sharing the folder by flock(2) on striped
// lock files. State lives only in files, so several processes may share a
// root.
//
// Bookkeeping lives in root/.slipway#/. The '#' is outside the key alphabet
// (see storage.ValidKey), so no key can ever reach it, and List skips every
// name that is not a valid key component (editor droppings, lost+found, …).
//
// The package relies on Unix semantics (flock, hard links, inode numbers).
package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/slipway/slipway/internal/bufpool"
	"github.com/slipway/slipway/storage"
)

const (
	internalName = ".slipway#"
	lockStripes  = 64
	// staleAfter: temp files this old were left by a crashed process.
	staleAfter = 24 * time.Hour
	// copyBufSize is a write's copy buffer (256 KiB, larger than the
	// 32 KiB io.Copy would use); copyBufsKept of them stay allocated.
	copyBufSize  = 256 << 10
	copyBufsKept = 32
	// legacyUploads is where versions with multipart uploads kept them;
	// sweep drops the ones a crash left there.
	legacyUploads = "multipart"
)

// Store is a storage.Store on a local (or shared POSIX) filesystem.
type Store struct {
	root     string // absolute
	internal string // root/.slipway#
	tmp      string // temp files of writes in progress
	locks    string // lock stripe files
	readOnly bool   // NewReadOnly: no bookkeeping directory; writes never reach this Store

	// mu is the in-process half of the key locks: goroutines queue here
	// instead of each parking an OS thread in a blocking flock.
	mu [lockStripes]sync.Mutex
	// last makes modification stamps strictly increasing (see stamp).
	last atomic.Int64
	// copyBufs are what writes copy bodies into their temp files through.
	copyBufs *bufpool.Pool
}

var _ storage.Store = (*Store)(nil)

// New opens (creating if absent) a store rooted at root.
func New(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("fs: root %q: %w", root, err)
	}
	in := filepath.Join(abs, internalName)
	s := &Store{
		root:     abs,
		internal: in,
		tmp:      filepath.Join(in, "tmp"),
		locks:    filepath.Join(in, "locks"),
		copyBufs: bufpool.New(copyBufSize, copyBufsKept),
	}
	for _, d := range []string{s.tmp, s.locks} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			return nil, fmt.Errorf("fs: root %q: %w", root, err)
		}
	}
	s.sweep()
	return s, nil
}

// NewReadOnly opens the existing directory root for reading only: it
// creates nothing there (no .slipway#/ bookkeeping, no sweep), works on a
// read-only mount, and refuses every write with storage.ErrReadOnly
// (storage.ReadOnly). It is how Slipway reads another program's folder,
// such as the stock registry's storage during an import.
func NewReadOnly(root string) (storage.Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("fs: root %q: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err == nil && !fi.IsDir() {
		err = fmt.Errorf("not a directory")
	}
	if err != nil {
		return nil, fmt.Errorf("fs: root %q: %w", root, err)
	}
	return storage.ReadOnly(&Store{root: abs, readOnly: true}), nil
}

// sweep removes temp entries (and uploads of older versions) a crashed
// process left behind. Live writers touch their temp files continuously,
// so only long-dead ones are old.
func (s *Store) sweep() {
	for _, dir := range []string{s.tmp, filepath.Join(s.internal, legacyUploads)} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleAfter {
				_ = os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// Ping checks that the store's internal directory exists and is writable
// (read-only: that the root can be read).
func (s *Store) Ping(ctx context.Context) error {
	if s.readOnly {
		if err := syscall.Access(s.root, 5 /* R_OK|X_OK */); err != nil {
			return fmt.Errorf("fs: root %q: %w: %w", s.root, storage.ErrUnavailable, err)
		}
		return nil
	}
	if err := syscall.Access(s.tmp, 2 /* W_OK */); err != nil {
		return fmt.Errorf("fs: root %q: %w: %w", s.root, storage.ErrUnavailable, err)
	}
	return nil
}

// path maps a key to its file, rejecting keys that break the key rules.
func (s *Store) path(key string) (string, error) {
	if !storage.ValidKey(key) {
		return "", fmt.Errorf("fs: key %q: %w", key, storage.ErrInvalidKey)
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// stamp returns a modification time strictly after the previous one from
// this Store. The kernel stamps mtime from a coarse clock, and ETags combine
// inode and mtime: a reused inode with an equal coarse mtime and size would
// repeat an ETag and let a stale PutIfMatch win. Setting mtime explicitly
// from a fine, strictly increasing clock rules that out.
func (s *Store) stamp() time.Time {
	for {
		last := s.last.Load()
		now := time.Now().UnixNano()
		if now <= last {
			now = last + 1
		}
		if s.last.CompareAndSwap(last, now) {
			return time.Unix(0, now)
		}
	}
}

func setMtime(path string, t time.Time) error {
	ts := syscall.NsecToTimespec(t.UnixNano())
	return syscall.UtimesNano(path, []syscall.Timespec{ts, ts})
}

// info builds an object's Info. The ETag is derived from file identity,
// not content, so it costs a stat and changes whenever a new file is
// renamed into place.
func info(key string, fi os.FileInfo) storage.Info {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return storage.Info{
		Key:     key,
		Size:    fi.Size(),
		ETag:    fmt.Sprintf("%x-%x-%x", ino, fi.Size(), fi.ModTime().UnixNano()),
		ModTime: fi.ModTime(),
	}
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

// isNotFound: the file, or a directory on its path, does not exist
// (ENOTDIR: a path component is an object file, so the key cannot exist).
func isNotFound(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// wrap adds context to an error and maps the failures callers can act on:
// a full or read-only disk is the backend refusing to serve (503), and a
// key that collides with a directory breaks the key rules.
func wrap(op, key string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EROFS):
		return fmt.Errorf("fs: %s %q: %w: %w", op, key, storage.ErrUnavailable, err)
	case errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("fs: %s %q: key clashes with a directory: %w: %w", op, key, storage.ErrInvalidKey, err)
	}
	return fmt.Errorf("fs: %s %q: %w", op, key, err)
}
