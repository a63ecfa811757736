package gc

import (
	"context"
	"errors"
	"strings"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// recover finishes what earlier runs left: sweep entries without a
// heartbeat for deadSweep (by the store's clock) are ended; a deleting
// tombstone is a commitment, its deletion is finished; a marked or
// rescued one whose run has no sweep entry any more is removed.
func (r *run) recover(ctx context.Context) error {
	sweeps, err := tombstone.Sweeps(ctx, r.c.store)
	if err != nil {
		return err
	}
	for _, sw := range sweeps {
		if r.now.Sub(sw.Heartbeat) > deadSweep {
			if err := tombstone.EndSweep(ctx, r.c.store, sw.Run); err != nil {
				return err
			}
		}
	}
	var page []string
	flush := func() error {
		err := r.recoverPage(ctx, page)
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
	return err
}

// recoverPage handles tombstones of earlier runs. The sweep entries are
// read after the tombstones: a run that wrote one of them announced its
// sweep before, so a live run is never mistaken for a dead one.
func (r *run) recoverPage(ctx context.Context, keys []string) error {
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
	sweeps, err := tombstone.Sweeps(ctx, r.c.store)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, sw := range sweeps {
		live[sw.Run] = true
	}
	return r.each(ctx, len(keys), func(ctx context.Context, i int) error {
		switch {
		case !found[i]:
			return nil
		case tombs[i].State == tombstone.Deleting:
			return r.finishDeletion(ctx, candidate{key: keys[i]})
		case !live[tombs[i].Run]:
			return tombstone.Remove(ctx, r.c.store, keys[i])
		}
		return nil
	})
}
