package storagetest

import (
	"bytes"
	"slices"
	"testing"

	"github.com/slipway/slipway/storage"
)

// partSize is the size of non-last parts: small, unless the backend
// insists on more (S3: 5 MiB).
func partSize(s storage.Store) int { return max(int(s.MinPartSize()), 1000) }

func create(t *testing.T, s storage.Store, key string) string {
	t.Helper()
	id, err := s.CreateMultipart(t.Context(), key)
	if err != nil || id == "" {
		t.Fatalf("CreateMultipart(%q) = %q, %v", key, id, err)
	}
	return id
}

func putPart(t *testing.T, s storage.Store, key, id string, n int, data []byte) storage.Part {
	t.Helper()
	p, err := s.PutPart(t.Context(), key, id, n, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("PutPart(%q, %d): %v", key, n, err)
	}
	if p.Number != n || p.Size != int64(len(data)) || p.ETag == "" {
		t.Fatalf("PutPart(%q, %d) = %+v, want number %d, size %d, an ETag", key, n, p, n, len(data))
	}
	return p
}

func complete(t *testing.T, s storage.Store, key, id string, parts []storage.Part) storage.Info {
	t.Helper()
	info, err := s.CompleteMultipart(t.Context(), key, id, parts)
	if err != nil {
		t.Fatalf("CompleteMultipart(%q): %v", key, err)
	}
	return info
}

// wantUploadGone checks that every call on the upload treats it as absent.
func wantUploadGone(t *testing.T, s storage.Store, key, id string) {
	t.Helper()
	ctx := t.Context()
	_, err := s.ListParts(ctx, key, id)
	wantErr(t, "ListParts(gone upload)", err, storage.ErrNotFound)
	_, err = s.PutPart(ctx, key, id, 1, bytes.NewReader([]byte("x")), 1)
	wantErr(t, "PutPart(gone upload)", err, storage.ErrNotFound)
	_, err = s.CompleteMultipart(ctx, key, id, []storage.Part{{Number: 1, ETag: "x", Size: 1}})
	wantErr(t, "CompleteMultipart(gone upload)", err, storage.ErrNotFound)
	if err := s.AbortMultipart(ctx, key, id); err != nil {
		t.Fatalf("AbortMultipart(gone upload) = %v, want nil", err)
	}
}

// wantInvisible checks that nothing is at key, by Stat and by List.
func wantInvisible(t *testing.T, s storage.Store, key string) {
	t.Helper()
	wantMissing(t, s, key)
	page, err := s.List(t.Context(), storage.ListOptions{})
	if err != nil || len(page.Objects)+len(page.CommonPrefixes) != 0 {
		t.Fatalf("List during upload = %+v, %v; want empty", page, err)
	}
}

func testMultipart(t *testing.T, s storage.Store) {
	ps := partSize(s)
	p1, p2, p2b, p3 := pattern(1, ps), pattern(2, ps), pattern(3, ps), pattern(4, ps/3)
	id := create(t, s, "mp/obj")
	wantInvisible(t, s, "mp/obj")
	// Out of order, and part 2 replaced.
	put3 := putPart(t, s, "mp/obj", id, 3, p3)
	putPart(t, s, "mp/obj", id, 2, p2)
	put1 := putPart(t, s, "mp/obj", id, 1, p1)
	put2 := putPart(t, s, "mp/obj", id, 2, p2b)
	wantInvisible(t, s, "mp/obj")

	parts, err := s.ListParts(t.Context(), "mp/obj", id)
	if err != nil {
		t.Fatalf("ListParts: %v", err)
	}
	if want := []storage.Part{put1, put2, put3}; !slices.Equal(parts, want) {
		t.Fatalf("ListParts = %+v, want %+v", parts, want)
	}
	info := complete(t, s, "mp/obj", id, parts)
	want := string(slices.Concat(p1, p2b, p3))
	if info.Size != int64(len(want)) || info.ETag == "" {
		t.Fatalf("CompleteMultipart = %+v, want size %d and an ETag", info, len(want))
	}
	got, ginfo := mustRead(t, s, "mp/obj")
	if got != want || ginfo.ETag != info.ETag {
		t.Fatalf("completed object = %d bytes (ETag %q), want the %d concatenated (ETag %q)", len(got), ginfo.ETag, len(want), info.ETag)
	}
	wantUploadGone(t, s, "mp/obj", id)
	wantContent(t, s, "mp/obj", want)
}

func testMultipartSingle(t *testing.T, s storage.Store) {
	data := pattern(5, 4321)
	id := create(t, s, "single")
	p := putPart(t, s, "single", id, 1, data)
	complete(t, s, "single", id, []storage.Part{p})
	wantContent(t, s, "single", string(data))
}

