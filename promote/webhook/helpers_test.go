package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

const testSecret = "0123456789abcdef-test-secret"

// Enqueue is EnqueueOnce under a fresh random id at the outbox's current
// time: one new event.
func (o *Outbox) Enqueue(ctx context.Context, event string, payload any) error {
	return o.EnqueueOnce(ctx, randomHex(16), o.opts.Now().UTC(), event, payload)
}

// Pending counts the deliveries not yet delivered nor given up on.
func (o *Outbox) Pending(ctx context.Context) (int, error) {
	n := 0
	err := o.list(ctx, outboxPrefix, func(storage.Info) bool { n++; return true })
	return n, err
}

// received is one request a receiver got.
type received struct {
	at     time.Time
	header http.Header
	body   []byte
	env    envelope
}

// receiver is a webhook endpoint that records every request. respond
// (nil: 200) answers the n-th request (1-based).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []received
	respond func(n int, w http.ResponseWriter)
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter)) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("receiver: read body: %v", err)
		}
		got := received{at: time.Now(), header: r.Header.Clone(), body: b}
		if err := json.Unmarshal(b, &got.env); err != nil {
			t.Errorf("receiver: body %q: %v", b, err)
		}
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, got)
		n := len(rc.reqs)
		rc.mu.Unlock()
		if rc.respond != nil {
			rc.respond(n, w)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

func (rc *receiver) count() int { return len(rc.requests()) }

func (rc *receiver) hook(events ...string) config.Webhook {
	return config.Webhook{URL: rc.URL + "/hook?token=url-token", Secret: testSecret, Events: events}
}

// logBuffer collects log output from concurrent goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newStore(t *testing.T, dir string) storage.Store {
	t.Helper()
	s, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newOutbox returns an Outbox with fast polling and backoff, logging to
// logs (may be nil).
func newOutbox(store storage.Store, hooks []config.Webhook, logs *logBuffer) *Outbox {
	var w io.Writer = io.Discard
	if logs != nil {
		w = logs
	}
	return New(store, Options{
		Hooks:        hooks,
		Logger:       slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PollInterval: 20 * time.Millisecond,
		BaseBackoff:  5 * time.Millisecond,
	})
}

// run runs o until the returned stop is called (or the test ends); stop
// waits for Run to return.
func run(t *testing.T, o *Outbox) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds, failing the test after 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pending(t *testing.T, o *Outbox) int {
	t.Helper()
	n, err := o.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// readDelivery decodes the object at key.
func readDelivery(t *testing.T, store storage.Store, key string) (*delivery, string) {
	t.Helper()
	r, info, err := store.Get(context.Background(), key, storage.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var d delivery
	if err := json.NewDecoder(r).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return &d, info.ETag
}
