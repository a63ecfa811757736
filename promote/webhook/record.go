package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/storage"
)

const (
	outboxPrefix = "outbox/"
	deadPrefix   = "outbox-dead/"
	// maxRecord bounds what is read back: a payload plus bookkeeping.
	maxRecord = 2*maxPayload + 64<<10
)

// delivery is one outbox object: one event for one hook.
type delivery struct {
	// ID names the event; it is sent as X-Slipway-Delivery and in the
	// body, the same on every attempt, so receivers can dedupe.
	ID    string `json:"id"`
	Event string `json:"event"`
	// Hook is the index in Options.Hooks when enqueued; URLHash checks it
	// still names the same receiver after a configuration change.
	Hook    int             `json:"hook"`
	URLHash string          `json:"url_hash"`
	At      time.Time       `json:"at"`
	Data    json.RawMessage `json:"data"`

	Attempts int       `json:"attempts"`
	Next     time.Time `json:"next"` // not before
	// LastError says why the last attempt failed (for outbox-dead).
	LastError string `json:"last_error,omitempty"`

	// Owner holds a lease on the delivery until LeaseUntil: it is sending
	// it, and other replicas keep away.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
}

// outboxKey orders keys by enqueue time, so List returns the oldest first:
// a zero-padded nanosecond stamp, then the event id (random) and the hook.
func outboxKey(at time.Time, id string, hook int) string {
	return fmt.Sprintf("%s%020d-%s-%d", outboxPrefix, at.UnixNano(), id, hook)
}

// deadKey is where a given-up delivery goes, under the same name.
func deadKey(key string) string { return deadPrefix + strings.TrimPrefix(key, outboxPrefix) }

// urlHash identifies a hook's receiver without storing its URL, which may
// carry a token.
func urlHash(u string) string {
	h := sha256.Sum256([]byte(u))
	return hex.EncodeToString(h[:8])
}

// hook finds the configured hook a delivery is for: by index, or, if the
// hooks were reordered since, by URL. ok is false if none matches.
func (o *Outbox) hook(d *delivery) (h config.Webhook, ok bool) {
	if d.Hook >= 0 && d.Hook < len(o.opts.Hooks) && urlHash(o.opts.Hooks[d.Hook].URL) == d.URLHash {
		return o.opts.Hooks[d.Hook], true
	}
	for _, h := range o.opts.Hooks {
		if urlHash(h.URL) == d.URLHash {
			return h, true
		}
	}
	return config.Webhook{}, false
}

func timeout(h config.Webhook) time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return defaultTimeout
}

func maxAttempts(h config.Webhook) int {
	if h.MaxAttempts > 0 {
		return h.MaxAttempts
	}
	return defaultMaxAttempts
}

// errCorrupt marks an outbox object that cannot be a delivery.
var errCorrupt = errors.New("webhook: corrupt outbox object")

// load reads a delivery and the ETag to replace it with. raw is the stored
// bytes, returned with errCorrupt too.
func (o *Outbox) load(ctx context.Context, key string) (d *delivery, etag string, raw []byte, err error) {
	r, info, err := o.store.Get(ctx, key, storage.GetOptions{})
	if err != nil {
		return nil, "", nil, err
	}
	defer r.Close()
	raw, err = io.ReadAll(io.LimitReader(r, maxRecord+1))
	if err != nil {
		return nil, "", nil, err
	}
	if len(raw) > maxRecord {
		return nil, info.ETag, raw[:0], fmt.Errorf("%w: %s is larger than %d bytes", errCorrupt, key, maxRecord)
	}
	d = new(delivery)
	if err := json.Unmarshal(raw, d); err != nil {
		return nil, info.ETag, raw, fmt.Errorf("%w: %s: %v", errCorrupt, key, err)
	}
	return d, info.ETag, raw, nil
}

// replace writes d over key if key still has etag, returning the new ETag.
func (o *Outbox) replace(ctx context.Context, key, etag string, d *delivery) (string, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return "", err
	}
	info, err := o.store.PutIfMatch(ctx, key, bytes.NewReader(b), int64(len(b)), etag)
	return info.ETag, err
}

// bury moves a delivery to outbox-dead: written there first, then removed
// from the outbox, so a crash in between leaves a copy in both (the outbox
// one is tried once more when its lease ends) rather than in neither.
func (o *Outbox) bury(ctx context.Context, key string, raw []byte) error {
	if _, err := o.store.Put(ctx, deadKey(key), bytes.NewReader(raw), int64(len(raw))); err != nil {
		return err
	}
	return o.store.Delete(ctx, key)
}
