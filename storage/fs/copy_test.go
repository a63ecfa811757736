package fs_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

// TestCopyFromHardLinks: a copy from another folder on the same
// filesystem is a hard link with a fresh mtime; the source keeps its
// content and survives the copy's deletion.
func TestCopyFromHardLinks(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	stock := filepath.Join(base, "stock")
	if err := os.MkdirAll(filepath.Join(stock, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	srcFile := filepath.Join(stock, "blobs", "data")
	if err := os.WriteFile(srcFile, []byte("layer bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-30 * 24 * time.Hour)
	if err := os.Chtimes(srcFile, old, old); err != nil {
		t.Fatal(err)
	}
	src, err := fs.NewReadOnly(stock)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := src.(storage.Locator).Locate(ctx, "blobs/data")
	if err != nil {
		t.Fatal(err)
	}
	dst := open(t, filepath.Join(base, "slipway"))
	before := time.Now()
	info, err := dst.CopyFrom(ctx, "data/ab/abcdef", loc, 11)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != 11 || info.ModTime.Before(before.Add(-time.Second)) {
		t.Fatalf("info %+v: want 11 bytes and a fresh mtime", info)
	}
	st, err := dst.Stat(ctx, "data/ab/abcdef")
	if err != nil || st.ETag != info.ETag || !st.ModTime.Equal(info.ModTime) {
		t.Fatalf("stat %+v %v, copy returned %+v", st, err, info)
	}
	a, _ := os.Stat(srcFile)
	b, _ := os.Stat(filepath.Join(base, "slipway", "data", "ab", "abcdef"))
	if !os.SameFile(a, b) {
		t.Fatal("the copy is not a hard link of the source")
	}
	rc, _, err := dst.Get(ctx, "data/ab/abcdef", storage.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "layer bytes" {
		t.Fatalf("copy reads %q", got)
	}
	if err := dst.Delete(ctx, "data/ab/abcdef"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(srcFile); err != nil || string(b) != "layer bytes" {
		t.Fatalf("the source after the copy's deletion: %q %v", b, err)
	}
	tmp, _ := os.ReadDir(filepath.Join(base, "slipway", ".slipway#", "tmp"))
	if len(tmp) != 0 {
		t.Fatalf("temporary links left: %v", tmp)
	}
}

func TestCopyFromRefusesWhatItCannotLink(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	dst := open(t, filepath.Join(base, "slipway"))
	f := filepath.Join(base, "f")
	if err := os.WriteFile(f, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		loc  storage.Location
		size int64
		want error
	}{
		"an S3 location": {storage.Location{Bucket: "b", Object: "o"}, 5, errors.ErrUnsupported},
		"another size":   {storage.Location{Path: f}, 6, errors.ErrUnsupported},
		"a directory":    {storage.Location{Path: base}, 5, errors.ErrUnsupported},
		"a missing file": {storage.Location{Path: filepath.Join(base, "none")}, 5, storage.ErrNotFound},
	}
	for name, c := range cases {
		if _, err := dst.CopyFrom(ctx, "data/00/x", c.loc, c.size); !errors.Is(err, c.want) {
			t.Errorf("%s: want %v, got %v", name, c.want, err)
		}
		if _, err := dst.Stat(ctx, "data/00/x"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s: a refused copy wrote the object (%v)", name, err)
		}
	}
	if tmp, _ := os.ReadDir(filepath.Join(base, "slipway", ".slipway#", "tmp")); len(tmp) != 0 {
		t.Fatalf("refused copies left temporary links: %v", tmp)
	}
	ro, err := fs.NewReadOnly(base)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ro.(storage.Copier); ok {
		t.Fatal("a read-only store must not offer CopyFrom")
	}
}
