// Package tombstone is the garbage collector's handshake with writers: the
// collector marks an object it wants to delete with a tombstone, and a
// writer that has come to rely on the object rescues it with
// compare-and-set before the collector commits the deletion. Exactly one
// of the two wins. The protocol and its argument are in
// docs/architecture.md ("Garbage collection").
package tombstone

import (
	"context"
	"errors"
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
var ErrCollected = errors.New("object is being garbage-collected")

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

// Sweep is a run that may hold tombstones.
type Sweep struct {
	Run       string    `json:"run"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
}

// The functions below are the collector's side; Guard (guard.go) is the
// writer's. Signatures are fixed; helpers implement the bodies.
var (
	_ = context.Background
	_ storage.Store
)
