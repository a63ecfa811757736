package gc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

func leaseStore(t *testing.T) storage.Store {
	t.Helper()
	s, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Of collectors racing for a free lease, exactly one gets it.
func TestLeaseRaceOneWins(t *testing.T) {
	s := leaseStore(t)
	ctx := context.Background()
	for round := range 3 {
		if round == 1 {
			// Released by its last holder: the race is on the put-if-match.
			l, err := AcquireLease(ctx, s, "releaser", time.Minute)
			if err == nil {
				err = l.Release(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		const takers = 8
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []*Lease
		held := 0
		for i := range takers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := AcquireLease(ctx, s, fmt.Sprintf("r%d-%d", round, i), time.Minute)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won = append(won, l)
				case errors.Is(err, ErrLeaseHeld):
					held++
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if len(won) != 1 || held != takers-1 {
			t.Fatalf("round %d: %d won, %d found it held; want 1 and %d", round, len(won), held, takers-1)
		}
		if round < 2 {
			if err := won[0].Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// An expired lease is taken over; its old holder learns it has lost it,
// and its release leaves the new holder's lease alone.
func TestLeaseExpiredTakenOver(t *testing.T) {
	s := leaseStore(t)
	ctx := context.Background()
	old, err := AcquireLease(ctx, s, "old", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var held *LeaseHeldError
	if _, err := AcquireLease(ctx, s, "early", time.Minute); !errors.As(err, &held) || held.Owner != "old" {
		t.Fatalf("before expiry: %v, want held by old", err)
	}
	time.Sleep(100 * time.Millisecond)
	l, err := AcquireLease(ctx, s, "new", time.Minute)
	if err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if err := old.Renew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("old holder renews: %v, want ErrLeaseLost", err)
	}
	if err := old.Release(ctx); err != nil {
		t.Fatalf("old holder releases: %v", err)
	}
	if _, err := AcquireLease(ctx, s, "third", time.Minute); !errors.As(err, &held) || held.Owner != "new" {
		t.Fatalf("after the old holder's release: %v, want held by new", err)
	}
	if err := l.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if keys, _ := s.List(ctx, storage.ListOptions{Prefix: clockPrefix}); len(keys.Objects) != 0 {
		t.Fatalf("clock probes left behind: %v", keys.Objects)
	}
}

// Expiry is judged by the store's clock (the object's ModTime), not by
// the "until" a holder with a wrong clock wrote.
func TestLeaseIgnoresHolderClock(t *testing.T) {
	s := leaseStore(t)
	ctx := context.Background()
	body := []byte(`{"owner":"skewed","until":"2001-01-01T00:00:00Z","ttl_seconds":3600}`)
	if _, err := s.Put(ctx, LeaseKey, bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireLease(ctx, s, "me", time.Minute); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("got %v, want held (written just now for an hour)", err)
	}
}

// Keep renews the lease past its TTL while a run goes on; stop releases
// it at once.
func TestLeaseKeepRenewsAndReleases(t *testing.T) {
	s := leaseStore(t)
	ctx := context.Background()
	l, err := AcquireLease(ctx, s, "keeper", 150*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	held, stop := l.Keep(ctx, func(err error) { t.Errorf("renewal: %v", err) })
	time.Sleep(400 * time.Millisecond)
	if _, err := AcquireLease(ctx, s, "other", time.Minute); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("while kept: %v, want held", err)
	}
	if held.Err() != nil {
		t.Fatal("the held context ended while the lease was kept")
	}
	stop()
	if held.Err() == nil {
		t.Fatal("the held context outlives stop")
	}
	if _, err := AcquireLease(ctx, s, "other", time.Minute); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// A kept lease that another collector takes over ends the run's context.
func TestLeaseKeepLost(t *testing.T) {
	s := leaseStore(t)
	ctx := context.Background()
	l, err := AcquireLease(ctx, s, "slow", 60*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// Another collector overwrites it, as a takeover after a long pause does.
	if _, err := s.Put(ctx, LeaseKey, bytes.NewReader([]byte(`{"owner":"thief","ttl_seconds":60}`)), -1); err != nil {
		t.Fatal(err)
	}
	lost := make(chan error, 1)
	held, stop := l.Keep(ctx, func(err error) { lost <- err })
	defer stop()
	select {
	case <-held.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the run's context goes on after the lease was lost")
	}
	if err := <-lost; !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("warned %v, want ErrLeaseLost", err)
	}
}
