package gc

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// batchRecorder is a store with a BatchDeleter (as storage/s3 has) that
// records every delete, in order.
type batchRecorder struct {
	storage.Store
	mu      sync.Mutex
	batches [][]string // DeleteBatch calls
	singles []string   // Delete calls
	at      map[string]int
}

func (b *batchRecorder) DeleteBatch(ctx context.Context, keys []string) error {
	b.mu.Lock()
	b.batches = append(b.batches, slices.Clone(keys))
	for _, k := range keys {
		if _, ok := b.at[k]; !ok {
			b.at[k] = len(b.batches) // the first time it is deleted
		}
	}
	b.mu.Unlock()
	for _, k := range keys {
		if err := b.Store.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

func (b *batchRecorder) Delete(ctx context.Context, key string) error {
	b.mu.Lock()
	b.singles = append(b.singles, key)
	b.mu.Unlock()
	return b.Store.Delete(ctx, key)
}

// A store that deletes in batches gets the committed objects of a sweep
// batch deleted together, a few requests for many objects, in the order
// one deletion keeps: a referrer entry before its manifest link, a
// descriptor before its data, every object before its tombstone; kept
// candidates' tombstones go in a batch too.
func TestDeletesAreBatched(t *testing.T) {
	e := newEnv(t)
	live := e.image("app", "v1", "live", nil, "l0")
	dead := e.image("app", "", "dead-subject", nil, "l1", "l2", "l3")
	deadSig := e.image("app", "", "dead-signature", &dead, "sig")
	gone := append(e.imageKeys("app", dead.Digest), e.imageKeys("app", deadSig.Digest)...)
	entry := registry.ReferrerKey("app", dead.Digest, deadSig.Digest)
	e.wantPresent(entry)
	dataOf := map[string][]string{} // descriptor -> its data objects
	for _, k := range gone {
		if strings.HasPrefix(k, registry.BlobsPrefix) {
			b, err := readSmall(context.Background(), e.store, k, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if dataOf[k], _, err = registry.DescriptorData(b); err != nil || len(dataOf[k]) == 0 {
				t.Fatalf("descriptor %s: %v %q", k, err, dataOf[k])
			}
		}
	}

	rec := &batchRecorder{Store: e.store, at: map[string]int{}}
	e.reg.Wait()
	rep, err := New(rec, e.reg.Metadata(), promote.NewLedgerDigests(e.store), Options{Fence: -1, LinkTTL: -1}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.wantGone(gone...)
	e.wantGone(entry)
	e.wantPresent(e.imageKeys("app", live.Digest)...)
	e.verify()

	for _, k := range rec.singles {
		if strings.HasPrefix(k, registry.RepositoriesPrefix) || strings.HasPrefix(k, registry.BlobsPrefix) ||
			strings.HasPrefix(k, registry.ManifestsPrefix) || strings.HasPrefix(k, tombstone.Prefix) ||
			strings.HasPrefix(k, registry.DataPrefix) {
			t.Errorf("%s was deleted alone, not in a batch", k)
		}
	}
	if len(rec.batches) == 0 || int64(len(rec.batches)) >= rep.Freed.Objects {
		t.Errorf("%d batches for %d objects freed", len(rec.batches), rep.Freed.Objects)
	}
	before := func(first, then string) {
		t.Helper()
		a, b := rec.at[first], rec.at[then]
		if a == 0 || b == 0 || a >= b {
			t.Errorf("%s deleted in batch %d, %s in batch %d: want the first strictly before", first, a, then, b)
		}
	}
	for _, k := range gone {
		if !strings.HasPrefix(k, registry.DataPrefix) { // data goes with its descriptor, untombstoned
			before(k, tombstone.Key(k))
		}
	}
	before(entry, registry.ManifestLinkKey("app", deadSig.Digest))
	for desc, data := range dataOf {
		for _, d := range data {
			before(desc, d)
		}
	}
}
