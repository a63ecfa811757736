// Package pace wraps a storage.Store so that its user keeps at most a
// given number of requests in flight, each place busy at most a given
// share of the time; both may change from one request to the next. The
// server's garbage collector goes through it: many requests at once while
// its replica is idle, a few and spaced out while the replica serves
// clients, whose requests then find the store almost as quiet as without
// a collection.
package pace

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/slipway/slipway/storage"
)

// recheck is how often a waiting request looks at the bound again: it can
// rise without any request ending (the replica's clients went quiet).
const recheck = 50 * time.Millisecond

// Bound is how a Store paces requests at one moment.
type Bound struct {
	// InFlight: at most this many requests under way (at least one).
	InFlight int
	// Share in (0, 1]: a request that took d keeps its place for
	// d×(1/Share − 1) more, so each place sends requests at most this
	// share of the time, whatever they cost the store. 0 or 1: no pause.
	Share float64
}

// Store bounds the requests in flight to the store it wraps.
type Store struct {
	storage.Store
	bound func() Bound

	mu   sync.Mutex
	n    int           // requests in flight
	done chan struct{} // closed (and replaced) whenever one ends
}

// Wrap returns s paced by bound(), asked each time a request starts or
// waits and when it ends. A request holds its place until the call
// returns (a Get's body is read after that), then for its pause.
// The result keeps the optional capabilities of s (storage.Presigner,
// storage.StaleMultipartAborter), unbounded, and is a
// storage.BatchDeleter (DeleteBatch).
func Wrap(s storage.Store, bound func() Bound) storage.Store {
	return storage.Wrapped(&Store{Store: s, bound: bound, done: make(chan struct{})}, s)
}

// inFlight is the number of requests under way now.
func (s *Store) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// enter waits for a place under the bound, or for ctx to end; leave
// (deferred by the caller) gives it back.
func (s *Store) enter(ctx context.Context) (leave func(), err error) {
	var t *time.Timer
	for {
		s.mu.Lock()
		if s.n < max(s.bound().InFlight, 1) {
			s.n++
			s.mu.Unlock()
			if t != nil {
				t.Stop()
			}
			start := time.Now()
			return func() { s.leave(ctx, time.Since(start)) }, nil
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
			return nil, ctx.Err()
		case <-done:
		case <-t.C:
		}
	}
}

// leave keeps the place of a request that took d for its pause (not past
// ctx), then gives it back.
func (s *Store) leave(ctx context.Context, d time.Duration) {
	if share := s.bound().Share; share > 0 && share < 1 {
		t := time.NewTimer(time.Duration(float64(d) * (1/share - 1)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	s.mu.Lock()
	s.n--
	close(s.done)
	s.done = make(chan struct{})
	s.mu.Unlock()
}

func (s *Store) Get(ctx context.Context, key string, opts storage.GetOptions) (io.ReadCloser, storage.Info, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return nil, storage.Info{}, err
	}
	defer leave()
	return s.Store.Get(ctx, key, opts)
}

func (s *Store) Stat(ctx context.Context, key string) (storage.Info, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return storage.Info{}, err
	}
	defer leave()
	return s.Store.Stat(ctx, key)
}

func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return storage.Info{}, err
	}
	defer leave()
	return s.Store.Put(ctx, key, r, size)
}

func (s *Store) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return storage.Info{}, err
	}
	defer leave()
	return s.Store.PutIfAbsent(ctx, key, r, size)
}

func (s *Store) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (storage.Info, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return storage.Info{}, err
	}
	defer leave()
	return s.Store.PutIfMatch(ctx, key, r, size, etag)
}

func (s *Store) Delete(ctx context.Context, key string) error {
	leave, err := s.enter(ctx)
	if err != nil {
		return err
	}
	defer leave()
	return s.Store.Delete(ctx, key)
}

// DeleteBatch is the wrapped store's DeleteBatch as one request when it
// has one, else one bounded Delete per key.
func (s *Store) DeleteBatch(ctx context.Context, keys []string) error {
	if b, ok := s.Store.(storage.BatchDeleter); ok {
		leave, err := s.enter(ctx)
		if err != nil {
			return err
		}
		defer leave()
		return b.DeleteBatch(ctx, keys)
	}
	// DeleteAll's own loop, on s without this method (else it would call
	// it again): every Delete bounded as above.
	return storage.DeleteAll(ctx, struct{ storage.Store }{s}, keys, len(keys))
}

func (s *Store) List(ctx context.Context, opts storage.ListOptions) (storage.ListPage, error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return storage.ListPage{}, err
	}
	defer leave()
	return s.Store.List(ctx, opts)
}
