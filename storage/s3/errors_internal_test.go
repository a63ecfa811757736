package s3

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/slipway/slipway/storage"
)

func TestClassify(t *testing.T) {
	refused := &url.Error{Op: "Put", URL: "http://x/b/k", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	reset := &url.Error{Op: "Get", URL: "http://x/b/k", Err: &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}}
	resp := func(status int, code string) error { return minio.ErrorResponse{StatusCode: status, Code: code} }
	for _, tc := range []struct {
		err        error
		want       error
		notApplied bool
	}{
		{resp(404, "NoSuchKey"), storage.ErrNotFound, false},
		{resp(404, "NoSuchUpload"), storage.ErrNotFound, false},
		{resp(404, "NoSuchBucket"), storage.ErrUnavailable, false},
		{resp(412, "PreconditionFailed"), storage.ErrPreconditionFailed, false},
		{resp(409, "ConditionalRequestConflict"), storage.ErrPreconditionFailed, false},
		{resp(400, "InvalidPart"), storage.ErrPreconditionFailed, false},
		{resp(503, "SlowDown"), storage.ErrUnavailable, true},
		{resp(503, "503 Service Unavailable"), storage.ErrUnavailable, true},
		{resp(500, "InternalError"), storage.ErrUnavailable, false}, // may have been applied
		{resp(403, "AccessDenied"), storage.ErrUnavailable, false},
		{resp(400, "EntityTooSmall"), nil, false},
		{refused, storage.ErrUnavailable, true},
		{reset, storage.ErrUnavailable, false}, // the request may have arrived
		{fmt.Errorf("wrapped: %w", refused), storage.ErrUnavailable, true},
		{errors.New("something else"), nil, false},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
		if got := notApplied(tc.err); got != tc.notApplied {
			t.Errorf("notApplied(%v) = %v, want %v", tc.err, got, tc.notApplied)
		}
	}
}
