package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/storagetest"
)

type testPayload struct {
	Target string `json:"target"`
	N      int    `json:"n"`
}

// hmacHex is the receiver's side of the signature, written independently
// of the package's sign.
func hmacHex(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func TestSignatureMatchesExactBody(t *testing.T) {
	rc := newReceiver(t, nil)
	o := newOutbox(newStore(t, t.TempDir()), []config.Webhook{rc.hook()}, nil)
	want := testPayload{Target: "prod/app:1.4.2", N: 7}
	if err := o.Enqueue(context.Background(), config.EventPromotion, want); err != nil {
		t.Fatal(err)
	}
	run(t, o)
	waitFor(t, "the delivery", func() bool { return rc.count() == 1 })
	waitFor(t, "an empty outbox", func() bool { return pending(t, o) == 0 })

	got := rc.requests()[0]
	sig, ok := strings.CutPrefix(got.header.Get("X-Slipway-Signature"), "sha256=")
	if !ok {
		t.Fatalf("X-Slipway-Signature = %q, want sha256=<hex>", got.header.Get("X-Slipway-Signature"))
	}
	if !hmac.Equal([]byte(sig), []byte(hmacHex(testSecret, got.body))) {
		t.Errorf("signature %s does not verify with the secret over the body %s", sig, got.body)
	}
	if hmac.Equal([]byte(sig), []byte(hmacHex("another-secret-entirely", got.body))) {
		t.Error("signature verifies with the wrong secret")
	}
	tampered := bytes.Replace(got.body, []byte("1.4.2"), []byte("1.4.3"), 1)
	if hmac.Equal([]byte(sig), []byte(hmacHex(testSecret, tampered))) {
		t.Error("signature verifies over a tampered body")
	}
	for h, w := range map[string]string{
		"Content-Type":       "application/json",
		"User-Agent":         "slipway-webhook",
		"X-Slipway-Event":    config.EventPromotion,
		"X-Slipway-Delivery": got.env.ID,
	} {
		if v := got.header.Get(h); v != w {
			t.Errorf("%s = %q, want %q", h, v, w)
		}
	}
	if len(got.env.ID) < 16 || got.env.Event != config.EventPromotion || got.env.At.IsZero() {
		t.Errorf("envelope = %+v, want an id, event %q and a time", got.env, config.EventPromotion)
	}
	var data testPayload
	if err := json.Unmarshal(got.env.Data, &data); err != nil || data != want {
		t.Errorf("data = %s (%v), want %+v", got.env.Data, err, want)
	}
}

func TestEventFilter(t *testing.T) {
	promotions := newReceiver(t, nil)
	rollbacks := newReceiver(t, nil)
	all := newReceiver(t, nil)
	o := newOutbox(newStore(t, t.TempDir()), []config.Webhook{
		promotions.hook(config.EventPromotion),
		rollbacks.hook(config.EventRollback),
		all.hook(),
	}, nil)
	if err := o.Enqueue(context.Background(), config.EventRollback, testPayload{N: 1}); err != nil {
		t.Fatal(err)
	}
	if n := pending(t, o); n != 2 {
		t.Fatalf("Pending after a rollback = %d, want 2 (rollback and all-events hooks)", n)
	}
	run(t, o)
	waitFor(t, "an empty outbox", func() bool { return pending(t, o) == 0 })
	if n := promotions.count(); n != 0 {
		t.Errorf("promotion-only hook got %d requests for a rollback", n)
	}
	for name, rc := range map[string]*receiver{"rollback": rollbacks, "all-events": all} {
		reqs := rc.requests()
		if len(reqs) != 1 || reqs[0].env.Event != config.EventRollback {
			t.Errorf("%s hook got %d requests (%v), want one rollback", name, len(reqs), reqs)
		}
	}
}

func TestRetriesKeepTheDeliveryID(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	store := newStore(t, t.TempDir())
	o := newOutbox(store, []config.Webhook{rc.hook()}, nil)
	if err := o.Enqueue(context.Background(), config.EventPromotion, testPayload{N: 1}); err != nil {
		t.Fatal(err)
	}
	run(t, o)
	waitFor(t, "an empty outbox", func() bool { return pending(t, o) == 0 })
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests, want 3 (500, 500, 200)", len(reqs))
	}
	for i, r := range reqs {
		if id := r.header.Get("X-Slipway-Delivery"); id != reqs[0].env.ID || r.env.ID != reqs[0].env.ID {
			t.Errorf("attempt %d: delivery id %q / body id %q, want %q", i+1, id, r.env.ID, reqs[0].env.ID)
		}
		if !bytes.Equal(r.body, reqs[0].body) {
			t.Errorf("attempt %d sent body %s, attempt 1 sent %s", i+1, r.body, reqs[0].body)
		}
	}
	if dead := storagetest.Keys(t, store, deadPrefix); len(dead) != 0 {
		t.Errorf("outbox-dead holds %v after a success", dead)
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		status  int
		honored bool
	}{
		{http.StatusTooManyRequests, true},
		{http.StatusServiceUnavailable, true},
		{http.StatusInternalServerError, false}, // Retry-After only counts on 429 and 503
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, func(n int, w http.ResponseWriter) {
				if n == 1 {
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(tc.status)
				}
			})
			o := newOutbox(newStore(t, t.TempDir()), []config.Webhook{rc.hook()}, nil)
			if err := o.Enqueue(context.Background(), config.EventPromotion, nil); err != nil {
				t.Fatal(err)
			}
			run(t, o)
			waitFor(t, "an empty outbox", func() bool { return pending(t, o) == 0 })
			reqs := rc.requests()
			if len(reqs) != 2 {
				t.Fatalf("receiver got %d requests, want 2", len(reqs))
			}
			gap := reqs[1].at.Sub(reqs[0].at)
			if tc.honored && gap < time.Second {
				t.Errorf("retried after %s, Retry-After asked for 1s", gap)
			}
			if !tc.honored && gap >= 500*time.Millisecond {
				t.Errorf("retried after %s; with a 5ms backoff and no Retry-After honoured, want < 500ms", gap)
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	for _, tc := range []struct {
		base       time.Duration
		attempts   int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{time.Second, 1, 0, 500 * time.Millisecond, time.Second},
		{time.Second, 3, 0, 2 * time.Second, 4 * time.Second},
		{time.Second, 60, 0, maxBackoff / 2, maxBackoff}, // capped, no overflow
		{time.Millisecond, 1, 3 * time.Second, 3 * time.Second, 3 * time.Second},
		{time.Second, 1, time.Hour, maxBackoff, maxBackoff},
	} {
		for range 20 {
			if d := retryDelay(tc.base, tc.attempts, tc.retryAfter); d < tc.lo || d > tc.hi {
				t.Errorf("retryDelay(%s, %d, %s) = %s, want in [%s, %s]", tc.base, tc.attempts, tc.retryAfter, d, tc.lo, tc.hi)
			}
		}
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"-3":                            0,
		"soon":                          0,
		"999999999999":                  maxBackoff,
		"Thu, 02 Jan 2025 03:04:35 GMT": 30 * time.Second,
		"Thu, 02 Jan 2025 03:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestMaxAttemptsMovesToDead(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) })
	store := newStore(t, t.TempDir())
	logs := &logBuffer{}
	h := rc.hook()
	h.MaxAttempts = 3
	o := newOutbox(store, []config.Webhook{h}, logs)
	if err := o.Enqueue(context.Background(), config.EventPromotion, testPayload{N: 1}); err != nil {
		t.Fatal(err)
	}
	run(t, o)
	// Moved: written to outbox-dead, then removed from the outbox.
	waitFor(t, "the delivery to move to outbox-dead", func() bool {
		return len(storagetest.Keys(t, store, deadPrefix)) == 1 && pending(t, o) == 0
	})
	time.Sleep(100 * time.Millisecond) // several poll intervals: nothing more may be sent
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Errorf("receiver got %d requests, want MaxAttempts = 3", len(reqs))
	}
	d, _ := readDelivery(t, store, storagetest.Keys(t, store, deadPrefix)[0])
	if d.Attempts != 3 || !strings.Contains(d.LastError, "502") || d.ID != reqs[0].env.ID {
		t.Errorf("dead delivery = %+v, want 3 attempts, a 502 error and id %s", d, reqs[0].env.ID)
	}
	out := logs.String()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "gave up") {
		t.Errorf("no error-level give-up in the log:\n%s", out)
	}
	sig := reqs[0].header.Get("X-Slipway-Signature")
	for _, secret := range []string{testSecret, sig, strings.TrimPrefix(sig, "sha256="), "url-token", "/hook"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %q:\n%s", secret, out)
		}
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	target := newReceiver(t, nil)
	rc := newReceiver(t, func(_ int, w http.ResponseWriter) {
		w.Header().Set("Location", target.URL)
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	store := newStore(t, t.TempDir())
	h := rc.hook()
	h.MaxAttempts = 1
	o := newOutbox(store, []config.Webhook{h}, nil)
	if err := o.Enqueue(context.Background(), config.EventRollback, nil); err != nil {
		t.Fatal(err)
	}
	run(t, o)
	waitFor(t, "the delivery to reach outbox-dead", func() bool { return len(storagetest.Keys(t, store, deadPrefix)) == 1 })
	if rc.count() != 1 || target.count() != 0 {
		t.Errorf("hook got %d requests, redirect target %d; want 1 and 0", rc.count(), target.count())
	}
}

func TestEnqueueSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	rc := newReceiver(t, nil)
	hooks := []config.Webhook{rc.hook()}
	first := newOutbox(newStore(t, dir), hooks, nil)
	if err := first.Enqueue(context.Background(), config.EventRollback, testPayload{N: 42}); err != nil {
		t.Fatal(err)
	}
	// first is dropped without ever running: a process that died right
	// after Enqueue returned.
	second := newOutbox(newStore(t, dir), hooks, nil)
	if n := pending(t, second); n != 1 {
		t.Fatalf("Pending after restart = %d, want 1", n)
	}
	run(t, second)
	waitFor(t, "an empty outbox", func() bool { return pending(t, second) == 0 })
	reqs := rc.requests()
	var data testPayload
	if len(reqs) != 1 || reqs[0].env.Event != config.EventRollback || json.Unmarshal(reqs[0].env.Data, &data) != nil || data.N != 42 {
		t.Errorf("requests after restart = %+v, want the one rollback with n=42", reqs)
	}
}

func TestReplicasDeliverEachEventOnce(t *testing.T) {
	dir := t.TempDir()
	rc := newReceiver(t, func(int, http.ResponseWriter) { time.Sleep(2 * time.Millisecond) })
	hooks := []config.Webhook{rc.hook()}
	// Two stores on one folder, as two processes would have; each replica
	// counts what it sends.
	var sent [2]atomic.Int32
	replica := func(i int) *Outbox {
		o := newOutbox(newStore(t, dir), hooks, nil)
		o.client = &http.Client{Transport: countingTransport{&sent[i]}}
		return o
	}
	a, b := replica(0), replica(1)
	const events = 20
	// Enqueued before either runs, so both find all of them at once and
	// race for every one.
	for i := range events {
		o := a
		if i%2 == 1 {
			o = b
		}
		if err := o.Enqueue(context.Background(), config.EventPromotion, testPayload{N: i}); err != nil {
			t.Fatal(err)
		}
	}
	run(t, a)
	run(t, b)
	waitFor(t, "every event and an empty outbox", func() bool {
		return pending(t, a) == 0 && len(rc.requests()) >= events
	})
	time.Sleep(100 * time.Millisecond) // let a late duplicate arrive, if any
	perID := map[string]int{}
	seenN := map[int]bool{}
	for _, r := range rc.requests() {
		perID[r.env.ID]++
		var p testPayload
		if err := json.Unmarshal(r.env.Data, &p); err != nil {
			t.Fatal(err)
		}
		seenN[p.N] = true
	}
	if len(perID) != events || len(seenN) != events {
		t.Errorf("%d distinct ids and %d distinct events arrived, want %d", len(perID), len(seenN), events)
	}
	dups := 0
	for _, n := range perID {
		dups += n - 1
	}
	t.Logf("%d requests (replica a sent %d, b %d), %d duplicates", len(rc.requests()), sent[0].Load(), sent[1].Load(), dups)
	if dups != 0 {
		t.Errorf("%d duplicate deliveries without any crash, want 0", dups)
	}
}

type countingTransport struct{ n *atomic.Int32 }

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// failStore fails writes after the first ok ones.
type failStore struct {
	storage.Store
	ok     int32
	writes atomic.Int32
}

func (f *failStore) fail() bool { return f.writes.Add(1) > f.ok }

func (f *failStore) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if f.fail() {
		return storage.Info{}, fmt.Errorf("test: put %s: %w", key, storage.ErrUnavailable)
	}
	return f.Store.Put(ctx, key, r, size)
}

