package registry

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Readers arriving while a fetch is in flight share one next fetch.
func TestReadGroupCoalescesWaitingReaders(t *testing.T) {
	var fetches atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	g := newReadGroup(time.Minute, func(ctx context.Context, key string) (int32, error) {
		n := fetches.Add(1)
		started <- struct{}{}
		<-release
		return n, nil
	})
	ctx := context.Background()

	first := make(chan int32)
	go func() { v, _ := g.do(ctx, "k"); first <- v }()
	within(t, started) // the first fetch is in flight

	const joiners = 50
	var wg sync.WaitGroup
	got := make([]int32, joiners)
	for i := range joiners {
		wg.Add(1)
		go func() { defer wg.Done(); got[i], _ = g.do(ctx, "k") }()
	}
	// Let the joiners reach the group before the first fetch ends.
	waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.pending["k"] != nil })
	time.Sleep(20 * time.Millisecond)
	release <- struct{}{}
	if v := <-first; v != 1 {
		t.Fatalf("first reader got fetch %d, want 1", v)
	}
	within(t, started) // the shared fetch
	release <- struct{}{}
	within(t, waitDone(&wg))
	for i, v := range got {
		if v != 2 {
			t.Fatalf("joiner %d got fetch %d, want the shared fetch 2", i, v)
		}
	}
	if n := fetches.Load(); n != 2 {
		t.Fatalf("%d fetches for %d readers, want 2", n, joiners+1)
	}
	g.mu.Lock()
	left := len(g.pending)
	g.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d keys left in the group", left)
	}
}

// No reader gets a value older than the one stored when it arrived: a
// fetch that began before a reader arrived never answers it. The fetch
// reads the value when it starts and returns it after a pause, so sharing
// an in-flight fetch would hand out values older than the reader.
func TestReadGroupNeverAnswersFromAnEarlierRead(t *testing.T) {
	var stored atomic.Int64
	g := newReadGroup(time.Minute, func(ctx context.Context, key string) (int64, error) {
		v := stored.Load()
		time.Sleep(200 * time.Microsecond)
		return v, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			stored.Add(1)
			time.Sleep(50 * time.Microsecond)
		}
	}()
	var reads, stale atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300 && ctx.Err() == nil; i++ {
				before := stored.Load()
				v, err := g.do(ctx, "tag")
				if err != nil {
					continue
				}
				reads.Add(1)
				if v < before {
					stale.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if reads.Load() < 100 {
		t.Fatalf("only %d reads", reads.Load())
	}
	if s := stale.Load(); s != 0 {
		t.Fatalf("%d of %d reads returned a value older than the reader", s, reads.Load())
	}
}

// An error is shared like a value; a joiner that gives up returns its own
// context's error; other keys are independent.
func TestReadGroupErrorsAndCancel(t *testing.T) {
	boom := errors.New("boom")
	release := make(chan struct{})
	started := make(chan string, 4)
	g := newReadGroup(time.Minute, func(ctx context.Context, key string) (string, error) {
		started <- key
		<-release
		return "", boom
	})
	bg := context.Background()
	go func() { _, _ = g.do(bg, "k") }()
	<-started

	gaveUp, cancel := context.WithCancel(bg)
	quit := make(chan error)
	go func() { _, err := g.do(gaveUp, "k"); quit <- err }()
	shared := make(chan error)
	go func() { _, err := g.do(bg, "k"); shared <- err }()
	waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.pending["k"] != nil })
	cancel()
	if err := <-quit; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled joiner: %v", err)
	}

	// Another key does not wait behind k.
	go func() { _, _ = g.do(bg, "other") }()
	if k := <-started; k != "other" {
		t.Fatalf("started %q, want other", k)
	}
	close(release)
	if err := <-shared; !errors.Is(err, boom) {
		t.Fatalf("joiner: %v, want the shared fetch's error", err)
	}
}

// within fails the test if nothing arrives on c soon (instead of hanging).
func within[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing arrived in 10s")
		panic("unreachable")
	}
}

func waitDone(wg *sync.WaitGroup) <-chan struct{} {
	c := make(chan struct{})
	go func() { wg.Wait(); close(c) }()
	return c
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}
