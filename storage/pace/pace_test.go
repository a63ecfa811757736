package pace

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
	"github.com/slipway/slipway/storage/storagetest"
)

// held is a store whose Stat and Delete block until released; it counts
// the calls under way and the most at once.
type held struct {
	storage.Store
	release chan struct{}
	now     atomic.Int32
	most    atomic.Int32
	calls   atomic.Int32
	batches atomic.Int32
}

func (h *held) hold() {
	h.calls.Add(1)
	n := h.now.Add(1)
	for {
		m := h.most.Load()
		if n <= m || h.most.CompareAndSwap(m, n) {
			break
		}
	}
	<-h.release
	h.now.Add(-1)
}

func (h *held) Stat(ctx context.Context, key string) (storage.Info, error) {
	h.hold()
	return storage.Info{Key: key}, nil
}

func (h *held) Delete(ctx context.Context, key string) error {
	h.hold()
	return nil
}

// batching is held with a DeleteBatch of its own.
type batching struct{ *held }

func (b batching) DeleteBatch(ctx context.Context, keys []string) error {
	b.batches.Add(1)
	b.hold()
	return nil
}

// eventually waits up to 2s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// steady asserts cond holds for a while (longer than recheck).
func steady(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(3 * recheck); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if !cond() {
			t.Fatalf("not %s", what)
		}
	}
}

// TestBoundFollowsTheLimit: ten requests at a limit of 2 keep two in
// flight; the limit raised to 5 lets three more in without any request
// ending; lowered to 1, no new request starts until fewer than one run;
// every request completes.
func TestBoundFollowsTheLimit(t *testing.T) {
	h := &held{release: make(chan struct{})}
	var limit atomic.Int32
	limit.Store(2)
	s := Wrap(h, func() Bound { return Bound{InFlight: int(limit.Load())} })
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Stat(context.Background(), "k"); err != nil {
				t.Error(err)
			}
		}()
	}
	eventually(t, "two in flight", func() bool { return h.now.Load() == 2 })
	steady(t, "two at most", func() bool { return h.now.Load() == 2 })

	limit.Store(5)
	eventually(t, "five in flight", func() bool { return h.now.Load() == 5 })
	steady(t, "five at most", func() bool { return h.now.Load() == 5 })

	limit.Store(1)
	for range 4 {
		h.release <- struct{}{}
	}
	eventually(t, "one left in flight", func() bool { return h.now.Load() == 1 })
	steady(t, "one at most", func() bool { return h.now.Load() == 1 })
	if n := s.(*Store).inFlight(); n != 1 {
		t.Fatalf("inFlight = %d, want 1", n)
	}
	for range 6 {
		h.release <- struct{}{}
	}
	wg.Wait()
	if h.calls.Load() != 10 || h.most.Load() != 5 {
		t.Fatalf("calls %d, most at once %d; want 10, 5", h.calls.Load(), h.most.Load())
	}
}

// TestWaitEndsWithItsContext: a request waiting for a place returns its
// context's error when the context ends, without reaching the store.
func TestWaitEndsWithItsContext(t *testing.T) {
	h := &held{release: make(chan struct{})}
	s := Wrap(h, func() Bound { return Bound{InFlight: 1} })
	go func() { _, _ = s.Stat(context.Background(), "first") }()
	eventually(t, "the first in flight", func() bool { return h.now.Load() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := s.Stat(ctx, "second")
		errc <- err
	}()
	time.Sleep(2 * recheck)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting Stat = %v, want context.Canceled", err)
	}
	if h.calls.Load() != 1 {
		t.Fatalf("store calls = %d, want 1", h.calls.Load())
	}
	h.release <- struct{}{}
}

// TestDeleteBatch: with the store's own DeleteBatch, a batch is one
// bounded request; without, one bounded Delete per key.
func TestDeleteBatch(t *testing.T) {
	h := &held{release: make(chan struct{})}
	s := Wrap(batching{h}, func() Bound { return Bound{InFlight: 2} })
	go func() { _ = s.(storage.BatchDeleter).DeleteBatch(context.Background(), []string{"a", "b", "c"}) }()
	eventually(t, "the batch in flight", func() bool { return h.now.Load() == 1 })
	h.release <- struct{}{}
	eventually(t, "the batch done", func() bool { return h.now.Load() == 0 })
	if h.batches.Load() != 1 || h.calls.Load() != 1 {
		t.Fatalf("batches %d, calls %d; want 1, 1", h.batches.Load(), h.calls.Load())
	}

	h = &held{release: make(chan struct{})}
	s = Wrap(h, func() Bound { return Bound{InFlight: 2} })
	done := make(chan error)
	go func() { done <- s.(storage.BatchDeleter).DeleteBatch(context.Background(), []string{"a", "b", "c"}) }()
	eventually(t, "two deletes in flight", func() bool { return h.now.Load() == 2 })
	steady(t, "two at most", func() bool { return h.now.Load() <= 2 })
	for range 3 {
		h.release <- struct{}{}
	}
	if err := <-done; err != nil || h.calls.Load() != 3 {
		t.Fatalf("DeleteBatch = %v after %d deletes, want nil after 3", err, h.calls.Load())
	}
}

// slow is a store whose Stat takes a while and notes when each began.
type slow struct {
	storage.Store
	took   time.Duration
	mu     sync.Mutex
	starts []time.Time
}

func (s *slow) Stat(ctx context.Context, key string) (storage.Info, error) {
	s.mu.Lock()
	s.starts = append(s.starts, time.Now())
	s.mu.Unlock()
	time.Sleep(s.took)
	return storage.Info{Key: key}, nil
}

// TestShareSpacesRequests: at one place and a share of 1/3, a request
// that took 50 ms keeps its place 100 ms more, so the next starts at
// least 150 ms after it; the pause ends with the request's context.
func TestShareSpacesRequests(t *testing.T) {
	const took = 50 * time.Millisecond
	st := &slow{took: took}
	var share atomic.Value
	share.Store(1.0 / 3)
	s := Wrap(st, func() Bound { return Bound{InFlight: 1, Share: share.Load().(float64)} })
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = s.Stat(context.Background(), "k")
		}()
	}
	wg.Wait()
	for i := 1; i < len(st.starts); i++ {
		if gap := st.starts[i].Sub(st.starts[i-1]); gap < 3*took {
			t.Fatalf("request %d started %v after the one before, want at least %v", i, gap, 3*took)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), took+20*time.Millisecond)
	defer cancel()
	start := time.Now()
	share.Store(0.001) // a pause of about 50 s, cut by the context
	if _, err := s.Stat(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("a request whose context ended waited %v", d)
	}

}

// TestConformance: the wrapped store still behaves as a store.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		st, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return Wrap(st, func() Bound { return Bound{InFlight: 3, Share: 0.9} })
	})
}
