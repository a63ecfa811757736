package tombstone

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slipway/slipway/storage"
)

// The protocol's steps on one tombstone. Each is one update of its shard,
// and each compare-and-set compares the tombstone's Version, so they
// behave as if every tombstone were an object of its own.

// Mark writes the tombstone of objectKey in state Marked for run if it
// has none. It returns the tombstone's version (for Commit), or
// storage.ErrPreconditionFailed if a tombstone exists (skip the object
// this run). The collector marks a batch with MarkAll.
func Mark(ctx context.Context, s storage.Store, objectKey, run string) (version string, err error) {
	marked, existing, err := MarkAll(ctx, s, []string{objectKey}, run, 1)
	if err == nil && len(existing) > 0 {
		err = storage.ErrPreconditionFailed
	}
	return marked[objectKey], err
}

// Read returns the tombstone of objectKey and its version, or
// storage.ErrNotFound if there is none.
func Read(ctx context.Context, s storage.Store, objectKey string) (t Tomb, version string, err error) {
	tombs, _, err := readShard(ctx, s, Key(objectKey))
	if err != nil {
		return Tomb{}, "", err
	}
	return lookup(tombs, objectKey)
}

func (t Tomb) valid() error {
	switch t.State {
	case Marked, Rescued, Deleting:
		return nil
	}
	return fmt.Errorf("unknown state %q", t.State)
}

// swap replaces objectKey's tombstone by t if its version is still
// version: the compare-and-set of every step below.
// storage.ErrPreconditionFailed: the tombstone changed or is gone.
func swap(ctx context.Context, s storage.Store, objectKey, version string, t Tomb) error {
	return update(ctx, s, Key(objectKey), func(tombs map[string]Tomb) (bool, error) {
		if cur, ok := tombs[objectKey]; !ok || cur.Version != version {
			return false, storage.ErrPreconditionFailed
		}
		tombs[objectKey] = t
		return true, nil
	})
}

// Commit turns the Marked tombstone of objectKey (at version, from Mark)
// into Deleting: from then on the object is deleted, by the collector or
// by whoever finds the tombstone (Finish). storage.ErrPreconditionFailed:
// a writer rescued the object (or the tombstone changed or is gone): keep
// the object. The collector commits a batch with CommitAll.
func Commit(ctx context.Context, s storage.Store, objectKey, run, version string) error {
	return swap(ctx, s, objectKey, version, Tomb{Run: run, State: Deleting, At: time.Now().UTC(), Version: newVersion()})
}

// Rescue turns the Marked tombstone of objectKey (at version) into
// Rescued, for run (the tombstone's run). Winning means the collector's
// Commit will lose; storage.ErrPreconditionFailed means the tombstone
// changed (read it again).
func Rescue(ctx context.Context, s storage.Store, objectKey, run, version string) error {
	return swap(ctx, s, objectKey, version, Tomb{Run: run, State: Rescued, At: time.Now().UTC(), Version: newVersion()})
}

// Remove deletes the tombstone of objectKey (a missing one is fine). The
// collector removes a tombstone after the second look found the object
// live, after losing its Commit, or after the object's deletion; never a
// Deleting one before the object is gone.
func Remove(ctx context.Context, s storage.Store, objectKey string) error {
	return update(ctx, s, Key(objectKey), func(tombs map[string]Tomb) (bool, error) {
		_, ok := tombs[objectKey]
		delete(tombs, objectKey)
		return ok, nil
	})
}

// Finish completes a committed deletion: if objectKey's tombstone is
// Deleting, Finish claims it (a compare-and-set to a fresh Deleting
// version, so that two finishers never delete at once), then del deletes
// the object (for a blob descriptor: the descriptor, then the data it
// names), then the tombstone is removed. No tombstone: nothing to do
// (someone finished). A tombstone in another state, or a claim lost to
// another finisher: storage.ErrPreconditionFailed (leave it, look again
// later).
//
// Why a claim: a writer waiting for the deletion re-creates the object as
// soon as the tombstone is gone (Guard callers, AwaitGone); a finisher
// still deleting after another one removed the tombstone would delete the
// re-created object. Claims make the finisher between a claim and the
// removal the only one. The collector that committed deletes directly
// (its Commit is its claim) and promptly; the next run, or an operator,
// finishes a deletion whose collector died with Finish.
func Finish(ctx context.Context, s storage.Store, objectKey string, del func(ctx context.Context, objectKey string) error) error {
	t, version, err := Read(ctx, s, objectKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if t.State != Deleting {
		return fmt.Errorf("tombstone %s is %s: %w", objectKey, t.State, storage.ErrPreconditionFailed)
	}
	t.At, t.Version = time.Now().UTC(), newVersion()
	if err := swap(ctx, s, objectKey, version, t); err != nil {
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
