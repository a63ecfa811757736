package gc

import (
	"fmt"
	"math"
	"time"
)

// The collector's own keys (the tombstones and sweep entries are package
// tombstone's):
//
//	gc/clock/<run>                  empty; its ModTime is "now" in the store's time
//	gc/runs/<inverted ns>-<run>     a run's report (JSON), newest first
const (
	clockPrefix = "gc/clock/"
	runsPrefix  = "gc/runs/"
)

func clockKey(run string) string { return clockPrefix + run }

// runKey sorts newest first: the inverted start time in nanoseconds.
func runKey(started time.Time, run string) string {
	return runsPrefix + fmt.Sprintf("%016x", uint64(math.MaxInt64-started.UnixNano())) + "-" + run
}
