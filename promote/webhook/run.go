package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"sync"
	"time"

	"github.com/slipway/slipway/storage"
)

const (
	// leaseMargin is added to the hook's timeout in a lease: it covers the
	// store writes around the request, so a lease never ends while its
	// owner is still working on the delivery.
	leaseMargin = 30 * time.Second
	// storeTimeout bounds the bookkeeping after a request, which runs even
	// when Run's context has ended (a delivered event must be deleted).
	storeTimeout = 10 * time.Second
	// minWait keeps a busy outbox from spinning on the store.
	minWait = 5 * time.Millisecond
)

// Run delivers due deliveries until ctx ends, then waits for the requests
// in flight. It wakes after every EnqueueOnce on this Outbox, when a retry is
// due, and every PollInterval to find deliveries other replicas enqueued
// or a crashed process left behind. Call it once per Outbox.
func (o *Outbox) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.nudge:
		case <-timer.C:
		}
		timer.Reset(o.pass(ctx, &wg))
	}
}

// pass starts the deliveries that are due and returns how long to sleep
// before the next pass: until the earliest retry or lease end it saw, at
// most PollInterval.
func (o *Outbox) pass(ctx context.Context, wg *sync.WaitGroup) time.Duration {
	now := o.opts.Now()
	wake := now.Add(o.opts.PollInterval)
	waiting := make(map[string]notDue, len(o.waiting))
	err := o.list(ctx, outboxPrefix, func(obj storage.Info) bool {
		if o.busy(obj.Key) {
			return true
		}
		// Unchanged since a pass found it not due: skip the read, which
		// matters when a dead receiver has a backlog.
		if w, ok := o.waiting[obj.Key]; ok && w.etag == obj.ETag && w.until.After(now) {
			waiting[obj.Key] = w
			wake = earliest(wake, w.until)
			return true
		}
		d, etag, raw, err := o.load(ctx, obj.Key)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return true // delivered meanwhile, by another replica
		case errors.Is(err, errCorrupt):
			o.corrupt(ctx, obj.Key, raw, err)
			return true
		case err != nil:
			if ctx.Err() != nil {
				return false
			}
			o.log.Warn("webhook: cannot read outbox", "key", obj.Key, "err", err)
			return true
		}
		// A live lease is respected even when it is this Outbox's own: it
		// is left behind only when recording an attempt failed, and
		// waiting for it to end is the backoff the store outage needs.
		until := d.Next
		if d.Owner != "" && d.LeaseUntil.After(until) {
			until = d.LeaseUntil
		}
		if until.After(now) {
			waiting[obj.Key] = notDue{etag: etag, until: until}
			wake = earliest(wake, until)
			return true
		}
		select {
		case o.slots <- struct{}{}:
		default:
			return false // all slots busy: a finishing delivery wakes Run
		}
		o.setBusy(obj.Key, true)
		wg.Go(func() {
			defer func() {
				o.setBusy(obj.Key, false)
				<-o.slots
				o.wake()
			}()
			o.deliver(ctx, obj.Key, etag, d)
		})
		return true
	})
	o.waiting = waiting
	if err != nil && ctx.Err() == nil {
		o.log.Warn("webhook: cannot list outbox", "err", err)
	}
	return max(wake.Sub(o.opts.Now()), minWait)
}

