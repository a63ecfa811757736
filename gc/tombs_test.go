package gc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// deleteLog is a store with batch deletes that records every deletion in
// order: "one <key>" for a Delete, "batch <key>" for each key of a
// DeleteBatch.
type deleteLog struct {
	storage.Store
	mu  sync.Mutex
	log []string
	// batches counts DeleteBatch calls.
	batches int
}

func (d *deleteLog) Delete(ctx context.Context, key string) error {
	err := d.Store.Delete(ctx, key)
	d.mu.Lock()
	d.log = append(d.log, "one "+key)
	d.mu.Unlock()
	return err
}

func (d *deleteLog) DeleteBatch(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if err := d.Store.Delete(ctx, k); err != nil {
			return err
		}
	}
	d.mu.Lock()
	d.batches++
	for _, k := range keys {
		d.log = append(d.log, "batch "+k)
	}
	d.mu.Unlock()
	return nil
}

// The tombstones of deleted objects go in batches, each after its object:
// the protocol's order (docs/architecture.md 5.2, step 5) with one
// request per batch instead of one per tombstone.
func TestTombstonesGoInBatchesAfterTheirObjects(t *testing.T) {
	e := newEnv(t)
	kept := e.image("app", "v1", "kept", nil, "shared")
	keptKeys := e.imageKeys("app", kept.Digest)
	var goneKeys []string
	for i := range 3 {
		gone := e.image("app", "", fmt.Sprintf("gone-%d", i), nil, "shared", fmt.Sprintf("only-%d", i))
		for _, k := range e.imageKeys("app", gone.Digest) {
			if !slices.Contains(keptKeys, k) {
				goneKeys = append(goneKeys, k)
			}
		}
	}
	e.reg.Wait()

	rec := &deleteLog{Store: e.store}
	quiet := registry.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c := New(rec, registry.New(rec, quiet).Metadata(), promote.NewLedgerDigests(rec), Options{Fence: -1, LinkTTL: -1})
	c.tombBatch = 2 // full batches within a layer, not only its last flush
	rep, err := c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.wantGone(goneKeys...)
	e.wantPresent(keptKeys...)
	if left := e.keys(tombstone.Prefix); len(left) != 0 {
		t.Errorf("tombstones left: %q", left)
	}
	if rep.Freed.Objects < int64(len(goneKeys)) {
		t.Errorf("freed %d objects, want at least %d", rep.Freed.Objects, len(goneKeys))
	}

	deleted := map[string]int{} // object key -> position of its deletion
	removed := 0
	for i, entry := range rec.log {
		how, key, _ := strings.Cut(entry, " ")
		obj, isTomb := tombstone.ObjectKey(key)
		switch {
		case !isTomb:
			deleted[key] = i
		case how == "one":
			t.Errorf("tombstone %s removed by a single DELETE", key)
		default:
			removed++
			if at, ok := deleted[obj]; !ok || at > i {
				t.Errorf("tombstone of %s removed before the object was deleted", obj)
			}
		}
	}
	// Every deleted candidate had a tombstone (data objects go with
	// their descriptor, under its tombstone).
	candidates := 0
	for _, k := range rep.Deleted {
		if !strings.HasPrefix(k, "data/") {
			candidates++
			if !slices.Contains(rec.log, "batch "+tombstone.Key(k)) {
				t.Errorf("the tombstone of deleted %s was not removed in a batch", k)
			}
		}
	}
	if candidates == 0 || removed < candidates {
		t.Errorf("%d tombstones removed in batches for %d deleted candidates", removed, candidates)
	}
	if rec.batches == 0 || rec.batches >= removed {
		t.Errorf("%d batches for %d tombstones", rec.batches, removed)
	}
}

// A full batch goes at once; flush takes the rest.
func TestTombRemoverBatches(t *testing.T) {
	e := newEnv(t)
	rec := &deleteLog{Store: e.store}
	tr := &tombRemover{store: rec, size: tombBatch, concurrency: 4}
	ctx := context.Background()
	n := 2*tombBatch + 10
	for i := range n {
		key := fmt.Sprintf("blobs/x/%d", i)
		e.putObject(tombstone.Key(key), "{}")
		if err := tr.remove(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if rec.batches != 2 || len(e.keys(tombstone.Prefix)) != 10 {
		t.Fatalf("after %d removals: %d batches, %d tombstones left; want 2 and 10", n, rec.batches, len(e.keys(tombstone.Prefix)))
	}
	if err := tr.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if rec.batches != 3 || len(e.keys(tombstone.Prefix)) != 0 {
		t.Fatalf("after flush: %d batches, %d tombstones left; want 3 and 0", rec.batches, len(e.keys(tombstone.Prefix)))
	}
}

// A key that waited tombWait goes with the next one, batch not full.
func TestTombRemoverDoesNotHoldLong(t *testing.T) {
	e := newEnv(t)
	rec := &deleteLog{Store: e.store}
	tr := &tombRemover{store: rec, size: tombBatch, concurrency: 4}
	ctx := context.Background()
	for _, key := range []string{"blobs/x/1", "blobs/x/2"} {
		e.putObject(tombstone.Key(key), "{}")
	}
	if err := tr.remove(ctx, "blobs/x/1"); err != nil {
		t.Fatal(err)
	}
	if rec.batches != 0 {
		t.Fatalf("a batch of one was sent at once")
	}
	time.Sleep(tombWait)
	if err := tr.remove(ctx, "blobs/x/2"); err != nil {
		t.Fatal(err)
	}
	if rec.batches != 1 || len(e.keys(tombstone.Prefix)) != 0 {
		t.Fatalf("after %s: %d batches, tombstones left %q; want 1 batch, none left", tombWait, rec.batches, e.keys(tombstone.Prefix))
	}
}
