package gc

import (
	"context"
	"errors"
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
	var page []string
	flush := func() error {
		err := r.recoverPage(ctx, page, dead)
		page = page[:0]
		return err
	}
	err = walk(ctx, r.c.store, tombstone.Prefix, func(o storage.Info) error {
		page = append(page, strings.TrimPrefix(o.Key, tombstone.Prefix))
		if len(page) == r.c.opts.BatchSize {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	for run := range dead {
		if err := tombstone.EndSweep(ctx, r.c.store, run); err != nil {
			return err
		}
	}
	// A clock object lives for two requests (storeNow): one older than a
	// minute is a dead run's.
	return walk(ctx, r.c.store, clockPrefix, func(o storage.Info) error {
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
	err := walk(ctx, s, tombstone.SweepPrefix, func(o storage.Info) error {
		out[strings.TrimPrefix(o.Key, tombstone.SweepPrefix)] = o
		return nil
	})
	return out, err
}

// recoverPage handles tombstones of earlier runs. The sweep entries are
// listed after the tombstones are read: a run that wrote one of them
// announced its sweep before, so a live run is never mistaken for one
// without an entry.
func (r *run) recoverPage(ctx context.Context, keys []string, dead map[string]bool) error {
	if len(keys) == 0 {
		return nil
	}
	tombs := make([]tombstone.Tomb, len(keys))
	found := make([]bool, len(keys))
	err := r.each(ctx, len(keys), func(ctx context.Context, i int) error {
		t, _, err := tombstone.Read(ctx, r.c.store, keys[i])
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		tombs[i], found[i] = t, err == nil
		return err
	})
	if err != nil {
		return err
	}
	entries, err := sweepEntries(ctx, r.c.store)
	if err != nil {
		return err
	}
	return r.each(ctx, len(keys), func(ctx context.Context, i int) error {
		_, hasEntry := entries[tombs[i].Run]
		switch {
		case !found[i]:
			return nil
		case tombs[i].State == tombstone.Deleting:
			return r.finishDeletion(ctx, candidate{key: keys[i]})
		case !hasEntry || dead[tombs[i].Run]:
			return tombstone.Remove(ctx, r.c.store, keys[i])
		}
		return nil
	})
}