// notDue remembers that the outbox object at ETag etag is not due before
// until.
type notDue struct {
	etag  string
	until time.Time
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (o *Outbox) busy(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.inflight[key]
}

func (o *Outbox) setBusy(key string, busy bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if busy {
		o.inflight[key] = true
	} else {
		delete(o.inflight, key)
	}
}

// corrupt buries an outbox object that does not decode: it can never be
// sent, and left in place it would be read on every pass.
func (o *Outbox) corrupt(ctx context.Context, key string, raw []byte, cause error) {
	o.log.Error("webhook: undecodable delivery moved to "+deadPrefix, "key", key, "err", cause)
	if err := o.bury(ctx, key, raw); err != nil {
		o.log.Warn("webhook: cannot move undecodable delivery", "key", key, "err", err)
	}
}

// deliver claims one delivery, sends it and records the outcome. etag is
// the version d was read at: the claim fails if anyone changed it since.
func (o *Outbox) deliver(ctx context.Context, key, etag string, d *delivery) {
	h, ok := o.hook(d)
	if !ok {
		// The hook was removed from the configuration: nothing to send it
		// to. Buried, not dropped, in case the removal was a mistake.
		o.giveUp(ctx, key, etag, d, "no configured webhook has this URL any more")
		return
	}
	log := o.log.With("delivery", d.ID, "event", d.Event, "hook", d.Hook, "url", redact(h.URL))

	now := o.opts.Now()
	d.Owner, d.LeaseUntil = o.owner, now.Add(timeout(h)+leaseMargin)
	etag, err := o.replace(ctx, key, etag, d)
	switch {
	case errors.Is(err, storage.ErrPreconditionFailed):
		return // another replica claimed (or finished) it first
	case err != nil:
		if ctx.Err() == nil {
			log.Warn("webhook: cannot claim delivery", "err", err)
		}
		return
	}

	res := o.post(ctx, h, d)

	// Bookkeeping runs to completion even if Run is stopping: deleting a
	// delivered event avoids a needless resend.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	d.Owner, d.LeaseUntil = "", time.Time{}

	switch {
	case res.err == nil:
		if err := o.store.Delete(wctx, key); err != nil {
			log.Warn("webhook: delivered, but cannot remove it from the outbox; it will be sent again", "err", err)
			return
		}
		log.Debug("webhook: delivered", "status", res.status, "attempt", d.Attempts+1)
		return
	case ctx.Err() != nil:
		// Stopping: the request was cut short by us, not failed by the
		// receiver. Release the lease so the next process need not wait
		// for it, without counting an attempt.
		if _, err := o.replace(wctx, key, etag, d); err != nil && !errors.Is(err, storage.ErrPreconditionFailed) {
			log.Warn("webhook: cannot release delivery", "err", err)
		}
		return
	}

	d.Attempts++
	d.LastError = res.err.Error()
	limit := maxAttempts(h)
	if d.Attempts >= limit {
		o.giveUp(wctx, key, etag, d, "")
		return
	}
	wait := retryDelay(o.opts.BaseBackoff, d.Attempts, res.retryAfter)
	d.Next = o.opts.Now().Add(wait)
	if _, err := o.replace(wctx, key, etag, d); err != nil {
		log.Warn("webhook: cannot record failed attempt", "err", err)
		return
	}
	log.Warn("webhook: delivery failed, will retry", "err", d.LastError, "attempt", d.Attempts, "max_attempts", limit, "retry_in", wait.Round(time.Millisecond))
}

// giveUp moves a delivery to outbox-dead and says so at error level. The
// final state is first written in place, conditionally: that claims the
// delivery when no lease was taken, and loses to a replica that took over
// an expired lease.
func (o *Outbox) giveUp(ctx context.Context, key, etag string, d *delivery, reason string) {
	if reason != "" {
		d.LastError = reason
	}
	d.Owner, d.LeaseUntil = "", time.Time{}
	_, err := o.replace(ctx, key, etag, d)
	if errors.Is(err, storage.ErrPreconditionFailed) {
		return // another replica has it; it decides
	}
	if err == nil {
		var raw []byte
		if raw, err = json.Marshal(d); err == nil {
			err = o.bury(ctx, key, raw)
		}
	}
	attrs := []any{"delivery", d.ID, "event", d.Event, "hook", d.Hook, "attempts", d.Attempts, "last_error", d.LastError}
	if err != nil {
		o.log.Error("webhook: giving up on delivery, but cannot move it to "+deadPrefix, append(attrs, "key", key, "err", err)...)
		return
	}
	o.log.Error("webhook: gave up on delivery", append(attrs, "key", deadKey(key))...)
}

// redact keeps only a URL's scheme and host for logs: its credentials,
// path (Slack-style hooks) or query may hold a token.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparseable URL)"
	}
	return u.Scheme + "://" + u.Host
}
