package tombstone_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/pause"
	"github.com/slipway/slipway/tombstone"
)

func TestProtectWithoutSweepIsCached(t *testing.T) {
	ctx, s := context.Background(), fsStore(t)
	g := tombstone.NewGuard(s)
	g.CacheFor = time.Hour
	// No sweep: nothing is checked, not even that the object exists.
	for i := 0; i < 5; i++ {
		if err := g.Protect(ctx, "blobs/sha256/aa/missing"); err != nil {
			t.Fatal(err)
		}
	}
	if n := g.Lists(); n != 1 {
		t.Fatalf("%d lists for 5 Protects within CacheFor, want 1", n)
	}
	// Once the cache expires, a sweep entry is seen.
	g.CacheFor = 0
	if err := tombstone.BeginSweep(ctx, s, "r1"); err != nil {
		t.Fatal(err)
	}
	err := g.Protect(ctx, "blobs/sha256/aa/missing")
	if !errors.Is(err, tombstone.ErrCollected) {
		t.Fatalf("Protect of a missing object during a sweep: %v, want ErrCollected", err)
	}
	var ce *tombstone.CollectedError
	if !errors.As(err, &ce) || ce.Key != "blobs/sha256/aa/missing" || ce.Deleting {
		t.Fatalf("error %v does not name the gone key", err)
	}
	if n := g.Lists(); n != 2 {
		t.Fatalf("%d lists, want 2", n)
	}
}

func TestProtectDuringSweep(t *testing.T) {
	ctx, s := context.Background(), fsStore(t)
	g := tombstone.NewGuard(s)
	g.CacheFor = 0
	if err := tombstone.BeginSweep(ctx, s, "r1"); err != nil {
		t.Fatal(err)
	}
	const plain, marked, rescued, deleting = "a/plain", "a/marked", "a/rescued", "a/deleting"
	for _, k := range []string{plain, marked, rescued, deleting} {
		putObject(t, s, k)
	}
	// none + present: ok, no tombstone written.
	if err := g.Protect(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if got := state(t, s, plain); got != "" {
		t.Fatalf("Protect of an unmarked object wrote a tombstone %q", got)
	}
	// marked: rescued, and the collector's commit loses.
	etag, err := tombstone.Mark(ctx, s, marked, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Protect(ctx, marked); err != nil {
		t.Fatal(err)
	}
	if got := state(t, s, marked); got != tombstone.Rescued {
		t.Fatalf("marked object after Protect: %q, want rescued", got)
	}
	if err := tombstone.Commit(ctx, s, marked, "r1", etag); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("Commit after a rescue: %v", err)
	}
	// rescued: ok, unchanged.
	if err := g.Protect(ctx, marked); err != nil {
		t.Fatal(err)
	}
	// deleting: ErrCollected, naming the key, deletion committed.
	etag, _ = tombstone.Mark(ctx, s, deleting, "r1")
	if err := tombstone.Commit(ctx, s, deleting, "r1", etag); err != nil {
		t.Fatal(err)
	}
	err = g.Protect(ctx, plain, deleting)
	var ce *tombstone.CollectedError
	if !errors.As(err, &ce) || ce.Key != deleting || !ce.Deleting {
		t.Fatalf("Protect of a deleting object: %v", err)
	}
	if got := state(t, s, deleting); got != tombstone.Deleting {
		t.Fatalf("Protect changed a deleting tombstone to %q", got)
	}
}

// A rescue that loses to the commit reads again and reports the deletion.
func TestProtectLosesToCommit(t *testing.T) {
	onStores(t, func(t *testing.T, fsys storage.Store) {
		ctx := context.Background()
		const k = "a/obj"
		p, s := pausedWithObject(t, fsys, k)
		if err := tombstone.BeginSweep(ctx, s, "r1"); err != nil {
			t.Fatal(err)
		}
		etag, err := tombstone.Mark(ctx, s, k, "r1")
		if err != nil {
			t.Fatal(err)
		}
		// The writer read "marked"; the collector commits before its rescue.
		rescue := p.Before(pause.PutIfMatch, tombstone.Key(k))
		done := make(chan error, 1)
		go func() { done <- tombstone.NewGuard(s).Protect(ctx, k) }()
		<-rescue.Reached()
		if err := tombstone.Commit(ctx, fsys, k, "r1", etag); err != nil {
			t.Fatal(err)
		}
		rescue.Release()
		var ce *tombstone.CollectedError
		if err := <-done; !errors.As(err, &ce) || !ce.Deleting {
			t.Fatalf("Protect after losing its rescue: %v, want a committed ErrCollected", err)
		}
	})
}

// Concurrent callers share one list per CacheFor.
func TestProtectConcurrentCallersShareOneList(t *testing.T) {
	ctx, s := context.Background(), fsStore(t)
	g := tombstone.NewGuard(s)
	g.CacheFor = time.Hour
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.Protect(ctx, "a/b"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := g.Lists(); n != 1 {
		t.Fatalf("%d lists for 20 concurrent Protects, want 1", n)
	}
}

// getCount counts the reads of tombstone shards.
type getCount struct {
	storage.Store
	mu   sync.Mutex
	gets int
}

func (g *getCount) Get(ctx context.Context, key string, opts storage.GetOptions) (io.ReadCloser, storage.Info, error) {
	if strings.HasPrefix(key, tombstone.Prefix) {
		g.mu.Lock()
		g.gets++
		g.mu.Unlock()
	}
	return g.Store.Get(ctx, key, opts)
}

// The keys of one Protect call that share a shard are judged on one read
// of it; a marked one among them is still rescued.
func TestProtectReadsEachShardOnce(t *testing.T) {
	ctx := context.Background()
	s := &getCount{Store: fsStore(t)}
	g := tombstone.NewGuard(s)
	g.CacheFor = 0
	keys := []string{"repositories/app/_blobs/sha256/0"}
	for i := 1; len(keys) < 4; i++ {
		if k := fmt.Sprintf("repositories/app/_blobs/sha256/%d", i); tombstone.Key(k) == tombstone.Key(keys[0]) {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		putObject(t, s, k)
	}
	if err := tombstone.BeginSweep(ctx, s, "r1"); err != nil {
		t.Fatal(err)
	}
	version, err := tombstone.Mark(ctx, s, keys[2], "r1")
	if err != nil {
		t.Fatal(err)
	}
	s.gets = 0
	if err := g.Protect(ctx, keys...); err != nil {
		t.Fatal(err)
	}
	// One read for the four keys, one more by the rescue's compare-and-set.
	if s.gets != 2 {
		t.Errorf("%d reads of the shard for %d keys and one rescue, want 2", s.gets, len(keys))
	}
	if got := state(t, s, keys[2]); got != tombstone.Rescued {
		t.Errorf("the marked key after Protect: %q, want rescued", got)
	}
	if err := tombstone.Commit(ctx, s, keys[2], "r1", version); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Errorf("Commit after the rescue: %v, want ErrPreconditionFailed", err)
	}
}
