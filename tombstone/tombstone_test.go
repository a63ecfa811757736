package tombstone_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
	"github.com/slipway/slipway/storage/pause"
	"github.com/slipway/slipway/storage/s3/s3test"
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

// onStores runs a test of a race on the filesystem store and on MinIO.
func onStores(t *testing.T, run func(t *testing.T, s storage.Store)) {
	t.Run("fs", func(t *testing.T) { run(t, fsStore(t)) })
	t.Run("minio", func(t *testing.T) { run(t, s3test.Store(t)) })
}

// mark marks k for run r1 and returns the tombstone's ETag.
func mark(t *testing.T, s storage.Store, k string) string {
	t.Helper()
	etag, err := tombstone.Mark(context.Background(), s, k, "r1")
	if err != nil {
		t.Fatal(err)
	}
	return etag
}

// pausedWithObject wraps s in a Pauser and writes object k through it.
func pausedWithObject(t *testing.T, s storage.Store, k string) (*pause.Pauser, storage.Store) {
	t.Helper()
	p := pause.New(s)
	putObject(t, p.Store(), k)
	return p, p.Store()
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
	etag, err := tombstone.Mark(ctx, s, k, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tombstone.Mark(ctx, s, k, "run2"); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("second Mark: %v, want ErrPreconditionFailed", err)
	}
	tb, etag2, err := tombstone.Read(ctx, s, k)
	if err != nil || tb.State != tombstone.Marked || tb.Run != "r1" || etag2 != etag || tb.At.IsZero() {
		t.Fatalf("Read after Mark: %+v %q %v (mark etag %q)", tb, etag2, err, etag)
	}
	if err := tombstone.Commit(ctx, s, k, "r1", etag); err != nil {
		t.Fatal(err)
	}
	if got := state(t, s, k); got != tombstone.Deleting {
		t.Fatalf("state after Commit %q", got)
	}
	// A second commit with the old ETag loses: the version changed.
	if err := tombstone.Commit(ctx, s, k, "r1", etag); !errors.Is(err, storage.ErrPreconditionFailed) {
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
	if err := tombstone.Commit(ctx, s, k, "r1", etag); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("Commit of a removed tombstone: %v", err)
	}
}

func TestRescueBeatsCommit(t *testing.T) {
	onStores(t, func(t *testing.T, s storage.Store) {
		ctx := context.Background()
		const k = "manifests/sha256/aa/aabb"
		etag := mark(t, s, k)
		if err := tombstone.Rescue(ctx, s, k, "r1", etag); err != nil {
			t.Fatal(err)
		}
		if got := state(t, s, k); got != tombstone.Rescued {
			t.Fatalf("state after Rescue %q", got)
		}
		if err := tombstone.Commit(ctx, s, k, "r1", etag); !errors.Is(err, storage.ErrPreconditionFailed) {
			t.Fatalf("Commit after Rescue: %v, want ErrPreconditionFailed", err)
		}
		if got := state(t, s, k); got != tombstone.Rescued {
			t.Fatalf("state after the lost Commit %q", got)
		}
	})
}

func TestCommitBeatsRescue(t *testing.T) {
	onStores(t, func(t *testing.T, s storage.Store) {
		ctx := context.Background()
		const k = "manifests/sha256/aa/aabb"
		etag := mark(t, s, k)
		if err := tombstone.Commit(ctx, s, k, "r1", etag); err != nil {
			t.Fatal(err)
		}
		if err := tombstone.Rescue(ctx, s, k, "r1", etag); !errors.Is(err, storage.ErrPreconditionFailed) {
			t.Fatalf("Rescue after Commit: %v, want ErrPreconditionFailed", err)
		}
	})
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
	etag, err := tombstone.Mark(ctx, s, k, "r1")
	if err != nil {
		t.Fatal(err)
	}
	// Marked: nobody may delete.
	if err := tombstone.Finish(ctx, s, k, del); !errors.Is(err, storage.ErrPreconditionFailed) || deleted != 0 {
		t.Fatalf("Finish of a marked object: %v, %d deletions", err, deleted)
	}
	if err := tombstone.Commit(ctx, s, k, "r1", etag); err != nil {
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

// Two finishers of one deletion: the claim lets only one delete.
func TestFinishClaim(t *testing.T) {
	onStores(t, func(t *testing.T, fsys storage.Store) {
		ctx := context.Background()
		const k = "blobs/sha256/aa/aabb"
		p, s := pausedWithObject(t, fsys, k)
		etag := mark(t, s, k)
		if err := tombstone.Commit(ctx, s, k, "r1", etag); err != nil {
			t.Fatal(err)
		}
		// Finisher 1 is held at its claim; finisher 2 claims and finishes.
		claim := p.Before(pause.PutIfMatch, tombstone.Key(k))
		first := make(chan error, 1)
		deletions := make(chan string, 2)
		del := func(ctx context.Context, key string) error { deletions <- key; return s.Delete(ctx, key) }
		go func() { first <- tombstone.Finish(ctx, s, k, del) }()
		<-claim.Reached()
		if err := tombstone.Finish(ctx, s, k, del); err != nil {
			t.Fatal(err)
		}
		// The object is written again (a writer that waited), then finisher 1
		// goes on: its claim loses, it deletes nothing.
		putObject(t, s, k)
		claim.Release()
		if err := <-first; !errors.Is(err, storage.ErrPreconditionFailed) {
			t.Fatalf("the late finisher: %v, want its claim lost", err)
		}
		if len(deletions) != 1 {
			t.Fatalf("%d deletions, want 1", len(deletions))
		}
		if _, err := s.Stat(ctx, k); err != nil {
			t.Fatalf("the object written again after the deletion: %v", err)
		}
	})
}

func TestAwaitGone(t *testing.T) {
	ctx, s := context.Background(), fsStore(t)
	const k = "a/b"
	if gone, err := tombstone.AwaitGone(ctx, s, k, time.Second, time.Millisecond); !gone || err != nil {
		t.Fatalf("no tombstone: %v %v", gone, err)
	}
	etag, _ := tombstone.Mark(ctx, s, k, "r1")
	if gone, err := tombstone.AwaitGone(ctx, s, k, time.Second, time.Millisecond); !gone || err != nil {
		t.Fatalf("a marked tombstone is no deletion: %v %v", gone, err)
	}
	if err := tombstone.Commit(ctx, s, k, "r1", etag); err != nil {
		t.Fatal(err)
	}
	if gone, err := tombstone.AwaitGone(ctx, s, k, 30*time.Millisecond, 5*time.Millisecond); gone || err != nil {
		t.Fatalf("a deletion that does not finish: %v %v", gone, err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		_ = tombstone.Remove(ctx, s, k)
	}()
	if gone, err := tombstone.AwaitGone(ctx, s, k, 5*time.Second, 5*time.Millisecond); !gone || err != nil {
		t.Fatalf("a deletion that finishes: %v %v", gone, err)
	}
}
