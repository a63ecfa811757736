package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// writeLog is a store with batch deletes that records, in order, every
// deletion ("one <key>" for a Delete, "batch <key>" for each key of a
// DeleteBatch) and, for every write of a tombstone shard, the state of
// each object key in it ("tomb <key> <state>", "tomb <key> none" for a key
// the write removed).
type writeLog struct {
	storage.Store
	mu      sync.Mutex
	log     []string
	batches int                          // DeleteBatch calls
	last    map[string]map[string]string // shard -> object key -> state
}

func (w *writeLog) Delete(ctx context.Context, key string) error {
	err := w.Store.Delete(ctx, key)
	w.add("one " + key)
	return err
}

func (w *writeLog) DeleteBatch(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if err := w.Store.Delete(ctx, k); err != nil {
			return err
		}
	}
	w.mu.Lock()
	w.batches++
	w.mu.Unlock()
	for _, k := range keys {
		w.add("batch " + k)
	}
	return nil
}

func (w *writeLog) add(entry string) {
	w.mu.Lock()
	w.log = append(w.log, entry)
	w.mu.Unlock()
}

func (w *writeLog) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	return w.shardWrite(key, r, func(r io.Reader) (storage.Info, error) { return w.Store.PutIfAbsent(ctx, key, r, size) })
}

func (w *writeLog) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (storage.Info, error) {
	return w.shardWrite(key, r, func(r io.Reader) (storage.Info, error) { return w.Store.PutIfMatch(ctx, key, r, size, etag) })
}

// shardWrite logs the states a successful write of a shard changed.
func (w *writeLog) shardWrite(key string, r io.Reader, put func(io.Reader) (storage.Info, error)) (storage.Info, error) {
	if !strings.HasPrefix(key, tombstone.Prefix) {
		return put(r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return storage.Info{}, err
	}
	w.mu.Lock() // one shard write at a time: the log follows the store's order
	defer w.mu.Unlock()
	info, err := put(bytes.NewReader(b))
	if err != nil {
		return info, err
	}
	var sh struct {
		Tombs map[string]tombstone.Tomb `json:"tombs"`
	}
	if err := json.Unmarshal(b, &sh); err != nil {
		return info, err
	}
	if w.last == nil {
		w.last = map[string]map[string]string{}
	}
	now := map[string]string{}
	for k, t := range sh.Tombs {
		now[k] = string(t.State)
		if w.last[key][k] != now[k] {
			w.log = append(w.log, "tomb "+k+" "+now[k])
		}
	}
	for k := range w.last[key] {
		if _, ok := now[k]; !ok {
			w.log = append(w.log, "tomb "+k+" none")
		}
	}
	w.last[key] = now
	return info, nil
}

// A commit layer is resolved a chunk at a time: every object is deleted
// after its tombstone is committed and before the tombstone is removed
// (docs/architecture.md 5.2, steps 4 and 5), in multi-object deletes, and
// the tombstones are written a shard at a time, not one request each.
func TestChunksDeleteBetweenCommitAndRemoval(t *testing.T) {
	e := newEnv(t)
	kept := e.image("app", "v1", "kept", nil, "shared")
	keptKeys := e.imageKeys("app", kept.Digest)
	var goneKeys []string
	for i := range 6 {
		gone := e.image("app", "", fmt.Sprintf("gone-%d", i), nil, "shared", fmt.Sprintf("only-%d", i))
		for _, k := range e.imageKeys("app", gone.Digest) {
			if !slices.Contains(keptKeys, k) && !slices.Contains(goneKeys, k) {
				goneKeys = append(goneKeys, k)
			}
		}
	}
	e.reg.Wait()

	rec := &writeLog{Store: e.store}
	quiet := registry.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c := New(rec, registry.New(rec, quiet).Metadata(), promote.NewLedgerDigests(rec), Options{Fence: -1, LinkTTL: -1})
	c.chunk = 4 // several chunks per layer
	rep, err := c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.wantGone(goneKeys...)
	e.wantPresent(keptKeys...)
	if left, err := tombstone.All(context.Background(), e.store); err != nil || len(left) != 0 {
		t.Errorf("tombstones left: %v %v", left, err)
	}

	// For each candidate: the positions of its commit, its deletion and
	// its tombstone's removal after the commit.
	type steps struct{ commit, del, removed int }
	at := map[string]*steps{}
	get := func(k string) *steps {
		if at[k] == nil {
			at[k] = &steps{-1, -1, -1}
		}
		return at[k]
	}
	singles := 0
	for i, entry := range rec.log {
		f := strings.Fields(entry)
		switch {
		case f[0] == "tomb" && f[2] == string(tombstone.Deleting):
			get(f[1]).commit = i
		case f[0] == "tomb" && f[2] == "none" && get(f[1]).commit >= 0:
			get(f[1]).removed = i
		case f[0] == "one" && slices.Contains(goneKeys, f[1]):
			singles++
			fallthrough
		case f[0] == "batch":
			if s := get(f[1]); s.del < 0 {
				s.del = i
			}
		}
	}
	candidates := 0
	for _, k := range goneKeys {
		if strings.HasPrefix(k, "data/") {
			continue // goes with its descriptor, under its tombstone
		}
		candidates++
		if !slices.Contains(rep.Deleted, k) {
			t.Errorf("%s not in the report's deleted keys", k)
		}
		s := get(k)
		if !(s.commit >= 0 && s.commit < s.del && s.del < s.removed) {
			t.Errorf("%s: committed at %d, deleted at %d, tombstone removed at %d: want them in that order", k, s.commit, s.del, s.removed)
		}
	}
	if singles != 0 {
		t.Errorf("%d objects deleted by a single DELETE, want multi-object deletes only", singles)
	}
	if rec.batches == 0 || rec.batches >= candidates {
		t.Errorf("%d multi-object deletes for %d candidates", rec.batches, candidates)
	}
}
