package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/slipway/slipway/storage"
)

// Readers racing a replace must see one complete version, never a mix or
// a truncated object.
func testPutAtomic(t *testing.T, s storage.Store) {
	const size, versions, readers = 1 << 20, 4, 8
	var vs [versions][]byte
	for i := range vs {
		vs[i] = bytes.Repeat([]byte{'A' + byte(i)}, size)
	}
	ctx := t.Context()
	if _, err := s.Put(ctx, "atomic", bytes.NewReader(vs[0]), size); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, readers+1)
	for range readers {
		wg.Go(func() {
			for !stop.Load() {
				b, info, err := get(ctx, s, "atomic", storage.GetOptions{})
				if err != nil {
					errs <- fmt.Errorf("get during replace: %w", err)
					return
				}
				reads.Add(1)
				if len(b) != size || info.Size != size || b[0] < 'A' || b[0] >= 'A'+versions || !bytes.Equal(b, vs[b[0]-'A']) {
					errs <- fmt.Errorf("get during replace: got %d bytes (Info.Size %d) that are not one whole version", len(b), info.Size)
					return
				}
			}
		})
	}
	for i := 1; i <= 24 || (reads.Load() < readers && len(errs) == 0); i++ {
		v := vs[i%versions]
		if _, err := s.Put(ctx, "atomic", bytes.NewReader(v), size); err != nil {
			errs <- fmt.Errorf("put during reads: %w", err)
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func testPutIfAbsent(t *testing.T, s storage.Store) {
	ctx := t.Context()
	info, err := s.PutIfAbsent(ctx, "once/k", strings.NewReader("first"), 5)
	if err != nil || info.Size != 5 || info.ETag == "" {
		t.Fatalf("PutIfAbsent = %+v, %v; want success", info, err)
	}
	_, err = s.PutIfAbsent(ctx, "once/k", strings.NewReader("second"), 6)
	wantErr(t, "second PutIfAbsent", err, storage.ErrPreconditionFailed)
	got, ginfo := mustRead(t, s, "once/k")
	if got != "first" || ginfo.ETag != info.ETag {
		t.Fatalf("after losing PutIfAbsent: %q (ETag %q), want first (ETag %q)", got, ginfo.ETag, info.ETag)
	}
	if err := s.Delete(ctx, "once/k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutIfAbsent(ctx, "once/k", strings.NewReader("third"), 5); err != nil {
		t.Fatalf("PutIfAbsent after Delete: %v", err)
	}
	wantContent(t, s, "once/k", "third")
}

// Many writers race PutIfAbsent on one key: exactly one wins each round,
// and the object holds the winner's content.
func testPutIfAbsentRace(t *testing.T, s storage.Store) {
	const racers, rounds = 16, 20
	ctx := t.Context()
	for round := range rounds {
		var wg sync.WaitGroup
		start := make(chan struct{})
		results := make([]error, racers)
		for g := range racers {
			wg.Go(func() {
				<-start
				body := fmt.Sprintf("round %d racer %d", round, g)
				_, results[g] = s.PutIfAbsent(ctx, "race/key", strings.NewReader(body), int64(len(body)))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for g, err := range results {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: racers %d and %d both won", round, winner, g)
			case err == nil:
				winner = g
			case !errors.Is(err, storage.ErrPreconditionFailed):
				t.Fatalf("round %d: racer %d: %v, want nil or ErrPreconditionFailed", round, g, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won", round)
		}
		wantContent(t, s, "race/key", fmt.Sprintf("round %d racer %d", round, winner))
		if err := s.Delete(ctx, "race/key"); err != nil {
			t.Fatal(err)
		}
	}
}

func testPutIfMatch(t *testing.T, s storage.Store) {
	ctx := t.Context()
	_, err := s.PutIfMatch(ctx, "m", strings.NewReader("x"), 1, "whatever")
	wantErr(t, "PutIfMatch(missing)", err, storage.ErrPreconditionFailed)
	wantMissing(t, s, "m")

	v1 := put(t, s, "m", "v1")
	v2, err := s.PutIfMatch(ctx, "m", strings.NewReader("v22"), 3, v1.ETag)
	if err != nil {
		t.Fatalf("PutIfMatch(current ETag): %v", err)
	}
	if v2.ETag == v1.ETag || v2.Size != 3 {
		t.Fatalf("PutIfMatch = %+v, want a new ETag and size 3", v2)
	}
	_, err = s.PutIfMatch(ctx, "m", strings.NewReader("stale"), 5, v1.ETag)
	wantErr(t, "PutIfMatch(stale ETag)", err, storage.ErrPreconditionFailed)
	_, err = s.PutIfMatch(ctx, "m", strings.NewReader("empty"), 5, "")
	wantErr(t, `PutIfMatch("" ETag)`, err, storage.ErrPreconditionFailed)
	wantContent(t, s, "m", "v22")

	if err := s.Delete(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	_, err = s.PutIfMatch(ctx, "m", strings.NewReader("gone"), 4, v2.ETag)
	wantErr(t, "PutIfMatch(deleted)", err, storage.ErrPreconditionFailed)
	wantMissing(t, s, "m")
}

// Read-modify-write increments with PutIfMatch lose no update.
func testPutIfMatchCounter(t *testing.T, s storage.Store) {
	const workers, each = 16, 8
	if err := IncrementConcurrently(t.Context(), s, "counter", workers, each); err != nil {
		t.Fatal(err)
	}
	if n, err := ReadCounter(t.Context(), s, "counter"); err != nil || n != workers*each {
		t.Fatalf("counter = %d, %v; want %d", n, err, workers*each)
	}
}

// Increment adds one to the decimal counter at key by read-modify-write,
// retrying whenever another writer got in first (PutIfAbsent creates it).
// It is exported for backend tests that race several processes.
func Increment(ctx context.Context, s storage.Store, key string) error {
	for {
		b, info, err := get(ctx, s, key, storage.GetOptions{})
		if errors.Is(err, storage.ErrNotFound) {
			_, err = s.PutIfAbsent(ctx, key, strings.NewReader("1"), 1)
		} else if err == nil {
			n, perr := strconv.Atoi(string(b))
			if perr != nil {
				return fmt.Errorf("counter %q holds %q: %w", key, clip(string(b)), perr)
			}
			next := strconv.Itoa(n + 1)
			_, err = s.PutIfMatch(ctx, key, strings.NewReader(next), int64(len(next)), info.ETag)
		}
		if !errors.Is(err, storage.ErrPreconditionFailed) {
			return err
		}
	}
}

// IncrementConcurrently runs workers goroutines that each Increment key
// n times, returning the first error.
func IncrementConcurrently(ctx context.Context, s storage.Store, key string, workers, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range n {
				if err := Increment(ctx, s, key); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// ReadCounter returns the value of the counter at key.
func ReadCounter(ctx context.Context, s storage.Store, key string) (int, error) {
	rc, _, err := s.Get(ctx, key, storage.GetOptions{})
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(string(b))
}
