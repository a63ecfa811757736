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
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/slipway/slipway/config"
)

// Request headers.
const (
	headerEvent     = "X-Slipway-Event"
	headerDelivery  = "X-Slipway-Delivery"
	headerSignature = "X-Slipway-Signature"
	userAgent       = "slipway-webhook"
)

// envelope is the request body.
type envelope struct {
	ID    string          `json:"id"`
	Event string          `json:"event"`
	At    time.Time       `json:"at"`
	Data  json.RawMessage `json:"data"`
}

// result is the outcome of one attempt; err is nil for a 2xx answer.
type result struct {
	status     int
	retryAfter time.Duration // asked for by a 429 or 503
	err        error
}

// body is what d is sent as. It depends only on d's event fields, so every
// attempt sends (and signs) the same bytes.
func body(d *delivery) ([]byte, error) {
	return json.Marshal(envelope{ID: d.ID, Event: d.Event, At: d.At, Data: d.Data})
}

// sign is the X-Slipway-Signature value: the HMAC-SHA256 of the exact body.
func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// post sends d to h once, within h's timeout.
func (o *Outbox) post(ctx context.Context, h config.Webhook, d *delivery) result {
	b, err := body(d)
	if err != nil {
		return result{err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout(h))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(b))
	if err != nil {
		return result{err: errors.New("bad webhook URL")} // the URL may hold a token: not in the message
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(headerEvent, d.Event)
	req.Header.Set(headerDelivery, d.ID)
	req.Header.Set(headerSignature, sign(h.Secret, b))
	resp, err := o.client.Do(req)
	if err != nil {
		// url.Error repeats the full URL; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return result{err: err}
	}
	// Drain a little so the connection can be reused; receivers' answers
	// are not read otherwise.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return result{status: resp.StatusCode}
	}
	res := result{status: resp.StatusCode, err: fmt.Errorf("receiver answered %s", resp.Status)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		res.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), o.opts.Now())
	}
	return res
}

// parseRetryAfter reads a Retry-After value (seconds, or an HTTP date); 0
// if absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		if s > int64(maxBackoff/time.Second) {
			return maxBackoff
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxBackoff)
	}
	return 0
}

// retryDelay is the wait after the given number of failed attempts: base
// doubled per attempt after the first, capped at maxBackoff, jittered into
// its upper half so replicas retrying together spread out; never less than
// what the receiver asked for with Retry-After (itself capped).
func retryDelay(base time.Duration, attempts int, retryAfter time.Duration) time.Duration {
	d := base
	for i := 1; i < attempts && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	d = d/2 + rand.N(d/2+1)
	return min(max(d, retryAfter), maxBackoff)
}
