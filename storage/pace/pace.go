// Package pace wraps a storage.Store so that its user keeps at most a
// given number of requests in flight, a bound that may change from one
// request to the next. The server's garbage collector goes through it:
// many requests at once while its replica is idle, a few while the
// replica serves clients, whose requests then find the store less busy.
package pace

import (
	"context"
	"io"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/storage"
)

// recheck is how often a waiting request looks at the bound again: it can
// rise without any request ending (the replica's clients went quiet).
const recheck = 50 * time.Millisecond

// Store bounds the requests in flight to the store it wraps.
type Store struct {
	storage.Store
	limit func() int

	mu   sync.Mutex
	n    int           // requests in flight
	done chan struct{} // closed (and replaced) whenever one ends
}

// Wrap returns s with at most limit() requests in flight (at least one),
// limit being asked each time a request starts or waits. A request holds
// its place until the call returns (a Get's body is read after that).
// The result keeps the optional capabilities of s (storage.Presigner,
// storage.StaleMultipartAborter), unbounded, and is a
// storage.BatchDeleter (DeleteBatch).
func Wrap(s storage.Store, limit func() int) storage.Store {
	return storage.Wrapped(&Store{Store: s, limit: limit, done: make(chan struct{})}, s)
}

// InFlight is the number of requests under way now.
func (s *Store) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// enter waits for a place under the bound, or for ctx to end.
func (s *Store) enter(ctx context.Context) error {
	var t *time.Timer
	for {
		s.mu.Lock()
		if s.n < max(s.limit(), 1) {
			s.n++
			s.mu.Unlock()
			if t != nil {
				t.Stop()
			}
			return nil
		}
		done := s.done
		s.mu.Unlock()
		if t == nil {
			t = time.NewTimer(recheck)
		} else {
			t.Reset(recheck)
		}
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-done:
		case <-t.C:
		}
	}
}

func (s *Store) leave() {
	s.mu.Lock()
	s.n--
	close(s.done)
	s.done = make(chan struct{})
	s.mu.Unlock()
}

func (s *Store) Get(ctx context.Context, key string, opts storage.GetOptions) (io.ReadCloser, storage.Info, error) {
	if err := s.enter(ctx); err != nil {
		return nil, storage.Info{}, err
	}
	defer s.leave()
	return s.Store.Get(ctx, key, opts)
}

func (s *Store) Stat(ctx context.Context, key string) (storage.Info, error) {
	if err := s.enter(ctx); err != nil {
		return storage.Info{}, err
	}
	defer s.leave()
	return s.Store.Stat(ctx, key)
}

func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if err := s.enter(ctx); err != nil {
		return storage.Info{}, err
	}
	defer s.leave()
	return s.Store.Put(ctx, key, r, size)
}

func (s *Store) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if err := s.enter(ctx); err != nil {
		return storage.Info{}, err
	}
	defer s.leave()
	return s.Store.PutIfAbsent(ctx, key, r, size)
}

func (s *Store) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (storage.Info, error) {
	if err := s.enter(ctx); err != nil {
		return storage.Info{}, err
	}
	defer s.leave()
	return s.Store.PutIfMatch(ctx, key, r, size, etag)
}

func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	return s.Store.Delete(ctx, key)
}

// DeleteBatch is the wrapped store's DeleteBatch as one request when it
// has one, else one bounded Delete per key.
func (s *Store) DeleteBatch(ctx context.Context, keys []string) error {
	if b, ok := s.Store.(storage.BatchDeleter); ok {
		if err := s.enter(ctx); err != nil {
			return err
		}
		defer s.leave()
		return b.DeleteBatch(ctx, keys)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, k := range keys {
		g.Go(func() error { return s.Delete(gctx, k) })
	}
	return g.Wait()
}

func (s *Store) List(ctx context.Context, opts storage.ListOptions) (storage.ListPage, error) {
	if err := s.enter(ctx); err != nil {
		return storage.ListPage{}, err
	}
	defer s.leave()
	return s.Store.List(ctx, opts)
}
