// Package tombstone is the garbage collector's handshake with writers: the
// collector marks an object it wants to delete with a tombstone, and a
// writer that has come to rely on the object rescues it with
// compare-and-set before the collector commits the deletion. Exactly one
// of the two wins. The protocol and its argument are in
// docs/architecture.md ("Garbage collection").
package tombstone

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/slipway/slipway/storage"
)

// Key prefixes of the protocol (every key the package writes).
const (
	// Prefix + object key is the tombstone of that object.
	Prefix = "gc/tombstones/"
	// SweepPrefix + run id says that run may hold tombstones.
	SweepPrefix = "gc/sweeps/"
)

// Timing of the fence between the collector and writers: a writer trusts
// a "no sweep in progress" answer for at most CacheFor, measured from
// before its list request to after its own writes; the collector waits
// Fence after announcing its sweep before it writes the first tombstone.
// Fence > CacheFor is what makes skipping the check safe.
const (
	CacheFor = 2 * time.Second
	Fence    = 5 * time.Second
)

// ErrCollected: the object a writer relies on is being deleted, or is
// gone. Retryable for the client: a new upload or push brings it back.
// Guard.Protect returns it wrapped in a *CollectedError naming the key.
var ErrCollected = errors.New("object is being garbage-collected")

// CollectedError says which object is being collected and how far the
// deletion went. errors.Is(err, ErrCollected) holds for it.
type CollectedError struct {
	Key string
	// Deleting: the object's tombstone is committed (the object may still
	// exist; Finish completes the deletion). False: the object is gone.
	Deleting bool
}

func (e *CollectedError) Error() string {
	if e.Deleting {
		return fmt.Sprintf("%s: %v (deletion committed)", e.Key, ErrCollected)
	}
	return fmt.Sprintf("%s: %v (gone)", e.Key, ErrCollected)
}

func (e *CollectedError) Unwrap() error { return ErrCollected }

// State is a tombstone's state.
type State string

const (
	Marked   State = "marked"   // the collector wants to delete the object
	Rescued  State = "rescued"  // a writer relies on it: the collector keeps it
	Deleting State = "deleting" // committed: the object goes (anyone may finish)
)

// Tomb is a tombstone's content.
type Tomb struct {
	Run   string    `json:"run"`
	State State     `json:"state"`
	At    time.Time `json:"at"`
}

// Key is the tombstone key of an object key.
func Key(objectKey string) string { return Prefix + objectKey }

// ObjectKey is the object key of a tombstone key (the inverse of Key); ok
// is false for a key outside Prefix.
func ObjectKey(tombKey string) (string, bool) {
	if len(tombKey) <= len(Prefix) || tombKey[:len(Prefix)] != Prefix {
		return "", false
	}
	return tombKey[len(Prefix):], true
}

