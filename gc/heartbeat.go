package gc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// beat is a run's heartbeat: the sweep entry refreshed every
// Collector.beatEvery in the background from the announce to the end of
// the run, and on demand before each commit batch.
type beat struct {
	mu       sync.Mutex
	last     time.Time // (monotonic) when the last successful heartbeat was sent
	stopped  bool      // the entry is gone: another run judged this one dead
	cancel   context.CancelFunc
	finished chan struct{}
}

// startBeating records the entry just written (sent at sent) and
// refreshes it in the background until stopBeating.
func (r *run) startBeating(ctx context.Context, sent time.Time) {
	b := &r.beat
	b.mu.Lock()
	b.last = sent
	b.mu.Unlock()
	ctx, b.cancel = context.WithCancel(context.WithoutCancel(ctx))
	b.finished = make(chan struct{})
	go func() {
		defer close(b.finished)
		t := time.NewTicker(r.c.beatEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				// A failure is retried at the next tick; commits stop
				// once the last success is beatStale old (alive).
				_ = r.heartbeat(ctx)
			}
		}
	}()
}

// stopBeating ends the background heartbeat (before the entry is ended).
func (b *beat) stopBeating() {
	if b.cancel != nil {
		b.cancel()
		<-b.finished
	}
}

// heartbeat refreshes the sweep entry; errStopped if it is gone.
func (r *run) heartbeat(ctx context.Context) error {
	b := &r.beat
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return errStopped
	}
	sent := time.Now()
	err := tombstone.Heartbeat(ctx, r.c.store, r.id)
	if errors.Is(err, storage.ErrNotFound) {
		b.stopped = true
		return errStopped
	}
	if err == nil {
		b.last = sent
	}
	return err
}

// alive says whether this run may still commit: its entry was not found
// gone, and its last heartbeat was sent less than beatStale ago, so that
// no other run can have judged it dead (deadSweep) before the commit is
// sent.
func (r *run) alive() error {
	b := &r.beat
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return errStopped
	}
	if since := time.Since(b.last); since > beatStale {
		return fmt.Errorf("%w (no heartbeat for %s)", errStopped, since.Round(time.Second))
	}
	return nil
}
