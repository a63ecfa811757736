// Package delay wraps a storage.Store so that every write waits before it
// happens. Crash tests use it (through SLIPWAY_TEST_WRITE_DELAY) to widen
// the windows between the writes of one request, so that a kill -9 lands
// in the middle of a push instead of between pushes.
package delay

import (
	"context"
	"io"
	"time"

	"github.com/slipway/slipway/storage"
)

// Store delays the writes of the store it wraps.
type Store struct {
	storage.Store
	d time.Duration
}

// Wrap returns s with every write delayed by d. The result keeps the
// optional capabilities of s (storage.Presigner,
// storage.StaleMultipartAborter), undelayed: callers find them by type
// assertion, which the embedding in Store alone would hide.
func Wrap(s storage.Store, d time.Duration) storage.Store {
	return storage.Wrapped(&Store{Store: s, d: d}, s)
}

func (s *Store) wait(ctx context.Context) error {
	t := time.NewTimer(s.d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if err := s.wait(ctx); err != nil {
		return storage.Info{}, err
	}
	return s.Store.Put(ctx, key, r, size)
}

func (s *Store) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if err := s.wait(ctx); err != nil {
		return storage.Info{}, err
	}
	return s.Store.PutIfAbsent(ctx, key, r, size)
}

func (s *Store) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (storage.Info, error) {
	if err := s.wait(ctx); err != nil {
		return storage.Info{}, err
	}
	return s.Store.PutIfMatch(ctx, key, r, size, etag)
}

func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	return s.Store.Delete(ctx, key)
}
