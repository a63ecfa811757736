package promote

import (
	"context"
	"errors"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/storage"
)

// LedgerDigests reads, for the garbage collector, every digest a ledger
// record names in its target repository: rollback targets stay pullable.
// It reads the chain records (ledger/chains/), not the copies under
// ledger/all/: a record is claimed in its chain first and copied after, so
// a promotion that crashed between the two (and that a later promotion
// rolls forward onto the tag) is seen too.
//
// Records are immutable (put-if-absent, never deleted), so each is read
// once per process: a call costs one listing of the chains plus one read
// per record it has not seen before.
type LedgerDigests struct {
	store storage.Store
	mu    sync.Mutex
	seen  map[string]ledgerTarget // chain key -> what it names
}

type ledgerTarget struct {
	repo   string
	digest digest.Digest
}

// NewLedgerDigests reads the ledger on store.
func NewLedgerDigests(store storage.Store) *LedgerDigests {
	return &LedgerDigests{store: store, seen: map[string]ledgerTarget{}}
}

// Digests returns the digests every ledger record names, by target
// repository (gc.LedgerReader).
func (l *LedgerDigests) Digests(ctx context.Context) (map[string][]digest.Digest, error) {
	var fresh []string
	after := ""
	for {
		page, err := l.store.List(ctx, storage.ListOptions{Prefix: chainsPrefix, StartAfter: after})
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		for _, o := range page.Objects {
			if _, ok := l.seen[o.Key]; !ok {
				fresh = append(fresh, o.Key)
			}
		}
		l.mu.Unlock()
		if !page.Truncated || len(page.Objects) == 0 {
			break
		}
		after = page.Objects[len(page.Objects)-1].Key
	}
	if err := l.read(ctx, fresh); err != nil {
		return nil, err
	}
	out := map[string][]digest.Digest{}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, t := range l.seen {
		out[t.repo] = append(out[t.repo], t.digest)
	}
	return out, nil
}

// read reads the records keys name into the cache.
func (l *LedgerDigests) read(ctx context.Context, keys []string) error {
	s := &Service{store: l.store}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, k := range keys {
		g.Go(func() error {
			rec, err := s.readRecord(gctx, k)
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			l.mu.Lock()
			l.seen[k] = ledgerTarget{repo: rec.Repository, digest: rec.Digest}
			l.mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}