// Sweep is a run that may hold tombstones.
type Sweep struct {
	Run       string    `json:"run"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
}

// SweepKey is the key of a run's sweep entry.
func SweepKey(run string) string { return SweepPrefix + run }

func encode(v any) *bytes.Reader {
	b, err := json.Marshal(v)
	if err != nil { // only plain structs are encoded
		panic(err)
	}
	return bytes.NewReader(b)
}

func put(write func(r io.Reader, size int64) (storage.Info, error), t Tomb) (string, error) {
	r := encode(t)
	info, err := write(r, r.Size())
	if err != nil {
		return "", err
	}
	return info.ETag, nil
}

// Mark writes the tombstone of objectKey in state Marked for run, with
// put-if-absent. It returns the tombstone's ETag (for Commit), or
// storage.ErrPreconditionFailed if a tombstone exists (skip the object
// this run).
func Mark(ctx context.Context, s storage.Store, objectKey, run string) (etag string, err error) {
	return put(func(r io.Reader, n int64) (storage.Info, error) {
		return s.PutIfAbsent(ctx, Key(objectKey), r, n)
	}, Tomb{Run: run, State: Marked, At: time.Now().UTC()})
}

// Read returns the tombstone of objectKey and its ETag, or
// storage.ErrNotFound if there is none.
func Read(ctx context.Context, s storage.Store, objectKey string) (t Tomb, etag string, err error) {
	etag, err = readJSON(ctx, s, Key(objectKey), &t)
	if err != nil {
		return Tomb{}, "", err
	}
	switch t.State {
	case Marked, Rescued, Deleting:
	default:
		return Tomb{}, "", fmt.Errorf("tombstone %s: unknown state %q", objectKey, t.State)
	}
	return t, etag, nil
}

// readJSON decodes the small JSON object at key into v and returns its ETag.
func readJSON(ctx context.Context, s storage.Store, key string, v any) (string, error) {
	rc, info, err := s.Get(ctx, key, storage.GetOptions{})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	return info.ETag, nil
}

// Commit turns the Marked tombstone of objectKey (the version etag, from
// Mark) into Deleting with put-if-match: from then on the object is
// deleted, by the collector or by whoever finds the tombstone (Finish).
// storage.ErrPreconditionFailed: a writer rescued the object (or the
// tombstone changed or is gone): keep the object.
func Commit(ctx context.Context, s storage.Store, objectKey, run, etag string) error {
	_, err := put(func(r io.Reader, n int64) (storage.Info, error) {
		return s.PutIfMatch(ctx, Key(objectKey), r, n, etag)
	}, Tomb{Run: run, State: Deleting, At: time.Now().UTC()})
	return err
}

// Rescue turns the Marked tombstone of objectKey (the version etag) into
// Rescued with put-if-match, for run (the tombstone's run). Winning means
// the collector's Commit will lose; storage.ErrPreconditionFailed means
// the tombstone changed (read it again).
func Rescue(ctx context.Context, s storage.Store, objectKey, run, etag string) error {
	_, err := put(func(r io.Reader, n int64) (storage.Info, error) {
		return s.PutIfMatch(ctx, Key(objectKey), r, n, etag)
	}, Tomb{Run: run, State: Rescued, At: time.Now().UTC()})
	return err
}

// Remove deletes the tombstone of objectKey (a missing one is fine). The
// collector removes a tombstone after the second look found the object
// live, after losing its Commit, or after the object's deletion; never a
// Deleting one before the object is gone.
func Remove(ctx context.Context, s storage.Store, objectKey string) error {
	return s.Delete(ctx, Key(objectKey))
}

// Finish completes a committed deletion: if objectKey's tombstone is
// Deleting, Finish claims it (put-if-match of a fresh Deleting version,
// so that two finishers never delete at once), then del deletes the
// object (for a blob descriptor: the descriptor, then the data it names),
// then the tombstone is removed. No tombstone: nothing to do (someone
// finished). A tombstone in another state, or a claim lost to another
// finisher: storage.ErrPreconditionFailed (leave it, look again later).
//
// Why a claim: a writer waiting for the deletion re-creates the object as
// soon as the tombstone is gone (Guard callers, AwaitGone); a finisher
// still deleting after another one removed the tombstone would delete the
// re-created object. Claims make the finisher between a claim and the
// removal the only one. The collector that committed deletes directly
// (its Commit is its claim) and promptly; the next run, or an operator,
// finishes a deletion whose collector died with Finish.
func Finish(ctx context.Context, s storage.Store, objectKey string, del func(ctx context.Context, objectKey string) error) error {
	t, etag, err := Read(ctx, s, objectKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if t.State != Deleting {
		return fmt.Errorf("tombstone %s is %s: %w", objectKey, t.State, storage.ErrPreconditionFailed)
	}
	t.At = time.Now().UTC()
	if _, err := put(func(r io.Reader, n int64) (storage.Info, error) {
		return s.PutIfMatch(ctx, Key(objectKey), r, n, etag)
	}, t); err != nil {
		return err
	}
	if err := del(ctx, objectKey); err != nil {
		return err
	}
	return Remove(ctx, s, objectKey)
}

// AwaitGone waits, polling every poll, until objectKey has no Deleting
// tombstone (the deletion finished, or the tombstone was never committed)
// and reports true; false when within passed first. A writer whose
// Protect found a committed deletion of an object it can write again
// waits with it before writing the object anew: writing it earlier would
// let the finishing deletion remove the new object.
func AwaitGone(ctx context.Context, s storage.Store, objectKey string, within, poll time.Duration) (bool, error) {
	deadline := time.Now().Add(within)
	for {
		t, _, err := Read(ctx, s, objectKey)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && t.State != Deleting) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if !time.Now().Add(poll).Before(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(poll):
		}
	}
}