func testMultipartReplaces(t *testing.T, s storage.Store) {
	old := put(t, s, "rep", "old")
	ps := partSize(s)
	id := create(t, s, "rep")
	a := putPart(t, s, "rep", id, 1, pattern(6, ps))
	b := putPart(t, s, "rep", id, 2, []byte("tail"))
	wantContent(t, s, "rep", "old") // untouched until completion
	info := complete(t, s, "rep", id, []storage.Part{a, b})
	if info.ETag == old.ETag {
		t.Fatalf("completed object kept ETag %q", old.ETag)
	}
	wantContent(t, s, "rep", string(pattern(6, ps))+"tail")
}

func testMultipartAbort(t *testing.T, s storage.Store) {
	id := create(t, s, "ab")
	putPart(t, s, "ab", id, 1, []byte("part"))
	if err := s.AbortMultipart(t.Context(), "ab", id); err != nil {
		t.Fatalf("AbortMultipart: %v", err)
	}
	wantUploadGone(t, s, "ab", id)
	wantInvisible(t, s, "ab")
}

func testMultipartUnknown(t *testing.T, s storage.Store) {
	// An upload id that certainly existed and is certainly gone.
	dead := create(t, s, "unk")
	if err := s.AbortMultipart(t.Context(), "unk", dead); err != nil {
		t.Fatal(err)
	}
	wantUploadGone(t, s, "unk", dead)
	// A live id used with another key is unknown too.
	id := create(t, s, "unk/a")
	putPart(t, s, "unk/a", id, 1, []byte("a"))
	_, err := s.ListParts(t.Context(), "unk/b", id)
	wantErr(t, "ListParts(other key)", err, storage.ErrNotFound)
	if _, err := s.ListParts(t.Context(), "unk/a", id); err != nil {
		t.Fatalf("ListParts(own key): %v", err)
	}
}

// Completing with a part ETag that is not the stored one fails, publishes
// nothing and keeps the upload, which can then be completed properly.
func testMultipartBadPart(t *testing.T, s storage.Store) {
	ps := partSize(s)
	id := create(t, s, "bad")
	p1 := putPart(t, s, "bad", id, 1, pattern(7, ps))
	stale := putPart(t, s, "bad", id, 2, []byte("first"))
	p2 := putPart(t, s, "bad", id, 2, []byte("second"))
	if stale.ETag == p2.ETag {
		t.Skip("backend reuses part ETags for different content")
	}
	if _, err := s.CompleteMultipart(t.Context(), "bad", id, []storage.Part{p1, stale}); err == nil {
		t.Fatal("CompleteMultipart with a replaced part's ETag succeeded")
	}
	if _, err := s.CompleteMultipart(t.Context(), "bad", id, []storage.Part{p1, {Number: 3, ETag: p2.ETag, Size: p2.Size}}); err == nil {
		t.Fatal("CompleteMultipart with a never uploaded part succeeded")
	}
	wantInvisible(t, s, "bad")
	complete(t, s, "bad", id, []storage.Part{p1, p2})
	wantContent(t, s, "bad", string(pattern(7, ps))+"second")
}

func testMultipartUnknownSize(t *testing.T, s storage.Store) {
	ps := partSize(s)
	id := create(t, s, "us")
	var parts []storage.Part
	for n, data := range [][]byte{pattern(8, ps), pattern(9, 777)} {
		p, err := s.PutPart(t.Context(), "us", id, n+1, onlyReader{bytes.NewReader(data)}, -1)
		if err != nil || p.Size != int64(len(data)) {
			t.Fatalf("PutPart(size -1) = %+v, %v; want size %d", p, err, len(data))
		}
		parts = append(parts, p)
	}
	complete(t, s, "us", id, parts)
	wantContent(t, s, "us", string(pattern(8, ps))+string(pattern(9, 777)))
}

func testMultipartInvalidKey(t *testing.T, s storage.Store) {
	ctx := t.Context()
	id := create(t, s, "valid")
	for _, k := range invalidKeys {
		_, err := s.CreateMultipart(ctx, k)
		wantErr(t, "CreateMultipart("+k+")", err, storage.ErrInvalidKey)
		_, err = s.PutPart(ctx, k, id, 1, bytes.NewReader(nil), 0)
		wantErr(t, "PutPart("+k+")", err, storage.ErrInvalidKey)
		_, err = s.ListParts(ctx, k, id)
		wantErr(t, "ListParts("+k+")", err, storage.ErrInvalidKey)
		_, err = s.CompleteMultipart(ctx, k, id, []storage.Part{{Number: 1}})
		wantErr(t, "CompleteMultipart("+k+")", err, storage.ErrInvalidKey)
		wantErr(t, "AbortMultipart("+k+")", s.AbortMultipart(ctx, k, id), storage.ErrInvalidKey)
	}
}
