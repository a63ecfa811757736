package storage

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// BatchDeleter is implemented by backends that delete many objects in
// one request (S3's DeleteObjects takes up to 1,000 keys). DeleteBatch
// deletes every key as Delete would (a missing key is no error), in any
// order and as many requests as the backend needs; on error some keys
// may be deleted and others not, which callers treat like a crash: every
// deletion they batch must be one they could repeat.
//
// Wrappers (storage.Wrapped) do not forward the wrapped store's on
// purpose: a wrapper that watches deletes (a test's pause store, the tag
// journal) would be bypassed. A wrapper may offer its own (storage/pace
// does: one bounded request), which Wrapped keeps.
type BatchDeleter interface {
	DeleteBatch(ctx context.Context, keys []string) error
}

// DeleteAll deletes keys from s: with s's BatchDeleter when it has one,
// else one Delete per key, at most concurrency at once.
func DeleteAll(ctx context.Context, s Store, keys []string, concurrency int) error {
	if len(keys) == 0 {
		return nil
	}
	if b, ok := s.(BatchDeleter); ok {
		return b.DeleteBatch(ctx, keys)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for _, k := range keys {
		g.Go(func() error { return s.Delete(gctx, k) })
	}
	return g.Wait()
}
