// Package storagetest is the conformance suite every storage.Store backend
// must pass. A backend test calls Run with a factory that returns a fresh,
// empty store per subtest; RunTwoProcess adds races between two processes
// sharing one store.
//
// The suite only relies on the storage.Store contract, so it also runs
// against S3-compatible services: replaced objects always get different
// content (S3 ETags hash content). Its large bodies (LargeSize) span more
// than two parts of 5 MiB, S3's smallest part size: a backend that cuts
// large writes into parts runs the suite with that part size, so that
// every write path (one request, several parts, size known or not) is
// covered.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/slipway/slipway/storage"
)

// Run runs every conformance test as a subtest. newStore must return an
// empty store that is not shared with other subtests.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"GetStatMissing", testGetStatMissing},
		{"PutGet", testPutGet},
		{"Ranges", testRanges},
		{"UnknownSize", testUnknownSize},
		{"ShortBody", testShortBody},
		{"ETagChangesOnReplace", testETagChanges},
		{"Delete", testDelete},
		{"DeleteAll", testDeleteAll},
		{"InvalidKeys", testInvalidKeys},
		{"CancelledWrite", testCancelledWrite},
		{"FailingReader", testFailingReader},
		{"PutAtomicUnderReaders", testPutAtomic},
		{"PutIfAbsent", testPutIfAbsent},
		{"PutIfAbsentRace", testPutIfAbsentRace},
		{"PutIfMatch", testPutIfMatch},
		{"PutIfMatchCounter", testPutIfMatchCounter},
		{"ListOrder", testListOrder},
		{"ListOptions", testListOptions},
		{"ListPagination", testListPagination},
		{"LargePut", testLargePut},
		{"LargePutIfAbsent", testLargePutIfAbsent},
		{"LargePutIfMatch", testLargePutIfMatch},
		{"LargeCancelledWrite", testLargeCancelledWrite},
		{"LargeFailingReader", testLargeFailingReader},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// put writes data at key or fails the test.
func put(t testing.TB, s storage.Store, key, data string) storage.Info {
	t.Helper()
	info, err := s.Put(t.Context(), key, strings.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	if info.Size != int64(len(data)) || info.ETag == "" {
		t.Fatalf("Put(%q) = %+v, want size %d and an ETag", key, info, len(data))
	}
	return info
}

// get reads a whole object or range, returning content and Info.
func get(ctx context.Context, s storage.Store, key string, opts storage.GetOptions) ([]byte, storage.Info, error) {
	rc, info, err := s.Get(ctx, key, opts)
	if err != nil {
		return nil, info, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return b, info, err
}

// mustRead returns key's content or fails the test.
func mustRead(t testing.TB, s storage.Store, key string) (string, storage.Info) {
	t.Helper()
	b, info, err := get(t.Context(), s, key, storage.GetOptions{})
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return string(b), info
}

// wantContent fails the test unless key holds exactly want.
func wantContent(t testing.TB, s storage.Store, key, want string) {
	t.Helper()
	if got, _ := mustRead(t, s, key); got != want {
		t.Fatalf("Get(%q) = %q, want %q", key, clip(got), clip(want))
	}
}

// wantMissing fails the test unless Stat and Get report ErrNotFound.
func wantMissing(t testing.TB, s storage.Store, key string) {
	t.Helper()
	if _, err := s.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat(%q) = %v, want ErrNotFound", key, err)
	}
	if _, _, err := get(t.Context(), s, key, storage.GetOptions{}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get(%q) = %v, want ErrNotFound", key, err)
	}
}

// wantErr fails the test unless errors.Is(err, want).
func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v, want %v", what, err, want)
	}
}

// clip shortens long contents in failure messages.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// pattern returns n deterministic bytes that differ per seed.
func pattern(seed byte, n int) []byte {
	b := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), n/36+1)[:n]
	for i := range b {
		b[i] ^= seed
	}
	return b
}

// onlyReader hides any Len/Size/Seek methods, as a streamed request body
// of unknown length would.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// Keys lists every key under prefix, following pages, for tests that check
// what a store holds.
func Keys(t testing.TB, s storage.Store, prefix string) []string {
	t.Helper()
	var out []string
	after := ""
	for {
		page, err := s.List(context.Background(), storage.ListOptions{Prefix: prefix, StartAfter: after})
		if err != nil {
			t.Fatalf("list %q: %v", prefix, err)
		}
		for _, o := range page.Objects {
			out = append(out, o.Key)
			after = o.Key
		}
		if !page.Truncated || len(page.Objects) == 0 {
			return out
		}
	}
}
