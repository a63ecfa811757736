package server

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slipway/slipway/auth"
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
// the collections' bound is
// gc.busy_concurrency; probes of /healthz and /readyz do not count; the
// bound is gc.concurrency again once the replica has been quiet for
// busyHold.
func TestCollectionsYieldToClients(t *testing.T) {
	cfg := testConfig(t)
	cfg.GC.Concurrency, cfg.GC.BusyConcurrency = 12, 3
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
	if got := s.gcConcurrency(); got != 12 {
		t.Fatalf("after probes only: %d, want 12", got)
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
	if got := s.gcConcurrency(); got != 3 {
		t.Fatalf("during a request: %d, want 3", got)
	}
	free()
	<-done
	if got := s.gcConcurrency(); got != 3 {
		t.Fatalf("just after a request: %d, want 3", got)
	}
	time.Sleep(busyHold + 100*time.Millisecond)
	if got := s.gcConcurrency(); got != 12 {
		t.Fatalf("a quiet second later: %d, want 12", got)
	}
}
