package storagetest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/slipway/slipway/storage"
)

// LargeSize is the size of the suite's large bodies: more than two parts
// of 5 MiB, and not a multiple of any part size.
const LargeSize = 2*(5<<20) + 12345

// bodyKinds are the three kinds of body a write may get: seekable with
// its size, a stream with its size, and a stream of unknown size.
var bodyKinds = []struct {
	name string
	body func(data []byte) (io.Reader, int64)
}{
	{"seekable", func(d []byte) (io.Reader, int64) { return bytes.NewReader(d), int64(len(d)) }},
	{"stream", func(d []byte) (io.Reader, int64) { return onlyReader{bytes.NewReader(d)}, int64(len(d)) }},
	{"unknown-size", func(d []byte) (io.Reader, int64) { return onlyReader{bytes.NewReader(d)}, -1 }},
}

// Large bodies, of known or unknown size, are stored whole, with the Info
// Stat reports, and read back across part boundaries.
func testLargePut(t *testing.T, s storage.Store) {
	for i, b := range bodyKinds {
		data := pattern(byte(10+i), LargeSize) // each write its own content
		r, size := b.body(data)
		info, err := s.Put(t.Context(), "large", r, size)
		if err != nil || info.Size != LargeSize || info.ETag == "" {
			t.Fatalf("Put(%s) = %+v, %v; want size %d and an ETag", b.name, info, err, LargeSize)
		}
		got, ginfo := mustRead(t, s, "large")
		if got != string(data) || ginfo.ETag != info.ETag || ginfo.Size != LargeSize {
			t.Fatalf("Put(%s): read back %d bytes (%+v), want %d (ETag %q)", b.name, len(got), ginfo, LargeSize, info.ETag)
		}
		if sinfo, err := s.Stat(t.Context(), "large"); err != nil || sinfo.ETag != info.ETag {
			t.Fatalf("Stat after Put(%s) = %+v, %v; want ETag %q", b.name, sinfo, err, info.ETag)
		}
		at := int64(5<<20 - 10)
		part, _, err := get(t.Context(), s, "large", storage.GetOptions{Offset: at, Length: 20})
		if err != nil || !bytes.Equal(part, data[at:at+20]) {
			t.Fatalf("Get of 20 bytes at %d after Put(%s) = %q, %v", at, b.name, part, err)
		}
	}
}

// PutIfAbsent of a large body loses to any object at the key, writing
// nothing, and wins alone on a free key.
func testLargePutIfAbsent(t *testing.T, s storage.Store) {
	put(t, s, "taken", "small")
	for _, b := range bodyKinds {
		r, size := b.body(pattern(20, LargeSize))
		_, err := s.PutIfAbsent(t.Context(), "taken", r, size)
		wantErr(t, "PutIfAbsent(taken, "+b.name+")", err, storage.ErrPreconditionFailed)
		wantContent(t, s, "taken", "small")
	}
	for _, b := range bodyKinds {
		key := "free/" + b.name
		r, size := b.body(pattern(21, LargeSize))
		info, err := s.PutIfAbsent(t.Context(), key, r, size)
		if err != nil || info.Size != LargeSize {
			t.Fatalf("PutIfAbsent(free, %s) = %+v, %v", b.name, info, err)
		}
		_, err = s.PutIfAbsent(t.Context(), key, bytes.NewReader(pattern(22, LargeSize)), LargeSize)
		wantErr(t, "PutIfAbsent again ("+b.name+")", err, storage.ErrPreconditionFailed)
		wantContent(t, s, key, string(pattern(21, LargeSize)))
	}
}

// PutIfMatch of a large body: a stale ETag or a missing object loses, the
// current ETag wins.
func testLargePutIfMatch(t *testing.T, s storage.Store) {
	for i, b := range bodyKinds {
		r, size := b.body(pattern(30, LargeSize))
		_, err := s.PutIfMatch(t.Context(), "missing", r, size, "nope")
		wantErr(t, "PutIfMatch(missing, "+b.name+")", err, storage.ErrPreconditionFailed)
		wantMissing(t, s, "missing")

		v1 := put(t, s, "k", "v1")
		data := pattern(byte(31+i), LargeSize)
		r, size = b.body(data)
		v2, err := s.PutIfMatch(t.Context(), "k", r, size, v1.ETag)
		if err != nil || v2.ETag == v1.ETag {
			t.Fatalf("PutIfMatch(current, %s) = %+v, %v", b.name, v2, err)
		}
		r, size = b.body(pattern(40, LargeSize))
		_, err = s.PutIfMatch(t.Context(), "k", r, size, v1.ETag)
		wantErr(t, "PutIfMatch(stale, "+b.name+")", err, storage.ErrPreconditionFailed)
		wantContent(t, s, "k", string(data))
	}
}

// Large writes cut after their first part (a cancelled request, a broken
// body) fail and leave the old object, or nothing, as it was.
func testLargeCancelledWrite(t *testing.T, s storage.Store) {
	testInterruptedAt(t, s, LargeSize, 6<<20, func(cancel context.CancelFunc) func() error {
		return func() error { cancel(); return nil }
	})
}

func testLargeFailingReader(t *testing.T, s storage.Store) {
	testInterruptedAt(t, s, LargeSize, 6<<20, func(context.CancelFunc) func() error {
		return func() error { return errBody }
	})
}
