package server

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/storage/pace"
)

func TestActivityBusy(t *testing.T) {
	var a activity
	t0 := time.Now()
	if a.busy(t0) {
		t.Fatal("busy before any request")
	}
	a.begin()
	if !a.busy(t0.Add(time.Hour)) {
		t.Fatal("not busy with a request under way")
	}
	a.end(t0)
	if !a.busy(t0.Add(busyHold - time.Millisecond)) {
		t.Fatal("not busy just after a request")
	}
	if a.busy(t0.Add(busyHold)) {
		t.Fatal("still busy busyHold after the last request")
	}
}

// TestCollectionsYieldToClients: while a client's request is under way
// the collections' pace is gc.busy_concurrency at gc.busy_share; probes of
// /healthz, /readyz and /metrics do not count; it is gc.concurrency
// unpaused again once the replica has been quiet for busyHold.
func TestCollectionsYieldToClients(t *testing.T) {
	cfg := testConfig(t)
	cfg.GC.Concurrency, cfg.GC.BusyConcurrency, cfg.GC.BusyShare = 12, 3, 0.2
	s, _ := newTestServerWith(t, cfg, nil, auth.Options{})
	// A client request that lasts until release is closed, behind the
	// server's own middleware.
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	s.engine.GET("/test/slow", func(c *gin.Context) { <-release })
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(free) // runs first: srv.Close waits for the request
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	idle, busy := pace.Bound{InFlight: 12, Share: 1}, pace.Bound{InFlight: 3, Share: 0.2}
	if got := s.gcPace(); got != idle {
		t.Fatalf("after probes only: %+v, want %+v", got, idle)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(srv.URL + "/test/slow")
		if err == nil {
			resp.Body.Close()
		}
	}()
	for deadline := time.Now().Add(5 * time.Second); s.activity.inFlight.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request never started")
		}
	}
	time.Sleep(busyHold + 100*time.Millisecond) // still under way
	if got := s.gcPace(); got != busy {
		t.Fatalf("during a request: %+v, want %+v", got, busy)
	}
	free()
	<-done
	if got := s.gcPace(); got != busy {
		t.Fatalf("just after a request: %+v, want %+v", got, busy)
	}
	time.Sleep(busyHold + 100*time.Millisecond)
	if got := s.gcPace(); got != idle {
		t.Fatalf("a quiet second later: %+v, want %+v", got, idle)
	}
}
