package fs

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"syscall"
)

// lock takes the exclusive lock guarding key's final rename or unlink.
//
// PutIfMatch must compare the current ETag and replace the file as one
// step, also against other processes sharing the root, hence flock(2).
// Put and Delete take the same lock around their final step so they
// cannot slip between a PutIfMatch's compare and its rename
// (PutIfAbsent needs no lock: link(2) is already atomic, and while a
// PutIfMatch holds the lock the object exists and nothing can remove it).
//
// Keys share a fixed set of lock files (hash stripes), so the lock
// directory never grows; a collision only costs a little false contention.
func (s *Store) lock(key string) (unlock func(), err error) {
	h := fnv.New32a()
	h.Write([]byte(key))
	i := h.Sum32() % lockStripes

	s.mu[i].Lock()
	f, err := os.OpenFile(filepath.Join(s.locks, fmt.Sprintf("%02x", i)), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		s.mu[i].Unlock()
		return nil, fmt.Errorf("fs: lock %q: %w", key, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		s.mu[i].Unlock()
		return nil, fmt.Errorf("fs: lock %q: %w", key, err)
	}
	// Closing the only descriptor of the open file releases the flock.
	return func() {
		f.Close()
		s.mu[i].Unlock()
	}, nil
}
