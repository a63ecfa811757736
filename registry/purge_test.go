package registry

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/slipway/slipway/storage"
)

func TestPurgeUploadsForgetsOnlyStaleSessions(t *testing.T) {
	// Purge removes sessions untouched for uploads.purge_after, which is
	// also the TTL of their ids (uploadid.go): a purged session's id is
	// always past it. Here the TTL is 2 s and the id is past it before the
	// purges, so the session is known only while its object exists.
	e := newEnvWith(t, t.TempDir(), Options{UploadTTL: 2 * time.Second})
	ctx := context.Background()
	stale := e.startUpload("purge")
	// Two chunks, so the session is stored (one chunk is not; its id's TTL
	// is its life: TestImplicitFirstSegment).
	wantStatus(t, e.do("PATCH", stale, []byte("some ")), http.StatusAccepted)
	wantStatus(t, e.do("PATCH", stale, []byte("bytes")), http.StatusAccepted)
	time.Sleep(3 * time.Second)
	// A multipart upload left incomplete by a dead process (on S3; here
	// a store that reports one).
	r := New(&staleUpload{Store: e.store, left: 1}, Options{})
	if s, m, err := r.PurgeUploads(ctx, time.Now().Add(-time.Hour)); err != nil || s != 0 || m != 0 {
		t.Fatalf("purge with a cutoff in the past: %d sessions, %d multipart, %v; want nothing purged", s, m, err)
	}
	wantStatus(t, e.do("GET", stale, nil), http.StatusNoContent)

	s, m, err := r.PurgeUploads(ctx, time.Now().Add(time.Hour))
	if err != nil || s != 1 || m != 1 {
		t.Fatalf("purge: %d sessions, %d multipart, %v; want 1 and 1", s, m, err)
	}
	wantError(t, e.do("GET", stale, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	wantError(t, e.do("PATCH", stale, []byte("more")), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	// Purging twice (another replica) is harmless.
	if s, m, err := r.PurgeUploads(ctx, time.Now().Add(time.Hour)); err != nil || s != 0 || m != 0 {
		t.Fatalf("second purge: %d, %d, %v; want nothing left", s, m, err)
	}
}

// staleUpload is a store with left incomplete multipart uploads, started
// an hour ago.
type staleUpload struct {
	storage.Store
	left int
}

func (s *staleUpload) AbortStaleMultipart(_ context.Context, prefix string, cutoff time.Time) (int, error) {
	if prefix != "data/" || !cutoff.After(time.Now().Add(-time.Hour)) {
		return 0, nil
	}
	n := s.left
	s.left = 0
	return n, nil
}
