// Package pause wraps a storage.Store so that a test can stop one chosen
// operation on one chosen key right before it reaches the store, do
// something else meanwhile (another request, another process's step),
// and let it go: races between requests become deterministic tests.
package pause

import (
	"context"
	"io"
	"sync"

	"github.com/slipway/slipway/storage"
)

// Operation names for Before.
const (
	Get         = "get"
	Stat        = "stat"
	Put         = "put"
	PutIfAbsent = "putifabsent"
	PutIfMatch  = "putifmatch"
	Delete      = "delete"
	List        = "list" // the key is the listing's Prefix
)

// Pauser holds the pause points of one wrapped store.
type Pauser struct {
	inner storage.Store
	store storage.Store

	mu     sync.Mutex
	points map[string][]*Point
	all    []*Point
}

// Point is one pause: the first operation that matches it after Before
// blocks until Release (or its context ends); later ones pass.
type Point struct {
	reached  chan struct{}
	released chan struct{}
	once     sync.Once
}

// Reached is closed when an operation is blocked at the point.
func (p *Point) Reached() <-chan struct{} { return p.reached }

// Release lets the blocked operation (or the next matching one, if none
// has reached the point yet) go on. Calling it again does nothing.
func (p *Point) Release() { p.once.Do(func() { close(p.released) }) }

// New wraps s. Store returns the wrapped store.
func New(s storage.Store) *Pauser {
	p := &Pauser{inner: s, points: map[string][]*Point{}}
	p.store = storage.Wrapped(&store{Store: s, p: p}, s)
	return p
}

// Store is the wrapped store, with the optional capabilities of the inner
// one (storage.Wrapped).
func (p *Pauser) Store() storage.Store { return p.store }

// Before adds a pause point before the next op (one of the operation
// names) on key. Points on the same op and key are taken in order.
func (p *Pauser) Before(op, key string) *Point {
	pt := &Point{reached: make(chan struct{}), released: make(chan struct{})}
	p.mu.Lock()
	p.points[op+"\x00"+key] = append(p.points[op+"\x00"+key], pt)
	p.all = append(p.all, pt)
	p.mu.Unlock()
	return pt
}

// ReleaseAll releases every point: a test that fails while operations are
// held lets them go (register it with t.Cleanup).
func (p *Pauser) ReleaseAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pt := range p.all {
		pt.Release()
	}
}

// wait blocks while a point on op and key holds the operation.
func (p *Pauser) wait(ctx context.Context, op, key string) error {
	p.mu.Lock()
	k := op + "\x00" + key
	pts := p.points[k]
	if len(pts) == 0 {
		p.mu.Unlock()
		return nil
	}
	pt := pts[0]
	if len(pts) == 1 {
		delete(p.points, k)
	} else {
		p.points[k] = pts[1:]
	}
	p.mu.Unlock()
	close(pt.reached)
	select {
	case <-pt.released:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type store struct {
	storage.Store
	p *Pauser
}

func (s *store) Get(ctx context.Context, key string, opts storage.GetOptions) (io.ReadCloser, storage.Info, error) {
	if err := s.p.wait(ctx, Get, key); err != nil {
		return nil, storage.Info{}, err
	}
	return s.Store.Get(ctx, key, opts)
}

func (s *store) Stat(ctx context.Context, key string) (storage.Info, error) {
	if err := s.p.wait(ctx, Stat, key); err != nil {
		return storage.Info{}, err
	}
	return s.Store.Stat(ctx, key)
}

func (s *store) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if err := s.p.wait(ctx, Put, key); err != nil {
		return storage.Info{}, err
	}
	return s.Store.Put(ctx, key, r, size)
}

func (s *store) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if err := s.p.wait(ctx, PutIfAbsent, key); err != nil {
		return storage.Info{}, err
	}
	return s.Store.PutIfAbsent(ctx, key, r, size)
}

func (s *store) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (storage.Info, error) {
	if err := s.p.wait(ctx, PutIfMatch, key); err != nil {
		return storage.Info{}, err
	}
	return s.Store.PutIfMatch(ctx, key, r, size, etag)
}

func (s *store) Delete(ctx context.Context, key string) error {
	if err := s.p.wait(ctx, Delete, key); err != nil {
		return err
	}
	return s.Store.Delete(ctx, key)
}

func (s *store) List(ctx context.Context, opts storage.ListOptions) (storage.ListPage, error) {
	if err := s.p.wait(ctx, List, opts.Prefix); err != nil {
		return storage.ListPage{}, err
	}
	return s.Store.List(ctx, opts)
}
