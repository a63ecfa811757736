package gc

import (
	"context"
	"sync"
	"time"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// A batch of tombstones to remove (one storage.DeleteAll: one S3
// multi-object delete) is sent once it holds tombBatch keys, or when a
// key is added and the oldest has waited tombWait: a tombstone outlives
// its object by about tombWait even when the collection is paced
// (storage/pace), which a writer waiting for it (AwaitGone, 10 s) barely
// notices.
const (
	tombBatch = 256
	tombWait  = 500 * time.Millisecond
)

// tombRemover removes the tombstones of a commit layer's resolved
// candidates a batch at a time, instead of one DELETE each: half of the
// collector's single DELETEs were these (BENCHMARKS.md, "Garbage
// collection"). A key is added only once its object is deleted (or kept),
// so the protocol's order holds: the object goes before its tombstone
// (docs/architecture.md 5.2, step 5). A tombstone left by an error or a
// kill is a dead run's: recovery finishes or removes it.
type tombRemover struct {
	store       storage.Store
	size        int // a batch
	concurrency int // for a store without batch deletes
	mu          sync.Mutex
	keys        []string
	since       time.Time // when the oldest queued key was added
}

// remove queues objectKey's tombstone, and removes the batch when it is
// full or its oldest key has waited tombWait.
func (t *tombRemover) remove(ctx context.Context, objectKey string) error {
	t.mu.Lock()
	if len(t.keys) == 0 {
		t.since = time.Now()
	}
	t.keys = append(t.keys, tombstone.Key(objectKey))
	var full []string
	if len(t.keys) >= t.size || time.Since(t.since) >= tombWait {
		full, t.keys = t.keys, nil
	}
	t.mu.Unlock()
	return storage.DeleteAll(ctx, t.store, full, t.concurrency)
}

// flush removes what is queued.
func (t *tombRemover) flush(ctx context.Context) error {
	t.mu.Lock()
	keys := t.keys
	t.keys = nil
	t.mu.Unlock()
	return storage.DeleteAll(ctx, t.store, keys, t.concurrency)
}

// settle flushes after a commit layer whatever err it ended with (what is
// queued was resolved, so its tombstones may go even on an error or a
// cancelled ctx; recovery removes any left), and returns err, else the
// flush's error.
func (t *tombRemover) settle(ctx context.Context, err error) error {
	if ferr := t.flush(context.WithoutCancel(ctx)); err == nil {
		err = ferr
	}
	return err
}
