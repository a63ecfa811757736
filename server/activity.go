package server

import (
	"sync/atomic"
	"time"

	"github.com/slipway/slipway/storage/pace"
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

// gcPace is how this replica's collections pace their store requests
// now: gc.busy_concurrency at gc.busy_share while it serves clients,
// gc.concurrency unpaused otherwise.
func (s *Server) gcPace() pace.Bound {
	if s.activity.busy(time.Now()) {
		return GentlePace(s.cfg.GC)
	}
	return pace.Bound{InFlight: s.cfg.GC.Concurrency, Share: 1}
}
