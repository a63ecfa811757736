package tombstone

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/slipway/slipway/storage"
)

// Guard is the writer's side of the protocol: after a request wrote what
// makes it rely on existing objects (a link, a manifest record, a tag),
// Protect makes sure none of them is being deleted, rescuing the ones the
// collector has only marked. One Guard per process (per store): it caches
// the answer to "is a sweep in progress?".
type Guard struct {
	s storage.Store
	// CacheFor: how long an answer to "is a sweep in progress?" is
	// trusted, measured from before its list request was sent to the
	// Protect call (which comes after the caller's writes). Must stay
	// below Fence; tests shorten or lengthen it. Set before first use.
	CacheFor time.Duration

	listMu sync.Mutex // one list of gc/sweeps/ at a time
	mu     sync.Mutex // guards the fields below
	asked  time.Time  // when the last answered list was sent (monotonic)
	sweep  bool       // its answer: a sweep entry existed
	seen   time.Time  // when the last list that found a sweep entry was sent
	lists  int        // lists sent (tests check the hot path's cost)
}

// NewGuard returns a Guard on s with CacheFor = CacheFor.
func NewGuard(s storage.Store) *Guard { return &Guard{s: s, CacheFor: CacheFor} }

// Lists is how many lists of gc/sweeps/ the Guard has sent.
func (g *Guard) Lists() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lists
}

// Protect makes sure that none of the objects keys is being deleted by
// the collector. Call it after the writes that make the request rely on
// them, and answer success only if it returns nil. Returns nil (every
// object stays: either no sweep can delete it without seeing the
// caller's writes, or its tombstone is now Rescued), an error wrapping a
// *CollectedError (errors.Is ErrCollected) for the first object that is
// gone or whose deletion is committed, or a store error.
//
// Cost: with no sweep in progress, at most one list of gc/sweeps/ per
// CacheFor (concurrent callers share it). During a sweep, one GET per
// tombstone shard the keys hash to (plus a Stat of an object without
// tombstone, and a read and a put-if-match of its shard per marked
// object).
func (g *Guard) Protect(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	return g.ProtectFunc(ctx, func() ([]string, error) { return keys, nil })
}

// ProtectFunc is Protect of the keys that keys returns, called only when
// a sweep is in progress: callers whose set of objects costs reads to
// compute (a manifest's whole tree) pay for it only then. The time that
// counts against CacheFor is that of the ProtectFunc call.
func (g *Guard) ProtectFunc(ctx context.Context, keys func() ([]string, error)) error {
	sweep, err := g.sweepInProgress(ctx, time.Now())
	if err != nil || !sweep {
		return err
	}
	ks, err := keys()
	if err != nil {
		return err
	}
	shards := map[string]map[string]Tomb{}
	// One read per shard: the keys of a manifest tree that share a shard
	// are judged on the same read.
	for _, k := range ks {
		if err := protectOne(ctx, g.s, k, shards); err != nil {
			return err
		}
	}
	return nil
}

// SweptRecently reports whether a collection may be freeing objects now
// (a sweep entry exists, by Protect's cached answer: at most one LIST per
// CacheFor) or was seen doing so within the last within.
func (g *Guard) SweptRecently(ctx context.Context, within time.Duration) (bool, error) {
	sweep, err := g.sweepInProgress(ctx, time.Now())
	if err != nil || sweep {
		return sweep, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.seen.IsZero() && time.Since(g.seen) < within, nil
}

// sweepInProgress answers from the cache when the answer's list was sent
// less than CacheFor before called (the time of the Protect call, after
// the caller's writes), and lists gc/sweeps/ otherwise. A cached "no
// sweep" is safe because a collector waits Fence > CacheFor between its
// sweep entry and its first tombstone: the caller's writes, done within
// CacheFor of a list that saw no entry, precede every tombstone, and the
// collector's second look sees them. A cached "sweep" only costs reads.
func (g *Guard) sweepInProgress(ctx context.Context, called time.Time) (bool, error) {
	if sweep, ok := g.cached(called); ok {
		return sweep, nil
	}
	g.listMu.Lock()
	defer g.listMu.Unlock()
	// A list sent while this caller waited may answer it: its send time
	// is before or after called, both fine (after: trivially fresh).
	if sweep, ok := g.cached(called); ok {
		return sweep, nil
	}
	sent := time.Now()
	page, err := g.s.List(ctx, storage.ListOptions{Prefix: SweepPrefix, MaxKeys: 1})
	if err != nil {
		return false, fmt.Errorf("gc: list sweeps: %w", err)
	}
	sweep := len(page.Objects) > 0
	g.mu.Lock()
	g.asked, g.sweep = sent, sweep
	if sweep {
		g.seen = sent
	}
	g.lists++
	g.mu.Unlock()
	return sweep, nil
}

func (g *Guard) cached(called time.Time) (sweep, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.asked.IsZero() || called.Sub(g.asked) >= g.CacheFor {
		return false, false
	}
	return g.sweep, true
}

// protectOne applies the writer's rule to one object during a sweep.
// Its first look at the tombstone may come from read, the shards this
// Protect call already read (a read after the caller's writes, which is
// all the rule needs); every later look reads again. Each retry follows a
// state change of the tombstone (marked -> rescued, deleting, or
// removed), so a few rounds always settle.
func protectOne(ctx context.Context, s storage.Store, key string, read map[string]map[string]Tomb) error {
	for round := 0; round < 8; round++ {
		t, version, err := readVia(ctx, s, key, read)
		read = nil
		switch {
		case errors.Is(err, storage.ErrNotFound):
			// No tombstone: a later one is followed by a second look that
			// sees the caller's writes; an earlier one was removed either
			// after the object was deleted (Stat says so) or because the
			// object was kept.
			if _, err := s.Stat(ctx, key); errors.Is(err, storage.ErrNotFound) {
				return &CollectedError{Key: key}
			} else if err != nil {
				return err
			}
			return nil
		case err != nil:
			return err
		}
		switch t.State {
		case Rescued:
			return nil
		case Deleting:
			return &CollectedError{Key: key, Deleting: true}
		case Marked:
			err := Rescue(ctx, s, key, t.Run, version)
			if err == nil {
				return nil
			}
			if !errors.Is(err, storage.ErrPreconditionFailed) {
				return err
			}
			// Committed, removed or rescued by another writer: read again.
		}
	}
	return fmt.Errorf("gc: protect %s: tombstone kept changing: %w", key, storage.ErrUnavailable)
}

// readVia is Read of key's tombstone, from read when it holds key's shard
// (and adding the shard to it when read is not nil).
func readVia(ctx context.Context, s storage.Store, key string, read map[string]map[string]Tomb) (Tomb, string, error) {
	if read == nil {
		return Read(ctx, s, key)
	}
	sk := Key(key)
	tombs, ok := read[sk]
	if !ok {
		var err error
		if tombs, _, err = readShard(ctx, s, sk); err != nil {
			return Tomb{}, "", err
		}
		read[sk] = tombs
	}
	return lookup(tombs, key)
}
