package tombstone

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slipway/slipway/storage"
)

// BeginSweep writes run's sweep entry: from now on writers check
// tombstones. The collector waits Fence after it returns before it writes
// its first tombstone.
func BeginSweep(ctx context.Context, s storage.Store, run string) error {
	now := time.Now().UTC()
	r := encode(Sweep{Run: run, Started: now, Heartbeat: now})
	_, err := s.Put(ctx, SweepKey(run), r, r.Size())
	return err
}

// Heartbeat refreshes run's sweep entry (compare-and-set on its current
// version). storage.ErrNotFound: the entry is gone (another run judged
// this one dead and removed it): the caller must stop before its next
// commit.
func Heartbeat(ctx context.Context, s storage.Store, run string) error {
	for i := 0; i < 3; i++ {
		sw, etag, err := readSweep(ctx, s, SweepKey(run))
		if err != nil {
			return err
		}
		sw.Heartbeat = time.Now().UTC()
		r := encode(sw)
		_, err = s.PutIfMatch(ctx, SweepKey(run), r, r.Size(), etag)
		if !errors.Is(err, storage.ErrPreconditionFailed) {
			return err
		}
		// Changed or deleted since the read: the next read tells.
	}
	return fmt.Errorf("sweep %s: heartbeat kept losing: %w", run, storage.ErrPreconditionFailed)
}

// EndSweep deletes run's sweep entry (a missing one is fine).
func EndSweep(ctx context.Context, s storage.Store, run string) error {
	return s.Delete(ctx, SweepKey(run))
}

// Sweeps lists the sweep entries, in run id order. An entry removed while
// it is listed is left out.
func Sweeps(ctx context.Context, s storage.Store) ([]Sweep, error) {
	var out []Sweep
	err := storage.Walk(ctx, s, SweepPrefix, func(o storage.Info) error {
		sw, _, err := readSweep(ctx, s, o.Key)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if sw.Run == "" {
			sw.Run = strings.TrimPrefix(o.Key, SweepPrefix)
		}
		out = append(out, sw)
		return nil
	})
	return out, err
}

func readSweep(ctx context.Context, s storage.Store, key string) (Sweep, string, error) {
	var sw Sweep
	etag, err := readJSON(ctx, s, key, &sw)
	return sw, etag, err
}