func (f *failStore) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if f.fail() {
		return storage.Info{}, fmt.Errorf("test: put %s: %w", key, storage.ErrUnavailable)
	}
	return f.Store.PutIfAbsent(ctx, key, r, size)
}

func TestEnqueueReturnsStoreError(t *testing.T) {
	rc := newReceiver(t, nil)
	for _, ok := range []int32{0, 1} { // fail the first write; fail the second (the first is undone)
		t.Run(fmt.Sprint("after ", ok), func(t *testing.T) {
			inner := newStore(t, t.TempDir())
			o := newOutbox(&failStore{Store: inner, ok: ok}, []config.Webhook{rc.hook(), rc.hook()}, nil)
			err := o.Enqueue(context.Background(), config.EventPromotion, testPayload{N: 1})
			if !errors.Is(err, storage.ErrUnavailable) {
				t.Fatalf("Enqueue = %v, want storage.ErrUnavailable", err)
			}
			if ks := storagetest.Keys(t, inner, ""); len(ks) != 0 {
				t.Errorf("store holds %v after a failed Enqueue, want nothing", ks)
			}
		})
	}
}

func TestLiveLeaseIsRespectedAndExpiredTakenOver(t *testing.T) {
	rc := newReceiver(t, nil)
	store := newStore(t, t.TempDir())
	o := newOutbox(store, []config.Webhook{rc.hook()}, nil)
	if err := o.Enqueue(context.Background(), config.EventPromotion, nil); err != nil {
		t.Fatal(err)
	}
	key := storagetest.Keys(t, store, outboxPrefix)[0]
	// Another replica is sending it.
	d, etag := readDelivery(t, store, key)
	d.Owner, d.LeaseUntil = "other-replica", time.Now().Add(time.Hour)
	etag, err := o.replace(context.Background(), key, etag, d)
	if err != nil {
		t.Fatal(err)
	}
	run(t, o)
	time.Sleep(150 * time.Millisecond) // several poll intervals
	if n := rc.count(); n != 0 {
		t.Fatalf("a delivery under another replica's live lease was sent %d times", n)
	}
	// That replica crashed: its lease runs out.
	d.LeaseUntil = time.Now().Add(-time.Second)
	if _, err := o.replace(context.Background(), key, etag, d); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the expired lease to be taken over", func() bool { return rc.count() == 1 && pending(t, o) == 0 })
}

