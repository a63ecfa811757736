// Package tombstone is the garbage collector's handshake with writers: the
// collector marks an object it wants to delete with a tombstone, and a
// writer that has come to rely on the object rescues it with
// compare-and-set before the collector commits the deletion. Exactly one
// of the two wins. The protocol and its argument are in
// docs/architecture.md ("Garbage collection").
package tombstone

import (
	"errors"
	"fmt"
	"hash/fnv"
	"time"
)

// Key prefixes of the protocol (every key the package writes).
const (
	// Prefix + two hex digits is a shard: one object holding the
	// tombstones of every object key that hashes to it (Key).
	Prefix = "gc/marks/"
	// SweepPrefix + run id says that run may hold tombstones.
	SweepPrefix = "gc/sweeps/"
)

// Shards is how many shard objects hold the tombstones. A tombstone is an
// entry in its shard, changed only by a put-if-match of the whole shard:
// each entry has its own version (Tomb.Version) that the per-tombstone
// compare-and-sets (Commit, Rescue, Finish's claim) compare, so every
// step of the protocol keeps the semantics of one object per tombstone
// while the collector marks, commits and removes a whole batch with one
// write per shard instead of two per object (docs/architecture.md 5.1).
// 64 keeps a shard of a 10,000-candidate batch near 150 entries (a writer
// reads one shard per key it protects during a sweep).
const Shards = 64

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

// Tomb is a tombstone: one entry of its shard.
type Tomb struct {
	Run   string    `json:"run"`
	State State     `json:"state"`
	At    time.Time `json:"at"`
	// Version is new at every write of the entry: the compare-and-sets
	// compare it (what an object's ETag would be for a tombstone object).
	Version string `json:"version"`
}

// Key is the key of the shard that holds objectKey's tombstone.
func Key(objectKey string) string {
	h := fnv.New32a()
	h.Write([]byte(objectKey))
	return fmt.Sprintf("%s%02x", Prefix, h.Sum32()%Shards)
}

// Sweep is a run that may hold tombstones.
type Sweep struct {
	Run       string    `json:"run"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
}

// SweepKey is the key of a run's sweep entry.
func SweepKey(run string) string { return SweepPrefix + run }
