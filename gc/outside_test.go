package gc

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/registry"
)

// An imported descriptor naming data outside Slipway's keys (here under
// docker/ in the same key space, as with both roots empty) is collected
// like any other once nothing needs it (here at once: no manifest
// references the blob, and no grace), and the stock data it names
// is never deleted nor counted: the collector sees no data key in it
// (docs/architecture.md §7.3).
func TestOutsideDescriptorFreedWithoutItsData(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const data = "a stock registry's layer"
	d := digest.FromString(data)
	stock := "docker/registry/v2/blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data"
	if _, err := e.store.Put(ctx, stock, strings.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Metadata().ImportOutsideBlob(ctx, "imported", d, stock, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if keys := e.blobKeys("imported", d); len(keys) != 2 {
		t.Fatalf("the descriptor names data keys: %q", keys)
	}

	desc, err := e.store.Stat(ctx, registry.BlobKey(d))
	if err != nil {
		t.Fatal(err)
	}
	rep := e.run(Options{})
	e.wantGone(registry.BlobKey(d), registry.BlobLinkKey("imported", d))
	e.wantPresent(stock)
	if !slices.Contains(rep.Deleted, registry.BlobKey(d)) || slices.Contains(rep.Deleted, stock) {
		t.Errorf("report lists %q: want the descriptor, not %s", rep.Deleted, stock)
	}
	// The descriptor (and its empty link) are freed; no data bytes.
	if rep.Freed.Objects != 2 || rep.Freed.Bytes != desc.Size {
		t.Errorf("freed %+v, want 2 objects of %d bytes (the descriptor's): the outside data is not Slipway's", rep.Freed, desc.Size)
	}
	e.verify()
}
