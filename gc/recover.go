package gc

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// recover finishes what earlier runs left: a sweep entry not refreshed
// for deadSweep (its ModTime, the store's clock, against the start of
// this run) is a dead run's; a deleting tombstone is a commitment, its
// deletion is finished; a marked or rescued one whose run is dead or has
// no sweep entry is removed. Dead runs' entries are ended last, after
// their tombstones are gone, so that a dead run that still runs cannot
// commit a tombstone once writers stop seeing its sweep (deadSweep).
func (r *run) recover(ctx context.Context) error {
	entries, err := sweepEntries(ctx, r.c.store)
	if err != nil {
		return err
	}
	dead := map[string]bool{}
	for run, info := range entries {
		if r.now.Sub(info.ModTime) > deadSweep {
			dead[run] = true
		}
	}
	tombs, err := tombstone.All(ctx, r.c.store)
	if err != nil {
		return err
	}
	if err := r.recoverTombs(ctx, tombs, dead); err != nil {
		return err
	}
	for run := range dead {
		if err := tombstone.EndSweep(ctx, r.c.store, run); err != nil {
			return err
		}
	}
	// A clock object lives for two requests (storeNow): one older than a
	// minute is a dead run's.
	return storage.Walk(ctx, r.c.store, clockPrefix, func(o storage.Info) error {
		if r.now.Sub(o.ModTime) > time.Minute {
			return r.c.store.Delete(ctx, o.Key)
		}
		return nil
	})
}

// sweepEntries lists the sweep entries by run, with their Info (ModTime:
// the last heartbeat, in the store's time).
func sweepEntries(ctx context.Context, s storage.Store) (map[string]storage.Info, error) {
	out := map[string]storage.Info{}
	err := storage.Walk(ctx, s, tombstone.SweepPrefix, func(o storage.Info) error {
		out[strings.TrimPrefix(o.Key, tombstone.SweepPrefix)] = o
		return nil
	})
	return out, err
}

// recoverTombs handles tombstones of earlier runs. The sweep entries are
// listed after the tombstones are read: a run that wrote one of them
// announced its sweep before, so a live run is never mistaken for one
// without an entry.
func (r *run) recoverTombs(ctx context.Context, tombs map[string]tombstone.Tomb, dead map[string]bool) error {
	if len(tombs) == 0 {
		return nil
	}
	entries, err := sweepEntries(ctx, r.c.store)
	if err != nil {
		return err
	}
	var finish []candidate
	remove := map[string]string{}
	for k, t := range tombs {
		_, hasEntry := entries[t.Run]
		switch {
		case t.State == tombstone.Deleting:
			finish = append(finish, candidate{key: k, version: t.Version})
		case !hasEntry || dead[t.Run]:
			remove[k] = t.Version
		}
	}
	slices.SortFunc(finish, func(a, b candidate) int { return strings.Compare(a.key, b.key) })
	if err := r.each(ctx, len(finish), func(ctx context.Context, i int) error {
		return r.finishDeletion(ctx, finish[i])
	}); err != nil {
		return err
	}
	return tombstone.RemoveAll(ctx, r.c.store, remove, r.c.opts.Concurrency)
}
