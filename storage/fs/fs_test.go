package fs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
	"github.com/slipway/slipway/storage/storagetest"
)

func open(t *testing.T, root string) *fs.Store {
	t.Helper()
	s, err := fs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSuite(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return open(t, t.TempDir()) })
}

// Two processes sharing the folder: flock must serialise PutIfMatch across
// them, and link(2) PutIfAbsent.
func TestTwoProcess(t *testing.T) {
	storagetest.RunTwoProcess(t,
		func(t *testing.T) string { return t.TempDir() },
		func(t *testing.T, root string) storage.Store { return open(t, root) })
}

func put(t *testing.T, s storage.Store, key, data string) storage.Info {
	t.Helper()
	info, err := s.Put(t.Context(), key, strings.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func TestNewCreatesRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "x", "y")
	s := open(t, root)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	put(t, s, "k", "v")
	if b, err := os.ReadFile(filepath.Join(root, "k")); err != nil || string(b) != "v" {
		t.Fatalf("root/k = %q, %v; want the object at its key's path", b, err)
	}
}

func TestPingUnavailable(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Ping with root gone = %v, want ErrUnavailable", err)
	}
}

func TestDeletePrunesEmptyDirs(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	put(t, s, "a/b/c/d", "1")
	put(t, s, "a/x", "2")
	if err := s.Delete(t.Context(), "a/b/c/d"); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(root, "a/b")) || !exists(filepath.Join(root, "a/x")) {
		t.Fatal("Delete left a/b behind or removed a/x")
	}
	if err := s.Delete(t.Context(), "a/x"); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(root, "a")) || !exists(root) {
		t.Fatal("Delete left a behind or removed the root")
	}
}

// The internal directory, stray files with non-key names, symlinks and
// empty directories never show up in listings.
func TestListHidesNonObjects(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	ctx := t.Context()
	// Bookkeeping: a write in progress, and an upload an older version left.
	for _, p := range []string{".slipway#/tmp/put-0123", ".slipway#/multipart/0123/1"} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte("part"), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"stray#", "dir/editor~", "empty/deeper"} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"stray#", "dir/editor~"} {
		if err := os.WriteFile(filepath.Join(root, p), nil, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "empty/deeper"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	put(t, s, "real", "x")
	for _, opts := range []storage.ListOptions{{}, {Delimiter: "/"}} {
		page, err := s.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Objects) != 1 || page.Objects[0].Key != "real" || len(page.CommonPrefixes) != 0 {
			t.Fatalf("List(%+v) = %+v, want only real", opts, page)
		}
	}
}

func TestDirectoryClash(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := t.Context()
	put(t, s, "a/b/c", "x")
	for _, k := range []string{"a/b", "a/b/c/d"} {
		if _, err := s.Put(ctx, k, strings.NewReader("y"), 1); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Put(%q) over a clash = %v, want ErrInvalidKey", k, err)
		}
	}
	if _, err := s.PutIfAbsent(ctx, "a/b", strings.NewReader("y"), 1); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Errorf("PutIfAbsent(a/b) = %v, want ErrPreconditionFailed", err)
	}
	if err := s.Delete(ctx, "a/b"); err != nil {
		t.Errorf("Delete(a/b) = %v, want nil", err)
	}
	if _, err := s.Stat(ctx, "a/b/c"); err != nil {
		t.Errorf("a/b/c after clashes: %v", err)
	}
}

// Unlike S3 (content hash), the filesystem ETag changes even when the same
// bytes are written again.
func TestETagChangesOnSameContent(t *testing.T) {
	s := open(t, t.TempDir())
	seen := map[string]bool{}
	for range 20 {
		e := put(t, s, "same", "content").ETag
		if seen[e] {
			t.Fatalf("ETag %q repeated", e)
		}
		seen[e] = true
	}
}

// Failed and cancelled writes leave no temp files behind.
func TestFailedWritesLeaveNoTemp(t *testing.T) {
	root := t.TempDir()
	s := open(t, root)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Put(ctx, "k", strings.NewReader("data"), 4); err == nil {
		t.Fatal("Put with cancelled context succeeded")
	}
	if _, err := s.Put(t.Context(), "k", strings.NewReader("da"), 4); err == nil {
		t.Fatal("short Put succeeded")
	}
	put(t, s, "k", "v")
	if _, err := s.PutIfAbsent(t.Context(), "k", strings.NewReader("w"), 1); err == nil {
		t.Fatal("PutIfAbsent over k succeeded")
	}
	tmp, err := os.ReadDir(filepath.Join(root, ".slipway#", "tmp"))
	if err != nil || len(tmp) != 0 {
		t.Fatalf("tmp holds %v (%v), want nothing", tmp, err)
	}
}

// Opening a store drops what crashed writers left in its bookkeeping long
// ago (temp files, uploads of versions that had multipart uploads), and
// nothing recent: another process sharing the root may be writing it.
func TestOpenSweepsStaleLeftovers(t *testing.T) {
	root := t.TempDir()
	open(t, root)
	old := time.Now().Add(-48 * time.Hour)
	paths := map[string]bool{ // path: stale
		".slipway#/tmp/put-old":   true,
		".slipway#/tmp/put-new":   false,
		".slipway#/multipart/old": true,
		".slipway#/multipart/new": false,
	}
	for p, stale := range paths {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o666); err != nil {
			t.Fatal(err)
		}
		if stale {
			if err := os.Chtimes(full, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	open(t, root) // a new process
	for p, stale := range paths {
		_, err := os.Stat(filepath.Join(root, p))
		if gone := os.IsNotExist(err); gone != stale {
			t.Errorf("%s: gone = %v (%v), want %v", p, gone, err, stale)
		}
	}
}

// A Put must recreate a parent directory that a Delete of its last
// sibling prunes concurrently.
func TestPutRacesDirPruning(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			key := fmt.Sprintf("p/q/r/%d", g)
			for range 50 {
				if _, err := s.Put(ctx, key, strings.NewReader("x"), 1); err != nil {
					errs <- err
					return
				}
				if err := s.Delete(ctx, key); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
