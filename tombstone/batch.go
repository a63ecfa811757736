package tombstone

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/storage"
)

// The collector's steps on a batch: the same compare-and-sets as the
// steps on one tombstone (steps.go), one update per shard the batch
// touches, at most concurrency shards at once.

// byShard groups object keys by the shard of their tombstones.
func byShard(keys []string) map[string][]string {
	out := map[string][]string{}
	for _, k := range keys {
		sk := Key(k)
		out[sk] = append(out[sk], k)
	}
	return out
}

// eachShard runs f for each shard of keys, at most concurrency at once;
// the first error cancels the rest.
func eachShard(ctx context.Context, keys []string, concurrency int, f func(ctx context.Context, shardKey string, keys []string) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for sk, ks := range byShard(keys) {
		g.Go(func() error { return f(gctx, sk, ks) })
	}
	return g.Wait()
}

// MarkAll is Mark of every key for run: it returns the versions of the
// tombstones it wrote, by object key, and the keys that already had a
// tombstone (another run's: skip them this run, or finish them).
func MarkAll(ctx context.Context, s storage.Store, keys []string, run string, concurrency int) (marked map[string]string, existing []string, err error) {
	var mu sync.Mutex
	marked = map[string]string{}
	err = eachShard(ctx, keys, concurrency, func(ctx context.Context, sk string, ks []string) error {
		var wrote map[string]string
		var had []string
		err := update(ctx, s, sk, func(tombs map[string]Tomb) (bool, error) {
			wrote, had = map[string]string{}, nil
			now := time.Now().UTC()
			for _, k := range ks {
				if _, ok := tombs[k]; ok {
					had = append(had, k)
					continue
				}
				t := Tomb{Run: run, State: Marked, At: now, Version: newVersion()}
				tombs[k] = t
				wrote[k] = t.Version
			}
			return len(wrote) > 0, nil
		})
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for k, v := range wrote {
			marked[k] = v
		}
		existing = append(existing, had...)
		return nil
	})
	return marked, existing, err
}

// CommitAll resolves marked tombstones of run, given by object key with
// the version MarkAll returned: a key whose tombstone is still at that
// version is committed (Deleting, as Commit) when garbage says so, and
// removed otherwise (the second look found it live); a key whose
// tombstone changed lost its commit: a writer rescued it (the Rescued
// tombstone of run is removed: the object stays), or recovery removed it.
// It returns the committed keys with their new versions; the caller
// deletes their objects, then removes their tombstones (RemoveAll), in
// that order.
func CommitAll(ctx context.Context, s storage.Store, run string, versions map[string]string, garbage func(objectKey string) bool, concurrency int) (committed map[string]string, err error) {
	keys := make([]string, 0, len(versions))
	for k := range versions {
		keys = append(keys, k)
	}
	var mu sync.Mutex
	committed = map[string]string{}
	err = eachShard(ctx, keys, concurrency, func(ctx context.Context, sk string, ks []string) error {
		var won map[string]string
		err := update(ctx, s, sk, func(tombs map[string]Tomb) (bool, error) {
			won = map[string]string{}
			changed := false
			now := time.Now().UTC()
			for _, k := range ks {
				cur, ok := tombs[k]
				switch {
				case !ok:
				case cur.Version == versions[k] && garbage(k):
					t := Tomb{Run: run, State: Deleting, At: now, Version: newVersion()}
					tombs[k] = t
					won[k] = t.Version
					changed = true
				case cur.Version == versions[k], cur.State == Rescued && cur.Run == run:
					delete(tombs, k)
					changed = true
				}
			}
			return changed, nil
		})
		if err != nil {
			return err
		}
		mu.Lock()
		for k, v := range won {
			committed[k] = v
		}
		mu.Unlock()
		return nil
	})
	return committed, err
}

// RemoveAll removes the tombstones given by object key with their
// version, each only if it is still at that version: a tombstone that
// changed since (claimed by a finisher, or another run's since) is not
// the caller's to remove.
func RemoveAll(ctx context.Context, s storage.Store, versions map[string]string, concurrency int) error {
	keys := make([]string, 0, len(versions))
	for k := range versions {
		keys = append(keys, k)
	}
	return eachShard(ctx, keys, concurrency, func(ctx context.Context, sk string, ks []string) error {
		return update(ctx, s, sk, func(tombs map[string]Tomb) (bool, error) {
			changed := false
			for _, k := range ks {
				if t, ok := tombs[k]; ok && t.Version == versions[k] {
					delete(tombs, k)
					changed = true
				}
			}
			return changed, nil
		})
	})
}

// All returns every tombstone, by object key (one list of the shards and
// one read of each).
func All(ctx context.Context, s storage.Store) (map[string]Tomb, error) {
	out := map[string]Tomb{}
	err := storage.Walk(ctx, s, Prefix, func(o storage.Info) error {
		tombs, _, err := readShard(ctx, s, o.Key)
		for k, t := range tombs {
			if t.valid() == nil {
				out[k] = t
			}
		}
		return err
	})
	return out, err
}
