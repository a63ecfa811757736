package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/slipway/slipway/storage"
)

// fail wraps err with the operation and key, mapping it to the storage
// errors callers act on. A done context is reported as itself: the caller
// gave up, S3 did not fail.
func (s *Store) fail(ctx context.Context, op, key string, err error) error {
	where := fmt.Sprintf("s3: %s %q", op, key)
	if key == "" {
		where = fmt.Sprintf("s3: %s (bucket %q)", op, s.bucket)
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", where, cerr)
	}
	if kind := classify(err); kind != nil {
		return fmt.Errorf("%s: %w: %w", where, kind, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}

// classify maps an S3 answer or a transport failure to a storage error,
// or nil when none fits.
func classify(err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return classifyResponse(resp)
	}
	var netErr net.Error
	switch {
	case errors.As(err, &netErr), // dial, timeouts, and the *url.Error of any failed round trip
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, context.DeadlineExceeded): // a transport timeout, not the caller's (see fail)
		return storage.ErrUnavailable
	}
	return nil
}

func classifyResponse(r minio.ErrorResponse) error {
	switch r.Code {
	case "NoSuchKey", "NoSuchUpload":
		return storage.ErrNotFound
	case "PreconditionFailed", "ConditionalRequestConflict", "InvalidPart", "InvalidPartOrder":
		return storage.ErrPreconditionFailed
	case "NoSuchBucket": // configuration gone wrong: the store cannot serve
		return storage.ErrUnavailable
	case "SlowDown", "SlowDownRead", "SlowDownWrite", "ServiceUnavailable", "RequestTimeout",
		"InternalError", "Throttling", "RequestLimitExceeded", "XMinioServerNotInitialized",
		"ClientDisconnected": // 499 from a MinIO shutting down mid-request

		return storage.ErrUnavailable
	}
	switch s := r.StatusCode; {
	case s == http.StatusNotFound:
		return storage.ErrNotFound
	case s == http.StatusPreconditionFailed:
		return storage.ErrPreconditionFailed
	case s >= 500, s == http.StatusTooManyRequests, s == http.StatusRequestTimeout,
		s == http.StatusUnauthorized, s == http.StatusForbidden: // refused: bad credentials or policy
		return storage.ErrUnavailable
	}
	return nil
}

// notApplied tells whether a failed request certainly changed nothing on
// the server, so that even a conditional write may be sent again: the
// connection was never made, or S3 answered that it is overloaded.
func notApplied(err error) bool {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch resp.Code {
		case "SlowDown", "SlowDownWrite", "ServiceUnavailable", "Throttling", "RequestLimitExceeded", "XMinioServerNotInitialized":
			return true
		}
		return resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests
	}
	var op *net.OpError
	var uerr *url.Error
	return (errors.As(err, &op) && op.Op == "dial") || errors.Is(err, syscall.ECONNREFUSED) ||
		(errors.As(err, &uerr) && errors.Is(uerr.Err, syscall.ECONNREFUSED))
}

// retryUnapplied runs a non-idempotent request (on the single-attempt
// client) up to 1+s.retries times, repeating it only after failures that
// notApplied vouches for, with the same capped, jittered backoff as
// minio-go's own retries. A request whose body is a stream cannot repeat.
func (s *Store) retryUnapplied(ctx context.Context, repeatable bool, do func() error) error {
	for attempt := 0; ; attempt++ {
		err := do()
		if err == nil || !repeatable || attempt >= s.retries || !notApplied(err) {
			return err
		}
		wait := min(100*time.Millisecond<<attempt, time.Second)
		wait = wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
