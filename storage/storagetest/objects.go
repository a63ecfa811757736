package storagetest

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/slipway/slipway/storage"
)

func testGetStatMissing(t *testing.T, s storage.Store) {
	wantMissing(t, s, "missing")
	put(t, s, "dir/obj", "x")
	wantMissing(t, s, "dir")         // a prefix of a key is not an object
	wantMissing(t, s, "dir/obj/sub") // nor is anything below an object
	wantMissing(t, s, "dir/ob")
}

func testPutGet(t *testing.T, s storage.Store) {
	info := put(t, s, "a/b/c", "hello")
	got, ginfo := mustRead(t, s, "a/b/c")
	if got != "hello" {
		t.Fatalf("Get = %q, want hello", got)
	}
	sinfo, err := s.Stat(t.Context(), "a/b/c")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	for _, i := range []storage.Info{ginfo, sinfo} {
		if i.Key != "a/b/c" || i.Size != 5 || i.ETag != info.ETag || i.ModTime.IsZero() {
			t.Errorf("Info = %+v, want key a/b/c, size 5, ETag %q, a ModTime", i, info.ETag)
		}
	}
	put(t, s, "empty", "")
	wantContent(t, s, "empty", "")
}

func testRanges(t *testing.T, s storage.Store) {
	put(t, s, "r", "0123456789")
	for _, tc := range []struct {
		off, n int64
		want   string
	}{
		{0, 0, "0123456789"},
		{3, 0, "3456789"},
		{3, 4, "3456"},
		{0, 1, "0"},
		{9, 1, "9"},
		{8, 10, "89"}, // length past the end stops at the end
	} {
		b, info, err := get(t.Context(), s, "r", storage.GetOptions{Offset: tc.off, Length: tc.n})
		if err != nil {
			t.Fatalf("Get(off %d, len %d): %v", tc.off, tc.n, err)
		}
		if string(b) != tc.want || info.Size != 10 {
			t.Errorf("Get(off %d, len %d) = %q (size %d), want %q (size 10)", tc.off, tc.n, b, info.Size, tc.want)
		}
	}
}

func testUnknownSize(t *testing.T, s storage.Store) {
	data := string(pattern(1, 3<<20+17))
	info, err := s.Put(t.Context(), "u", onlyReader{strings.NewReader(data)}, -1)
	if err != nil {
		t.Fatalf("Put(size -1): %v", err)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("Put(size -1) size = %d, want %d", info.Size, len(data))
	}
	wantContent(t, s, "u", data)
}

// A body shorter than the announced size is an error, not a short object.
func testShortBody(t *testing.T, s storage.Store) {
	if _, err := s.Put(t.Context(), "short", onlyReader{strings.NewReader("abc")}, 10); err == nil {
		t.Fatal("Put of 3 bytes announced as 10 succeeded")
	}
	wantMissing(t, s, "short")
}

func testETagChanges(t *testing.T, s storage.Store) {
	seen := map[string]bool{}
	for i := range 5 {
		info := put(t, s, "e", strings.Repeat("v", i+1))
		if seen[info.ETag] {
			t.Fatalf("replace %d reused ETag %q", i, info.ETag)
		}
		seen[info.ETag] = true
		if st, err := s.Stat(t.Context(), "e"); err != nil || st.ETag != info.ETag {
			t.Fatalf("Stat after replace %d = %+v, %v; want ETag %q", i, st, err, info.ETag)
		}
	}
}

