package s3

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/slipway/slipway/storage"
)

// probePrefix holds the object of the start-up probe (checkConditional),
// under Root. No registry key starts with '_' (registry/paths.go), so the
// probe cannot touch or be mistaken for registry data.
const probePrefix = "_slipway/probe/"

// checkConditional proves, on an object of its own, that the endpoint
// honours the two conditional PUTs every compare-and-set in Slipway rests
// on: If-None-Match: * must refuse to replace an object, and If-Match must
// refuse a stale ETag and accept the current one. Some S3-compatible
// servers ignore these headers and answer 200: every race would then be
// silently lost (two pushes both "winning" a tag, a session committed
// twice), so New refuses such an endpoint instead of returning a store.
// There is no switch to skip this for a store that writes: nothing in
// Slipway is correct without these conditions. Only NewReadOnly, whose
// store writes nothing, skips it (it must not write into a bucket it only
// reads).
func (s *Store) checkConditional(ctx context.Context) (err error) {
	key := probePrefix + rand.Text()
	defer func() {
		// Also after a failure, and even when ctx is done: the probe must
		// not outlive the check.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if derr := s.Delete(dctx, key); derr != nil && err == nil {
			err = fmt.Errorf("s3: deleting the conditional-write probe: %w", derr)
		}
	}()
	const absent, match = "If-None-Match: *", "If-Match"

	v1, err := s.PutIfAbsent(ctx, key, strings.NewReader("1"), 1)
	if err != nil {
		return s.probeFailed(absent, "a PUT of a new object", err)
	}
	switch _, err := s.PutIfAbsent(ctx, key, strings.NewReader("2"), 1); {
	case err == nil:
		return s.unsupported(absent, "replaced an existing object")
	case !errors.Is(err, storage.ErrPreconditionFailed):
		return s.probeFailed(absent, "a PUT over an existing object", err)
	}

	stale := strings.Repeat("0", 32) // an MD5-shaped ETag no content of ours has
	if v1.ETag == stale {
		stale = strings.Repeat("1", 32)
	}
	switch _, err := s.PutIfMatch(ctx, key, strings.NewReader("3"), 1, stale); {
	case err == nil:
		return s.unsupported(match, "replaced an object whose ETag did not match")
	case !errors.Is(err, storage.ErrPreconditionFailed):
		return s.probeFailed(match, "a PUT with a stale ETag", err)
	}
	if _, err := s.PutIfMatch(ctx, key, strings.NewReader("4"), 1, v1.ETag); err != nil {
		return s.probeFailed(match, fmt.Sprintf("a PUT with the current ETag %q (as the object's PUT answered)", v1.ETag), err)
	}
	return nil
}

// unsupported reports an endpoint that ignored a precondition.
func (s *Store) unsupported(header, what string) error {
	return fmt.Errorf("s3: the endpoint %s ignores %q on PUT (conditional writes): it %s; "+
		"Slipway needs it for compare-and-set and refuses to run on this endpoint",
		s.client.EndpointURL().Host, header, what)
}

// probeFailed reports a probe request that did not answer as S3 does. A
// lost precondition where the write should win, or 501 Not Implemented,
// means the endpoint does not implement the condition as S3 does;
// anything else (unreachable, refused) keeps its cause, and its storage
// error.
func (s *Store) probeFailed(header, what string, err error) error {
	var resp minio.ErrorResponse
	if errors.Is(err, storage.ErrPreconditionFailed) || (errors.As(err, &resp) && resp.StatusCode == http.StatusNotImplemented) {
		return fmt.Errorf("s3: the endpoint %s does not implement %q on PUT (conditional writes) as S3 does: it refused %s (%v); "+
			"Slipway needs it for compare-and-set and refuses to run on this endpoint",
			s.client.EndpointURL().Host, header, what, err)
	}
	return fmt.Errorf("s3: checking that the endpoint %s honours %q on PUT (conditional writes), %s failed: %w",
		s.client.EndpointURL().Host, header, what, err)
}