func TestStopReleasesLease(t *testing.T) {
	arrived := make(chan struct{}, 1)
	unblock := make(chan struct{})
	defer close(unblock)
	slow := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			arrived <- struct{}{}
			<-unblock // hang until the test ends: the sender must give up on its own
		}
	})
	dir := t.TempDir()
	hooks := []config.Webhook{slow.hook()}
	first := newOutbox(newStore(t, dir), hooks, nil)
	if err := first.Enqueue(context.Background(), config.EventPromotion, nil); err != nil {
		t.Fatal(err)
	}
	stop := run(t, first)
	<-arrived
	stop()
	store := newStore(t, dir)
	d, _ := readDelivery(t, store, storagetest.Keys(t, store, outboxPrefix)[0])
	if d.Owner != "" || !d.LeaseUntil.IsZero() || d.Attempts != 0 {
		t.Fatalf("after stopping mid-request: owner %q, lease %s, attempts %d; want released and no attempt counted", d.Owner, d.LeaseUntil, d.Attempts)
	}
	// A restarted process sends it at once, not after the lease would end.
	second := newOutbox(store, hooks, nil)
	run(t, second)
	waitFor(t, "delivery by the restarted process", func() bool { return slow.count() == 2 && pending(t, second) == 0 })
}

func TestHooksMatchedByURLAfterReconfiguration(t *testing.T) {
	kept := newReceiver(t, nil)
	removed := newReceiver(t, nil)
	dir := t.TempDir()
	old := newOutbox(newStore(t, dir), []config.Webhook{removed.hook(), kept.hook()}, nil)
	if err := old.Enqueue(context.Background(), config.EventPromotion, nil); err != nil {
		t.Fatal(err)
	}
	// Restarted with the first hook removed: the kept one moved to index 0.
	store := newStore(t, dir)
	o := newOutbox(store, []config.Webhook{kept.hook()}, nil)
	run(t, o)
	waitFor(t, "an empty outbox", func() bool { return pending(t, o) == 0 })
	if kept.count() != 1 || removed.count() != 0 {
		t.Errorf("kept hook got %d, removed hook %d; want 1 and 0", kept.count(), removed.count())
	}
	dead := storagetest.Keys(t, store, deadPrefix)
	if len(dead) != 1 {
		t.Fatalf("outbox-dead = %v, want the removed hook's delivery", dead)
	}
	if d, _ := readDelivery(t, store, dead[0]); d.Hook != 0 || !strings.Contains(d.LastError, "no configured webhook") {
		t.Errorf("dead delivery = %+v, want hook 0 with a reason", d)
	}
}

