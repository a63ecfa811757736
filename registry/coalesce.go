package registry

import (
	"context"
	"sync"
	"time"
)

// readGroup coalesces concurrent reads of one key (a tag, read by every
// pull) into fewer store requests without ever answering from a read that
// began before the request arrived. So a reader sees every write that
// completed before it arrived, on any replica: nothing is cached, and a
// tag moved by a push or a promotion is seen by the next pull, exactly as
// without coalescing.
//
// Per key there is at most one fetch in flight and one pending. A request
// finding nothing in flight fetches at once, for itself. A request finding
// a fetch in flight cannot use it (it may have read the store before a
// write this request must see), so it joins the pending fetch, which
// starts when the one in flight ends and answers everyone who joined it.
// Under load the store sees one request per key per round trip however
// many clients pull the same tag, instead of one per client.
// (golang.org/x/sync/singleflight is not this: it lets a caller share the
// call in flight, i.e. a read that may predate a write the caller saw.)
type readGroup[V any] struct {
	fetch   func(ctx context.Context, key string) (V, error)
	timeout time.Duration // bounds a shared fetch, which no one request owns

	mu      sync.Mutex
	pending map[string]*readCall[V] // key in flight → its pending fetch (nil: none yet)
}

type readCall[V any] struct {
	done chan struct{}
	val  V
	err  error
}

func newReadGroup[V any](timeout time.Duration, fetch func(ctx context.Context, key string) (V, error)) *readGroup[V] {
	return &readGroup[V]{fetch: fetch, timeout: timeout, pending: map[string]*readCall[V]{}}
}

// do returns the value of key as read by a fetch that started after the
// call did.
func (g *readGroup[V]) do(ctx context.Context, key string) (V, error) {
	g.mu.Lock()
	next, busy := g.pending[key]
	if !busy {
		// Nothing in flight: fetch now, for this request alone (joiners
		// wait for the next one), with the request's own context.
		g.pending[key] = nil
		g.mu.Unlock()
		v, err := g.fetch(ctx, key)
		g.finish(key)
		return v, err
	}
	if next == nil {
		next = &readCall[V]{done: make(chan struct{})}
		g.pending[key] = next
	}
	g.mu.Unlock()
	select {
	case <-next.done:
		return next.val, next.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// finish ends the fetch in flight for key and starts the pending one, if
// any requests joined it.
func (g *readGroup[V]) finish(key string) {
	g.mu.Lock()
	next := g.pending[key]
	if next == nil {
		delete(g.pending, key)
		g.mu.Unlock()
		return
	}
	// next is now in flight: later arrivals join a new pending fetch.
	g.pending[key] = nil
	g.mu.Unlock()
	go g.run(key, next)
}

// run performs a shared fetch. Its context belongs to no request (one
// joiner leaving must not fail the others), so it is bounded by timeout.
func (g *readGroup[V]) run(key string, c *readCall[V]) {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	c.val, c.err = g.fetch(ctx, key)
	cancel()
	close(c.done)
	g.finish(key)
}
