package s3

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
	"testing"
	"testing/iotest"

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
		{resp(499, "ClientDisconnected"), storage.ErrUnavailable, false},
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

// TestReadErrors: a body cut while it streams (the store went away) is
// storage.ErrUnavailable, still io.ErrUnexpectedEOF underneath; the normal
// end is io.EOF itself, and errors that say nothing about the store pass
// unchanged.
func TestReadErrors(t *testing.T) {
	other := errors.New("something else")
	for _, tc := range []struct {
		err, want error
	}{
		{io.ErrUnexpectedEOF, storage.ErrUnavailable},
		{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, storage.ErrUnavailable},
		{io.EOF, io.EOF},
		{other, other},
	} {
		r := &readErrors{ReadCloser: io.NopCloser(iotest.ErrReader(tc.err)), key: "data/ab/abc"}
		_, err := r.Read(make([]byte, 8))
		if !errors.Is(err, tc.want) || !errors.Is(err, tc.err) {
			t.Errorf("reading a body that fails with %v: %v, want %v", tc.err, err, tc.want)
		}
		if tc.err == io.EOF && err != io.EOF {
			t.Errorf("the end of a body is %#v, want io.EOF itself (callers compare with ==)", err)
		}
	}
}
