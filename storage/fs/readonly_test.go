package fs_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

// TestReadOnlyReadsAndChangesNothing: a folder of another program is read
// like any store, and nothing in it is created, changed or deleted.
func TestReadOnlyReadsAndChangesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "b", "c"), []byte("stock"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := fs.NewReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	rc, info, err := s.Get(ctx, "a/b/c", storage.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "stock" || info.Size != 5 {
		t.Fatalf("get: %q %+v", b, info)
	}
	page, err := s.List(ctx, storage.ListOptions{Prefix: "a/"})
	if err != nil || len(page.Objects) != 1 || page.Objects[0].Key != "a/b/c" {
		t.Fatalf("list: %+v %v", page, err)
	}

	writes := map[string]func() error{
		"put": func() error { _, err := s.Put(ctx, "a/b/c", strings.NewReader("x"), 1); return err },
		"put-if-absent": func() error {
			_, err := s.PutIfAbsent(ctx, "new", strings.NewReader("x"), 1)
			return err
		},
		"put-if-match": func() error {
			_, err := s.PutIfMatch(ctx, "a/b/c", strings.NewReader("x"), 1, info.ETag)
			return err
		},
		"delete": func() error { return s.Delete(ctx, "a/b/c") },
	}
	for op, write := range writes {
		if err := write(); !errors.Is(err, storage.ErrReadOnly) || !strings.Contains(err.Error(), op) {
			t.Errorf("%s: want ErrReadOnly naming the operation, got %v", op, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || entries[0].Name() != "a" {
		t.Fatalf("the folder gained entries: %v %v", entries, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a", "b", "c")); err != nil || string(b) != "stock" {
		t.Fatalf("the file changed: %q %v", b, err)
	}
}

func TestReadOnlyNeedsAnExistingDirectory(t *testing.T) {
	dir := t.TempDir()
	if _, err := fs.NewReadOnly(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing root: %v", err)
	}
	f := filepath.Join(dir, "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.NewReadOnly(f); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("a file as root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("NewReadOnly created its root")
	}
}
