package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/slipway/slipway/storage"
)

// The collector lease: one object, gc/lease, that a collector takes before
// a run so that replicas do not all collect at once. It only avoids
// duplicate work: two collectors running together are safe (the tombstone
// protocol decides every race), so a lost or stolen lease costs time,
// never data.
//
//	gc/lease                    JSON leaseBody, written put-if-absent / put-if-match
//	gc/clock/lease-<random>     the store's clock (storeNow), when the lease is taken over
const LeaseKey = "gc/lease"

var (
	// ErrLeaseHeld: another collector holds the lease (see *LeaseHeldError).
	ErrLeaseHeld = errors.New("gc: the collector lease is held")
	// ErrLeaseLost: the lease expired and another collector took it.
	ErrLeaseLost = errors.New("gc: the collector lease was taken over by another collector")
)

// LeaseHeldError says who holds the lease; errors.Is(err, ErrLeaseHeld).
type LeaseHeldError struct {
	Owner string
	Until time.Time // the holder's own estimate, by its clock
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("gc: the collector lease is held by %s (until about %s)", e.Owner, e.Until.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrLeaseHeld) true.
func (e *LeaseHeldError) Is(target error) bool { return target == ErrLeaseHeld }

// leaseBody is the lease object. A lease expires at the object's ModTime
// plus TTLSeconds, both by the store's clock: replicas' clocks may
// disagree, and Until (the holder's clock) is only for people. TTLSeconds
// 0 is a released lease.
type leaseBody struct {
	Owner      string    `json:"owner"`
	Until      time.Time `json:"until"`
	TTLSeconds float64   `json:"ttl_seconds"`
}

// Lease is a held collector lease. Renew it within its TTL (Keep does),
// Release it at the end.
type Lease struct {
	store storage.Store
	owner string
	ttl   time.Duration
	mu    sync.Mutex
	etag  string // of the lease object as we last wrote it
}

// AcquireLease takes the lease for owner for ttl: when no lease exists,
// when the current one is released, or when it has expired by the
// store's clock. It returns a *LeaseHeldError otherwise. Of several
// collectors trying at once, exactly one gets it (put-if-absent, or
// put-if-match on the expired lease's ETag).
func AcquireLease(ctx context.Context, s storage.Store, owner string, ttl time.Duration) (*Lease, error) {
	l := &Lease{store: s, owner: owner, ttl: ttl}
	body := l.body(ttl)
	for range 2 { // a second pass only if the lease vanished under us
		info, err := s.PutIfAbsent(ctx, LeaseKey, bytes.NewReader(body), int64(len(body)))
		if err == nil {
			l.etag = info.ETag
			return l, nil
		}
		if !errors.Is(err, storage.ErrPreconditionFailed) {
			return nil, fmt.Errorf("gc: taking the lease: %w", err)
		}
		cur, info, err := readLease(ctx, s)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if cur.TTLSeconds > 0 {
			now, err := storeNow(ctx, s, "lease-"+newRunID())
			if err != nil {
				return nil, fmt.Errorf("gc: reading the store's clock: %w", err)
			}
			if now.Before(info.ModTime.Add(seconds(cur.TTLSeconds))) {
				return nil, &LeaseHeldError{Owner: cur.Owner, Until: cur.Until}
			}
		}
		info, err = s.PutIfMatch(ctx, LeaseKey, bytes.NewReader(body), int64(len(body)), info.ETag)
		if errors.Is(err, storage.ErrPreconditionFailed) {
			// Another collector took it (or its holder renewed) first.
			if cur, _, rerr := readLease(ctx, s); rerr == nil {
				return nil, &LeaseHeldError{Owner: cur.Owner, Until: cur.Until}
			}
			return nil, ErrLeaseHeld
		}
		if err != nil {
			return nil, fmt.Errorf("gc: taking the lease: %w", err)
		}
		l.etag = info.ETag
		return l, nil
	}
	return nil, ErrLeaseHeld
}

// Owner is who holds the lease.
func (l *Lease) Owner() string { return l.owner }

// Renew extends the lease by its TTL from now (the store's now). It
// returns ErrLeaseLost when another collector has taken it.
func (l *Lease) Renew(ctx context.Context) error {
	return l.write(ctx, l.ttl)
}

// Release gives the lease up, so that the next collector need not wait
// for it to expire. Releasing a lease another collector has taken since
// changes nothing.
func (l *Lease) Release(ctx context.Context) error {
	if err := l.write(ctx, 0); err != nil && !errors.Is(err, ErrLeaseLost) {
		return err
	}
	return nil
}

func (l *Lease) write(ctx context.Context, ttl time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	body := l.body(ttl)
	info, err := l.store.PutIfMatch(ctx, LeaseKey, bytes.NewReader(body), int64(len(body)), l.etag)
	if errors.Is(err, storage.ErrPreconditionFailed) {
		return ErrLeaseLost
	}
	if err != nil {
		return fmt.Errorf("gc: renewing the lease: %w", err)
	}
	l.etag = info.ETag
	return nil
}

// Keep renews the lease every third of its TTL until stop is called,
// which then releases it. The returned context ends when ctx does, when
// stop is called, or when the lease is lost (another collector took it
// over: this one stops instead of doing its work twice). Renewal errors
// go to warn (nil: dropped); one failed renewal does not lose the lease.
func (l *Lease) Keep(ctx context.Context, warn func(error)) (held context.Context, stop func()) {
	held, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-held.Done():
				return
			case <-t.C:
			}
			err := l.Renew(held)
			if err == nil || held.Err() != nil {
				continue
			}
			if warn != nil {
				warn(err)
			}
			if errors.Is(err, ErrLeaseLost) {
				cancel()
				return
			}
		}
	}()
	return held, func() {
		cancel()
		<-done
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer rcancel()
		if err := l.Release(rctx); err != nil && warn != nil {
			warn(err)
		}
	}
}

func (l *Lease) body(ttl time.Duration) []byte {
	b, _ := json.Marshal(leaseBody{Owner: l.owner, Until: time.Now().Add(ttl).UTC(), TTLSeconds: ttl.Seconds()})
	return b
}

// readLease reads the lease object. A body that does not parse counts as
// a lease held for a minute past its last write (someone wrote it by
// hand), so it is taken over soon but not at once.
func readLease(ctx context.Context, s storage.Store) (leaseBody, storage.Info, error) {
	rc, info, err := s.Get(ctx, LeaseKey, storage.GetOptions{})
	if err != nil {
		return leaseBody{}, info, fmt.Errorf("gc: reading the lease: %w", err)
	}
	defer rc.Close()
	var b leaseBody
	raw, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return leaseBody{}, info, fmt.Errorf("gc: reading the lease: %w", err)
	}
	if json.Unmarshal(raw, &b) != nil || b.TTLSeconds < 0 {
		b = leaseBody{Owner: "(unreadable lease)", TTLSeconds: 60}
	}
	return b, info, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
