package pause_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
	"github.com/slipway/slipway/storage/pause"
)

func TestBeforeHoldsOneOperation(t *testing.T) {
	ctx := context.Background()
	inner, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := pause.New(inner)
	s := p.Store()
	pt := p.Before(pause.PutIfAbsent, "a/b")
	done := make(chan error, 1)
	go func() {
		_, err := s.PutIfAbsent(ctx, "a/b", bytes.NewReader([]byte("1")), 1)
		done <- err
	}()
	<-pt.Reached()
	// Held: not written yet; other keys and operations pass.
	if _, err := inner.Stat(ctx, "a/b"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("held write reached the store: %v", err)
	}
	if _, err := s.Put(ctx, "a/c", bytes.NewReader(nil), 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("held operation returned %v before Release", err)
	case <-time.After(20 * time.Millisecond):
	}
	pt.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// One-shot: the next one passes.
	if _, err := s.PutIfAbsent(ctx, "a/b", bytes.NewReader([]byte("1")), 1); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("second PutIfAbsent: %v", err)
	}
}

func TestHeldOperationEndsWithItsContext(t *testing.T) {
	inner, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := pause.New(inner)
	p.Before(pause.Delete, "x")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := p.Store().Delete(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Delete held past its context: %v", err)
	}
}

func TestReleaseAll(t *testing.T) {
	inner, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := pause.New(inner)
	pt := p.Before(pause.Stat, "x")
	done := make(chan error, 1)
	go func() { _, err := p.Store().Stat(context.Background(), "x"); done <- err }()
	<-pt.Reached()
	p.ReleaseAll()
	if err := <-done; !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("released Stat: %v, want ErrNotFound", err)
	}
	p.ReleaseAll() // again: nothing to do
}
