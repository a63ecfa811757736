package promote

import (
	"context"
	"io"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

// countingGets counts reads.
type countingGets struct {
	storage.Store
	gets atomic.Int64
}

func (c *countingGets) Get(ctx context.Context, key string, o storage.GetOptions) (io.ReadCloser, storage.Info, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, key, o)
}

// Every promotion's digest is named in its target repository, the one a
// later promotion replaced included; records already read are not read
// again.
func TestLedgerDigests(t *testing.T) {
	e := newEnv(t)
	e.pushImage("staging/app:1", 100, 1)
	e.pushImage("staging/app:2", 100, 1)
	first, _ := e.promote(Request{Source: "staging/app:1", To: "qa", Tag: "live"})
	second, _ := e.promote(Request{Source: "staging/app:2", To: "qa", Tag: "live"})
	e.reg.Wait()

	store := &countingGets{Store: e.store}
	l := NewLedgerDigests(store)
	got, err := l.Digests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []digest.Digest{first.Digest, second.Digest}
	slices.Sort(want)
	ds := slices.Clone(got["qa/app"])
	slices.Sort(ds)
	if len(got) != 1 || !slices.Equal(ds, want) {
		t.Fatalf("Digests = %v, want qa/app: %v", got, want)
	}
	reads := store.gets.Load()
	if reads != 2 {
		t.Errorf("%d reads for 2 records", reads)
	}
	if _, err := l.Digests(context.Background()); err != nil || store.gets.Load() != reads {
		t.Errorf("second call: %v, %d more reads", err, store.gets.Load()-reads)
	}
}