func testDelete(t *testing.T, s storage.Store) {
	ctx := t.Context()
	if err := s.Delete(ctx, "never/existed"); err != nil {
		t.Fatalf("Delete(missing) = %v, want nil", err)
	}
	put(t, s, "d/x/1", "1")
	put(t, s, "d/x/2", "2")
	if err := s.Delete(ctx, "d/x/1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantMissing(t, s, "d/x/1")
	wantContent(t, s, "d/x/2", "2")
	if err := s.Delete(ctx, "d/x/1"); err != nil {
		t.Fatalf("second Delete = %v, want nil", err)
	}
	if err := s.Delete(ctx, "d/x"); err != nil { // a prefix, not an object
		t.Fatalf("Delete(prefix) = %v, want nil", err)
	}
	wantContent(t, s, "d/x/2", "2")
	if err := s.Delete(ctx, "d/x/2"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	put(t, s, "d/x/3", "3") // the emptied "directory" can be used again
	wantContent(t, s, "d/x/3", "3")
}

var invalidKeys = []string{
	"", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "../a",
	"a b", "a\x00b", "a\\b", "ä", "a?b", "a#b", "a%2Fb", strings.Repeat("k", 1025),
}

func testInvalidKeys(t *testing.T, s storage.Store) {
	ctx := t.Context()
	body := func() io.Reader { return strings.NewReader("x") }
	for _, k := range invalidKeys {
		_, _, err := s.Get(ctx, k, storage.GetOptions{})
		wantErr(t, "Get("+k+")", err, storage.ErrInvalidKey)
		_, err = s.Stat(ctx, k)
		wantErr(t, "Stat("+k+")", err, storage.ErrInvalidKey)
		_, err = s.Put(ctx, k, body(), 1)
		wantErr(t, "Put("+k+")", err, storage.ErrInvalidKey)
		_, err = s.PutIfAbsent(ctx, k, body(), 1)
		wantErr(t, "PutIfAbsent("+k+")", err, storage.ErrInvalidKey)
		_, err = s.PutIfMatch(ctx, k, body(), 1, "etag")
		wantErr(t, "PutIfMatch("+k+")", err, storage.ErrInvalidKey)
		wantErr(t, "Delete("+k+")", s.Delete(ctx, k), storage.ErrInvalidKey)
	}
	page, err := s.List(ctx, storage.ListOptions{})
	if err != nil || len(page.Objects)+len(page.CommonPrefixes) != 0 {
		t.Fatalf("List after invalid writes = %+v, %v; want empty", page, err)
	}
}

// writers are the three ways to write an object; the failure tests run
// each so that no write path leaves a partial object behind.
var writers = []struct {
	name  string
	write func(ctx context.Context, s storage.Store, key string, r io.Reader, size int64, etag string) error
}{
	{"Put", func(ctx context.Context, s storage.Store, key string, r io.Reader, size int64, _ string) error {
		_, err := s.Put(ctx, key, r, size)
		return err
	}},
	{"PutIfAbsent", func(ctx context.Context, s storage.Store, key string, r io.Reader, size int64, _ string) error {
		_, err := s.PutIfAbsent(ctx, key, r, size)
		return err
	}},
	{"PutIfMatch", func(ctx context.Context, s storage.Store, key string, r io.Reader, size int64, etag string) error {
		_, err := s.PutIfMatch(ctx, key, r, size, etag)
		return err
	}},
}

// interruptedReader serves total bytes; after the first cut bytes it calls
// interrupt, whose error (if any) it then returns.
type interruptedReader struct {
	total, cut, done int
	interrupt        func() error
}

func (r *interruptedReader) Read(p []byte) (int, error) {
	if r.done >= r.cut && r.interrupt != nil {
		if err := r.interrupt(); err != nil {
			return 0, err
		}
	}
	if r.done >= r.total {
		return 0, io.EOF
	}
	n := min(len(p), r.total-r.done, 32<<10)
	clear(p[:n])
	r.done += n
	return n, nil
}

// testInterrupted checks that a write interrupted after 64 KiB of a 4 MiB
// body fails and leaves the old object (or none) untouched.
func testInterrupted(t *testing.T, s storage.Store, interrupt func(cancel context.CancelFunc) func() error) {
	testInterruptedAt(t, s, 4<<20, 64<<10, interrupt)
}

// testInterruptedAt is testInterrupted for a body of total bytes cut after
// cut bytes.
func testInterruptedAt(t *testing.T, s storage.Store, total, cut int, interrupt func(cancel context.CancelFunc) func() error) {
	for _, w := range writers {
		for _, size := range []int64{int64(total), -1} {
			ctx, cancel := context.WithCancel(t.Context())
			key := "new-" + w.name
			etag := ""
			if w.name == "PutIfMatch" {
				key = "old-" + w.name
				etag = put(t, s, key, "old").ETag
			}
			r := &interruptedReader{total: total, cut: cut, interrupt: interrupt(cancel)}
			err := w.write(ctx, s, key, onlyReader{r}, size, etag)
			cancel()
			if err == nil {
				t.Fatalf("%s (size %d) with interrupted body succeeded", w.name, size)
			}
			if etag != "" {
				wantContent(t, s, key, "old")
			} else {
				wantMissing(t, s, key)
			}
			if w.name == "Put" { // replacing an existing object keeps it too
				put(t, s, "old-Put", "old")
				ctx, cancel := context.WithCancel(t.Context())
				r := &interruptedReader{total: total, cut: cut, interrupt: interrupt(cancel)}
				if err := w.write(ctx, s, "old-Put", onlyReader{r}, size, ""); err == nil {
					t.Fatalf("Put over an object with interrupted body succeeded")
				}
				cancel()
				wantContent(t, s, "old-Put", "old")
			}
		}
	}
}

func testCancelledWrite(t *testing.T, s storage.Store) {
	testInterrupted(t, s, func(cancel context.CancelFunc) func() error {
		return func() error { cancel(); return nil } // keeps serving data
	})
}

var errBody = errors.New("storagetest: body failed")

func testFailingReader(t *testing.T, s storage.Store) {
	testInterrupted(t, s, func(context.CancelFunc) func() error {
		return func() error { return errBody }
	})
}

func testPing(t *testing.T, s storage.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
