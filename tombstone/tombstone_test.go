package tombstone_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
	"github.com/slipway/slipway/tombstone"
)

func fsStore(t *testing.T) storage.Store {
	t.Helper()
	s, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func putObject(t *testing.T, s storage.Store, key string) {
	t.Helper()
	if _, err := s.Put(context.Background(), key, bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatal(err)
	}
}

func state(t *testing.T, s storage.Store, key string) tombstone.State {
	t.Helper()
	tb, _, err := tombstone.Read(context.Background(), s, key)
	if errors.Is(err, storage.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return tb.State
}

func TestMarkCommitRemove(t *testing.T) {
	ctx, s := context.Background(), fsStore(t)
	const k = "blobs/sha256/aa/aabb"
	if _, _, err := tombstone.Read(ctx, s, k); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Read of no tombstone: %v, want ErrNotFound", err)
	}
	etag, err := tombstone.Mark(ctx, s, k, "run1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tombstone.Mark(ctx, s, k, "run2"); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("second Mark: %v, want ErrPreconditionFailed", err)
	}
	tb, etag2, err := tombstone.Read(ctx, s, k)
	if err != nil || tb.State != tombstone.Marked || tb.Run != "run1" || etag2 != etag || tb.At.IsZero() {
		t.Fatalf("Read after Mark: %+v %q %v (mark etag %q)", tb, etag2, err, etag)
	}
	if err := tombstone.Commit(ctx, s, k, "run1", etag); err != nil {
		t.Fatal(err)
	}
	if got := state(t, s, k); got != tombstone.Deleting {
		t.Fatalf("state after Commit %q", got)
	}
	// A second commit with the old ETag loses: the version changed.
	if err := tombstone.Commit(ctx, s, k, "run1", etag); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("Commit with a stale etag: %v", err)
	}
	if err := tombstone.Remove(ctx, s, k); err != nil {
		t.Fatal(err)
	}
	if err := tombstone.Remove(ctx, s, k); err != nil {
		t.Fatalf("Remove of a missing tombstone: %v", err)
	}
	if got := state(t, s, k); got != "" {
		t.Fatalf("state after Remove %q", got)
	}
	if err := tombstone.Commit(ctx, s, k, "run1", etag); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("Commit of a removed tombstone: %v", err)
	}
}

func TestRescueBeatsCommit(t *testing.T) {
	ctx, s := context.Background(), fsStore(t)
	const k = "manifests/sha256/aa/aabb"
	etag, err := tombstone.Mark(ctx, s, k, "run1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tombstone.Rescue(ctx, s, k, "run1", etag); err != nil {
		t.Fatal(err)
	}
	if got := state(t, s, k); got != tombstone.Rescued {
		t.Fatalf("state after Rescue %q", got)
	}
	if err := tombstone.Commit(ctx, s, k, "run1", etag); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("Commit after Rescue: %v, want ErrPreconditionFailed", err)
	}
	if got := state(t, s, k); got != tombstone.Rescued {
		t.Fatalf("state after the lost Commit %q", got)
	}
}

func TestCommitBeatsRescue(t *testing.T) {
	ctx, s := context.Background(), fsStore(t)
	const k = "manifests/sha256/aa/aabb"
	etag, err := tombstone.Mark(ctx, s, k, "run1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tombstone.Commit(ctx, s, k, "run1", etag); err != nil {
		t.Fatal(err)
	}
	if err := tombstone.Rescue(ctx, s, k, "run1", etag); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("Rescue after Commit: %v, want ErrPreconditionFailed", err)
	}
}

func TestFinish(t *testing.T) {
	ctx, s := context.Background(), fsStore(t)
	const k = "blobs/sha256/aa/aabb"
	putObject(t, s, k)
	deleted := 0
	del := func(ctx context.Context, key string) error {
		deleted++
		return s.Delete(ctx, key)
	}
	// No tombstone: nothing to do.
	if err := tombstone.Finish(ctx, s, k, del); err != nil || deleted != 0 {
		t.Fatalf("Finish without tombstone: %v, %d deletions", err, deleted)
	}
	etag, err := tombstone.Mark(ctx, s, k, "run1")
	if err != nil {
		t.Fatal(err)
	}
	// Marked: nobody may delete.
	if err := tombstone.Finish(ctx, s, k, del); !errors.Is(err, storage.ErrPreconditionFailed) || deleted != 0 {
		t.Fatalf("Finish of a marked object: %v, %d deletions", err, deleted)
	}
	if err := tombstone.Commit(ctx, s, k, "run1", etag); err != nil {
		t.Fatal(err)
	}
	if err := tombstone.Finish(ctx, s, k, del); err != nil || deleted != 1 {
		t.Fatalf("Finish of a deleting object: %v, %d deletions", err, deleted)
	}
	if _, err := s.Stat(ctx, k); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("object after Finish: %v", err)
	}
	if got := state(t, s, k); got != "" {
		t.Fatalf("tombstone after Finish: %q", got)
	}
}

func TestSweeps(t *testing.T) {
	ctx, s := context.Background(), fsStore(t)
	if sw, err := tombstone.Sweeps(ctx, s); err != nil || len(sw) != 0 {
		t.Fatalf("Sweeps on an empty store: %v %v", sw, err)
	}
	if err := tombstone.Heartbeat(ctx, s, "r1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Heartbeat without entry: %v, want ErrNotFound", err)
	}
	for _, r := range []string{"r2", "r1"} {
		if err := tombstone.BeginSweep(ctx, s, r); err != nil {
			t.Fatal(err)
		}
	}
	sw, err := tombstone.Sweeps(ctx, s)
	if err != nil || len(sw) != 2 || sw[0].Run != "r1" || sw[1].Run != "r2" || sw[0].Started.IsZero() {
		t.Fatalf("Sweeps: %+v %v", sw, err)
	}
	before := sw[0].Heartbeat
	time.Sleep(10 * time.Millisecond)
	if err := tombstone.Heartbeat(ctx, s, "r1"); err != nil {
		t.Fatal(err)
	}
	sw, _ = tombstone.Sweeps(ctx, s)
	if !sw[0].Heartbeat.After(before) || !sw[0].Started.Equal(sw[0].Started) {
		t.Fatalf("Heartbeat did not move: %v -> %v", before, sw[0].Heartbeat)
	}
	if err := tombstone.EndSweep(ctx, s, "r1"); err != nil {
		t.Fatal(err)
	}
	if err := tombstone.Heartbeat(ctx, s, "r1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Heartbeat after EndSweep: %v, want ErrNotFound", err)
	}
	sw, _ = tombstone.Sweeps(ctx, s)
	if len(sw) != 1 || sw[0].Run != "r2" {
		t.Fatalf("Sweeps after EndSweep: %+v", sw)
	}
}