func TestKeysAreValidAndOldestFirst(t *testing.T) {
	store := newStore(t, t.TempDir())
	rc := newReceiver(t, nil)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	o := newOutbox(store, []config.Webhook{rc.hook()}, nil)
	o.opts.Now = func() time.Time { return now }
	for i := range 12 { // crosses a digit boundary in the stamp's last place
		now = now.Add(time.Duration(i) * time.Nanosecond * 9)
		if err := o.Enqueue(context.Background(), config.EventPromotion, testPayload{N: i}); err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range storagetest.Keys(t, store, outboxPrefix) {
		if !storage.ValidKey(k) || !storage.ValidKey(deadKey(k)) {
			t.Errorf("invalid key %q", k)
		}
		var p testPayload
		d, _ := readDelivery(t, store, k)
		if err := json.Unmarshal(d.Data, &p); err != nil || p.N != i {
			t.Errorf("key %d (%s) holds event %d, want %d", i, k, p.N, i)
		}
	}
}

// EnqueueOnce with an id and time already queued writes nothing more: a
// roll forward repeating a crashed promotion's steps queues one delivery.
func TestEnqueueOnceIsIdempotent(t *testing.T) {
	store := newStore(t, t.TempDir())
	o := New(store, Options{Hooks: []config.Webhook{{URL: "http://127.0.0.1:1/hook", Secret: "0123456789abcdef"}}})
	at := time.Now()
	for range 3 {
		if err := o.EnqueueOnce(context.Background(), "7fffffff-abc", at, config.EventPromotion, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := o.Pending(context.Background()); err != nil || n != 1 {
		t.Fatalf("Pending = %d, %v; want 1", n, err)
	}
	if err := o.EnqueueOnce(context.Background(), "../x", at, config.EventPromotion, nil); err == nil {
		t.Fatal("an id unusable in a key was accepted")
	}
}
