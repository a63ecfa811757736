// Package webhook delivers promotion events to the configured webhooks
// through an outbox kept in the object store, so that an event survives a
// restart, a crash or a receiver that is down for hours.
//
// EnqueueOnce writes one small JSON object per (event, hook) under "outbox/"
// before it returns; Run, on every replica, sends what is due and deletes
// each object once its receiver answered 2xx. Failures are retried with
// exponential backoff; after the hook's MaxAttempts the object is moved to
// "outbox-dead/", where an operator can inspect it.
//
// The contract is at-least-once: a replica that crashes after the receiver
// accepted a delivery but before deleting it sends it again later, with the
// same X-Slipway-Delivery id, so receivers that must not act twice dedupe
// on that id. Deliveries are not ordered: receivers order by the "at"
// field. In the normal case (no crash, no store outage longer than a
// lease) no delivery is sent twice, even with several replicas: each one
// claims a delivery with a conditional write before sending it.
package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/storage"
)

const (
	defaultPollInterval = 2 * time.Second
	defaultBaseBackoff  = time.Second
	defaultTimeout      = 10 * time.Second
	defaultMaxAttempts  = 10
	// maxBackoff caps the wait between attempts, Retry-After included, so
	// a receiver asking for a day still hears from us within minutes.
	maxBackoff = 5 * time.Minute
	// maxPayload keeps outbox objects small: they are read on every poll.
	maxPayload = 1 << 20
	// maxInFlight bounds the deliveries one Outbox sends at once, so a
	// backlog after an outage does not open hundreds of connections.
	maxInFlight = 16
)

// Options configure an Outbox.
type Options struct {
	Hooks  []config.Webhook
	Logger *slog.Logger
	// Client sends the requests; nil: a client that follows no redirects
	// (a redirect is a failed attempt, not a reason to send the signed
	// body somewhere else).
	Client *http.Client
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
	// PollInterval is how often Run looks for deliveries it was not told
	// about (other replicas', crashed processes'); 0: 2s.
	PollInterval time.Duration
	// BaseBackoff is the wait after the first failed attempt, doubled per
	// further attempt (capped at 5m, jittered); 0: 1s.
	BaseBackoff time.Duration
}

// Outbox queues webhook deliveries in the store and sends them.
type Outbox struct {
	store  storage.Store
	opts   Options
	log    *slog.Logger
	client *http.Client
	// owner names this Outbox in the leases it writes.
	owner string
	// nudge wakes Run after an EnqueueOnce or a finished delivery.
	nudge chan struct{}
	// slots bounds concurrent deliveries (see maxInFlight).
	slots chan struct{}

	mu       sync.Mutex
	inflight map[string]bool // outbox keys this Outbox is delivering

	// waiting caches, between passes, the deliveries found not due (only
	// Run's goroutine uses it).
	waiting map[string]notDue
}

// New returns an Outbox on store. Call Run (once) to deliver.
func New(store storage.Store, opts Options) *Outbox {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = defaultPollInterval
	}
	if opts.BaseBackoff <= 0 {
		opts.BaseBackoff = defaultBaseBackoff
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Outbox{
		store:    store,
		opts:     opts,
		log:      opts.Logger,
		client:   client,
		owner:    randomHex(8),
		nudge:    make(chan struct{}, 1),
		slots:    make(chan struct{}, maxInFlight),
		inflight: map[string]bool{},
	}
}

// EnqueueOnce records one delivery of event per hook that wants it (its
// Events name event, or are empty), under the event's own id and time (a
// ledger record's), and returns once every record is written: an event
// EnqueueOnce accepted survives a restart. payload becomes the "data" field
// of the body. If a write fails, EnqueueOnce removes the records it already
// wrote (best effort) and returns the error, so the caller may retry
// without doubling deliveries. Queuing the same id and time again writes
// nothing, so a caller that repeats a crashed writer's steps does not double
// the deliveries still pending. (One already delivered is sent again, with
// the same delivery id: receivers dedupe on X-Slipway-Delivery.)
func (o *Outbox) EnqueueOnce(ctx context.Context, id string, at time.Time, event string, payload any) error {
	if event == "" {
		return errors.New("webhook: empty event")
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("webhook: encode %s payload: %w", event, err)
	}
	if len(data) > maxPayload {
		return fmt.Errorf("webhook: %s payload is %d bytes, more than %d", event, len(data), maxPayload)
	}
	if !validEventID(id) {
		return fmt.Errorf("webhook: invalid event id %q", id)
	}
	now := at.UTC()
	var written []string
	for i, h := range o.opts.Hooks {
		if len(h.Events) > 0 && !slices.Contains(h.Events, event) {
			continue
		}
		d := delivery{ID: id, Event: event, Hook: i, URLHash: urlHash(h.URL), At: now, Data: data, Next: now}
		key := outboxKey(now, id, i)
		b, err := json.Marshal(d)
		if err == nil {
			_, err = o.store.PutIfAbsent(ctx, key, bytes.NewReader(b), int64(len(b)))
			if errors.Is(err, storage.ErrPreconditionFailed) {
				continue // queued before
			}
		}
		if err != nil {
			o.unwrite(ctx, written)
			return fmt.Errorf("webhook: enqueue %s for hook %d: %w", event, i, err)
		}
		written = append(written, key)
	}
	if len(written) > 0 {
		o.wake()
	}
	return nil
}

// unwrite deletes the records of a failed EnqueueOnce, even if ctx has ended:
// they would otherwise be delivered for an event the caller was told failed.
func (o *Outbox) unwrite(ctx context.Context, keys []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, k := range keys {
		if err := o.store.Delete(ctx, k); err != nil {
			o.log.Warn("webhook: cannot remove the record of a failed enqueue; it will be delivered", "key", k, "err", err)
		}
	}
}

// list calls fn for every object under prefix, oldest first, until fn
// returns false.
func (o *Outbox) list(ctx context.Context, prefix string, fn func(storage.Info) bool) error {
	startAfter := ""
	for {
		page, err := o.store.List(ctx, storage.ListOptions{Prefix: prefix, StartAfter: startAfter})
		if err != nil {
			return err
		}
		for _, obj := range page.Objects {
			startAfter = obj.Key
			if !fn(obj) {
				return nil
			}
		}
		if !page.Truncated || len(page.Objects) == 0 {
			return nil
		}
	}
}

// wake nudges Run without blocking: one pending nudge is enough.
func (o *Outbox) wake() {
	select {
	case o.nudge <- struct{}{}:
	default:
	}
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

// validEventID keeps ids usable inside storage keys.
func validEventID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}
