package importer_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipway/slipway/importer"
	"github.com/slipway/slipway/importer/stocklayout"
	"github.com/slipway/slipway/importer/stocklayout/stocktest"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

// sourceAndSlipway returns a stock layout holding one blob, the stock
// folder opened read-only, and a Slipway store on the same filesystem.
func sourceAndSlipway(t *testing.T) (*stocktest.Layout, storage.Store, *fs.Store, stocklayout.Blob) {
	t.Helper()
	st := stocktest.New(t)
	d := st.Blob("layer bytes")
	src, err := fs.NewReadOnly(st.Dir)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := fs.New(filepath.Join(t.TempDir(), "slipway"))
	if err != nil {
		t.Fatal(err)
	}
	return st, src, dst, stocklayout.Blob{Digest: d, Key: stocklayout.BlobKey(d), Size: 11}
}

func read(t *testing.T, s storage.Store, key string) string {
	t.Helper()
	rc, _, err := s.Get(context.Background(), key, storage.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func TestCopyDataLinksOnOneFilesystem(t *testing.T) {
	st, src, dst, b := sourceAndSlipway(t)
	how, err := importer.CopyData(context.Background(), dst, "data/ab/new", src, b)
	if err != nil || how != importer.CopiedByStore {
		t.Fatalf("copy: %q %v, want %q", how, err, importer.CopiedByStore)
	}
	if got := read(t, dst, "data/ab/new"); got != "layer bytes" {
		t.Fatalf("copied %q", got)
	}
	a, _ := os.Stat(filepath.Join(st.Dir, filepath.FromSlash(b.Key)))
	loc, _ := dst.Locate(context.Background(), "data/ab/new")
	c, _ := os.Stat(loc.Path)
	if !os.SameFile(a, c) {
		t.Fatal("not a hard link")
	}
}

// noLocator hides the source's Locator: the copy must stream.
type noLocator struct{ storage.Store }

func TestCopyDataStreamsAndChecksTheDigest(t *testing.T) {
	ctx := context.Background()
	st, src, dst, b := sourceAndSlipway(t)
	how, err := importer.CopyData(ctx, dst, "data/ab/new", noLocator{src}, b)
	if err != nil || how != importer.Streamed {
		t.Fatalf("copy: %q %v, want %q", how, err, importer.Streamed)
	}
	if got := read(t, dst, "data/ab/new"); got != "layer bytes" {
		t.Fatalf("copied %q", got)
	}

	st.Put(b.Key, []byte("LAYER BYTES")) // same size, other bytes
	_, err = importer.CopyData(ctx, dst, "data/cd/bad", noLocator{src}, b)
	var ce *stocklayout.CorruptError
	if !errors.As(err, &ce) || ce.Key != b.Key {
		t.Fatalf("corrupt source: want a CorruptError naming %s, got %v", b.Key, err)
	}
	if _, err := dst.Stat(ctx, "data/cd/bad"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("bytes that failed the digest must not stay: %v", err)
	}
	short := b
	short.Size = 12
	st.Put(b.Key, []byte("layer bytes"))
	if _, err := importer.CopyData(ctx, dst, "data/ef/short", noLocator{src}, short); err == nil {
		t.Fatal("a source shorter than its size must fail")
	}
	if _, err := dst.Stat(ctx, "data/ef/short"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a short copy wrote %v", err)
	}
}

func TestVerifyData(t *testing.T) {
	ctx := context.Background()
	st, src, _, b := sourceAndSlipway(t)
	buf := make([]byte, 4) // smaller than the blob: read in pieces
	if err := importer.VerifyData(ctx, src, b, buf); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"other bytes": "LAYER BYTES", "longer": "layer bytes!", "shorter": "layer"} {
		st.Put(b.Key, []byte(content))
		err := importer.VerifyData(ctx, src, b, buf)
		var ce *stocklayout.CorruptError
		if !errors.As(err, &ce) || ce.Key != b.Key {
			t.Errorf("%s: want a CorruptError naming %s, got %v", name, b.Key, err)
		}
	}
	st.Put(b.Key, []byte("layer bytes"))
	if err := st.Store.Delete(ctx, b.Key); err != nil {
		t.Fatal(err)
	}
	if err := importer.VerifyData(ctx, src, b, buf); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing data: %v", err)
	}
}
