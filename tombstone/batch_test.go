package tombstone_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/pause"
	"github.com/slipway/slipway/tombstone"
)

// writeCount counts the writes of tombstone shards.
type writeCount struct {
	storage.Store
	mu     sync.Mutex
	writes int
}

func (w *writeCount) count(key string) {
	if strings.HasPrefix(key, tombstone.Prefix) {
		w.mu.Lock()
		w.writes++
		w.mu.Unlock()
	}
}

func (w *writeCount) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	info, err := w.Store.PutIfAbsent(ctx, key, r, size)
	if err == nil {
		w.count(key)
	}
	return info, err
}

func (w *writeCount) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (storage.Info, error) {
	info, err := w.Store.PutIfMatch(ctx, key, r, size, etag)
	if err == nil {
		w.count(key)
	}
	return info, err
}

// take returns the writes counted since the last take.
func (w *writeCount) take() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.writes
	w.writes = 0
	return n
}

// The batch steps keep each tombstone's own compare-and-set (another
// run's tombstone is left alone, a rescued one is not committed, one
// found live is removed, a stale version removes nothing), with one write
// per shard.
func TestBatchStepsPerShard(t *testing.T) {
	onStores(t, func(t *testing.T, base storage.Store) {
		ctx := context.Background()
		s := &writeCount{Store: base}
		keys := make([]string, 500)
		for i := range keys {
			keys[i] = fmt.Sprintf("repositories/app/_blobs/sha256/%064x", i)
		}
		other, rescued, live := keys[0], keys[1], keys[2]
		if _, err := tombstone.Mark(ctx, s, other, "r0"); err != nil {
			t.Fatal(err)
		}
		s.take()

		marked, existing, err := tombstone.MarkAll(ctx, s, keys, "r1", 8)
		if err != nil {
			t.Fatal(err)
		}
		if len(marked) != len(keys)-1 || len(existing) != 1 || existing[0] != other {
			t.Fatalf("MarkAll: %d marked, existing %q; want %d and [%s]", len(marked), existing, len(keys)-1, other)
		}
		if n := s.take(); n > tombstone.Shards {
			t.Errorf("MarkAll of %d keys: %d shard writes, want at most %d", len(keys), n, tombstone.Shards)
		}
		if tb, v, err := tombstone.Read(ctx, s, keys[3]); err != nil || tb.State != tombstone.Marked || tb.Run != "r1" || v != marked[keys[3]] {
			t.Fatalf("Read after MarkAll: %+v %q %v", tb, v, err)
		}
		// A writer rescues one.
		if err := tombstone.Rescue(ctx, s, rescued, "r1", marked[rescued]); err != nil {
			t.Fatal(err)
		}
		s.take()

		committed, err := tombstone.CommitAll(ctx, s, "r1", marked, func(k string) bool { return k != live }, 8)
		if err != nil {
			t.Fatal(err)
		}
		if n := s.take(); n > tombstone.Shards {
			t.Errorf("CommitAll: %d shard writes, want at most %d", n, tombstone.Shards)
		}
		if len(committed) != len(keys)-3 {
			t.Errorf("%d committed, want %d", len(committed), len(keys)-3)
		}
		for _, k := range []string{other, rescued, live} {
			if _, ok := committed[k]; ok {
				t.Errorf("%s committed", k)
			}
		}
		if got := state(t, s, other); got != tombstone.Marked {
			t.Errorf("another run's tombstone: %q, want it left marked", got)
		}
		for _, k := range []string{rescued, live} {
			if got := state(t, s, k); got != "" {
				t.Errorf("tombstone of kept %s: %q, want it removed", k, got)
			}
		}
		if got := state(t, s, keys[3]); got != tombstone.Deleting {
			t.Errorf("committed tombstone: %q", got)
		}
		// A stale version removes nothing; the committed versions remove.
		if err := tombstone.RemoveAll(ctx, s, map[string]string{keys[3]: marked[keys[3]]}, 8); err != nil {
			t.Fatal(err)
		}
		if got := state(t, s, keys[3]); got != tombstone.Deleting {
			t.Errorf("after a removal with a stale version: %q, want deleting", got)
		}
		if err := tombstone.RemoveAll(ctx, s, committed, 8); err != nil {
			t.Fatal(err)
		}
		if n := s.take(); n > tombstone.Shards {
			t.Errorf("RemoveAll: %d shard writes, want at most %d", n, tombstone.Shards)
		}
		all, err := tombstone.All(ctx, s)
		if err != nil || len(all) != 1 || all[other].Run != "r0" {
			t.Fatalf("All after RemoveAll: %v %v; want only %s of r0", all, err, other)
		}
	})
}

// A rescue that lands between the collector's read of a shard and its
// write of the commits wins: the write is refused, the collector reads
// again and commits the others only.
func TestRescueBetweenReadAndWriteOfCommits(t *testing.T) {
	onStores(t, func(t *testing.T, base storage.Store) {
		ctx := context.Background()
		const a, b = "manifests/sha256/aa/a1", "manifests/sha256/aa/a2"
		p := pause.New(base)
		s := p.Store()
		// Two keys of one shard.
		k2 := b
		for i := 0; tombstone.Key(k2) != tombstone.Key(a); i++ {
			k2 = fmt.Sprintf("%s-%d", b, i)
		}
		marked, _, err := tombstone.MarkAll(ctx, s, []string{a, k2}, "r1", 2)
		if err != nil {
			t.Fatal(err)
		}
		write := p.Before(pause.PutIfMatch, tombstone.Key(a))
		done := make(chan error, 1)
		var committed map[string]string
		go func() {
			var err error
			committed, err = tombstone.CommitAll(ctx, s, "r1", marked, func(string) bool { return true }, 2)
			done <- err
		}()
		<-write.Reached() // the collector read the shard, its write is held
		if err := tombstone.Rescue(ctx, base, a, "r1", marked[a]); err != nil {
			t.Fatal(err)
		}
		write.Release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, ok := committed[a]; ok || len(committed) != 1 {
			t.Fatalf("committed %v, want only %s", committed, k2)
		}
		if got := state(t, base, a); got != "" {
			t.Errorf("rescued tombstone after the commits: %q, want removed", got)
		}
		if got := state(t, base, k2); got != tombstone.Deleting {
			t.Errorf("the other tombstone: %q, want deleting", got)
		}
		if err := tombstone.Commit(ctx, base, a, "r1", marked[a]); !errors.Is(err, storage.ErrPreconditionFailed) {
			t.Errorf("a later Commit of the rescued one: %v, want ErrPreconditionFailed", err)
		}
	})
}
