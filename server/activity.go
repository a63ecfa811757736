package server

import (
	"sync/atomic"
	"time"
)

// busyHold: a replica counts as serving clients for this long after its
// last client request ended, so that a client's next request (a push is
// several in a row) finds the store as quiet as its previous one did.
const busyHold = time.Second

// activity tells whether this replica serves clients: registry, API and
// admin requests, not the probes and scrapes of /healthz, /readyz and
// /metrics. The server's garbage collections keep fewer store requests in
// flight meanwhile (gc.busy_concurrency).
type activity struct {
	inFlight atomic.Int64
	lastEnd  atomic.Int64 // when the last client request ended (Unix ns)
}

func (a *activity) begin() { a.inFlight.Add(1) }

func (a *activity) end(now time.Time) {
	a.lastEnd.Store(now.UnixNano())
	a.inFlight.Add(-1)
}

// busy: a client request is under way, or one ended less than busyHold
// before now.
func (a *activity) busy(now time.Time) bool {
	last := a.lastEnd.Load()
	return a.inFlight.Load() > 0 || last != 0 && now.UnixNano()-last < int64(busyHold)
}

// gcConcurrency is the bound on the store requests this replica's
// collections keep in flight now.
func (s *Server) gcConcurrency() int {
	if s.activity.busy(time.Now()) {
		return s.cfg.GC.BusyConcurrency
	}
	return s.cfg.GC.Concurrency
}
