package registry

import (
	"context"
	"time"

	"github.com/slipway/slipway/storage"
)

// PurgeUploads forgets upload sessions untouched since before cutoff, and
// aborts multipart uploads of blob data that a dead process left
// incomplete, where the store can find them. Several replicas may purge at
// once: every step is idempotent. It returns how many sessions and
// multipart uploads it removed.
//
// The segments a purged session wrote are left to garbage collection, on
// purpose: a PUT that loaded the session just before the purge may still be
// committing a descriptor that names them, and deleting them here would
// break that blob. (An incomplete multipart upload, by contrast, is never
// named by anything.) The exception is a cancelled session's implicit first
// segment (firstSegmentKey) that the cancel could not delete yet: the id
// has expired, so no PUT can commit it any more, and it goes unless the
// blob of its digest names it.
func (r *Registry) PurgeUploads(ctx context.Context, cutoff time.Time) (sessions, multiparts int, err error) {
	startAfter := ""
	for {
		page, err := r.store.List(ctx, storage.ListOptions{Prefix: "uploads/", StartAfter: startAfter})
		if err != nil {
			return sessions, multiparts, err
		}
		for _, o := range page.Objects {
			startAfter = o.Key
			if !o.ModTime.Before(cutoff) {
				continue
			}
			r.purgeCancelledSegments(ctx, o.Key)
			if err := r.store.Delete(ctx, o.Key); err != nil {
				return sessions, multiparts, err
			}
			sessions++
		}
		if !page.Truncated || len(page.Objects) == 0 {
			break
		}
	}
	if a, ok := r.store.(storage.StaleMultipartAborter); ok {
		multiparts, err = a.AbortStaleMultipart(ctx, "data/", cutoff)
	}
	return sessions, multiparts, err
}

// purgeCancelledSegments deletes what a cancelled session still lists (see
// uploads.drop). Errors leave the segment to garbage collection.
func (r *Registry) purgeCancelledSegments(ctx context.Context, key string) {
	b, _, err := r.meta.readSmall(ctx, key, 4<<20)
	if err != nil {
		return
	}
	s, err := decodeSession(b, key, true)
	if err != nil || s.state != sessionCancelled {
		return
	}
	r.meta.deleteSegments(ctx, s.segs, true)
}
