package registry

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/storagetest"
)

// docker's PATCH + PUT: the chunk goes straight to the session's implicit
// first segment, no session object is written, and the PUT commits it
// without a compare-and-set. Another replica, or this one after a restart,
// finds the session by that key and rebuilds its hash state from the bytes.
func TestImplicitFirstSegment(t *testing.T) {
	a := newEnv(t)
	loc := a.startUpload("first")
	id := uploadID(loc)
	wantStatus(t, a.do("PATCH", loc, []byte("hello ")), http.StatusAccepted)
	wantKeysUnder(t, a.store, "data/", firstSegmentKey(id))
	wantNoKeysUnder(t, a.store, "uploads/")

	// Another replica: status, then the next chunk and the PUT.
	b := newEnvOn(t, a.dir)
	r := b.do("GET", loc, nil)
	wantStatus(t, r, http.StatusNoContent)
	wantHeader(t, r, "Range", "0-5")
	wantStatus(t, b.do("PATCH", loc, []byte("world"), "Content-Range", "6-10"), http.StatusAccepted)
	d := digest.FromString("hello world")
	wantStatus(t, b.do("PUT", withQuery(loc, "digest="+d.String()), nil), http.StatusCreated)
	if r := a.do("GET", "/v2/first/blobs/"+d.String(), nil); r.StatusCode != http.StatusOK || string(r.body) != "hello world" {
		t.Fatalf("GET: %s", r)
	}

	// One chunk committed on another replica than the one that took it.
	loc = a.startUpload("first")
	wantStatus(t, a.do("PATCH", loc, []byte("only chunk")), http.StatusAccepted)
	d = digest.FromString("only chunk")
	wantError(t, b.do("PUT", withQuery(loc, "digest="+digest.FromString("other").String()), nil), http.StatusBadRequest, "DIGEST_INVALID")
	loc = a.startUpload("first")
	wantStatus(t, a.do("PATCH", loc, []byte("only chunk")), http.StatusAccepted)
	wantStatus(t, b.do("PUT", withQuery(loc, "digest="+d.String()), nil), http.StatusCreated)
	// The first segment is written put-if-absent: a second writer (here a,
	// whose memory of the empty session predates b's chunk) loses with
	// 409 and b's chunk stays the session's first.
	loc = a.startUpload("first")
	wantStatus(t, b.do("PATCH", loc, []byte("b's chunk")), http.StatusAccepted)
	wantError(t, a.do("PATCH", loc, []byte("a's chunk")), http.StatusConflict, "BLOB_UPLOAD_INVALID")
	r = a.do("GET", loc, nil)
	wantStatus(t, r, http.StatusNoContent)
	wantHeader(t, r, "Range", "0-8")
	d = digest.FromString("b's chunk")
	wantStatus(t, a.do("PUT", withQuery(loc, "digest="+d.String()), nil), http.StatusCreated)
}

// The implicit first segment is never deleted while a PUT somewhere could
// still commit it: a cancel (or a wrong digest) keeps it, listed in the
// cancelled session, unless the blob of its digest already names other
// data; purge deletes it once the id expired, unless a blob names it.
func TestImplicitFirstSegmentIsDeletedOnlyWhenUnused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	// The blob exists already (pushed before): the duplicate goes at once,
	// on commit and on cancel.
	e.pushBlob("dup", []byte("known bytes"))
	d := digest.FromString("known bytes")
	before := storagetest.Keys(t, e.store, "")
	loc := e.startUpload("dup")
	wantStatus(t, e.do("PATCH", loc, []byte("known bytes")), http.StatusAccepted)
	wantStatus(t, e.do("PUT", withQuery(loc, "digest="+d.String()), nil), http.StatusCreated)
	wantNoNewKeys(t, e.store, before)
	loc = e.startUpload("dup")
	wantStatus(t, e.do("PATCH", loc, []byte("known bytes")), http.StatusAccepted)
	wantStatus(t, e.do("DELETE", loc, nil), http.StatusNoContent)
	if _, err := e.store.Stat(ctx, firstSegmentKey(uploadID(loc))); err == nil {
		t.Error("cancel kept a first segment whose digest's blob names other data")
	}

	// A cancelled chunk whose digest no blob has: kept until purge.
	loc = e.startUpload("cancel")
	wantStatus(t, e.do("PATCH", loc, []byte("cancelled bytes")), http.StatusAccepted)
	wantStatus(t, e.do("DELETE", loc, nil), http.StatusNoContent)
	key := firstSegmentKey(uploadID(loc))
	if _, err := e.store.Stat(ctx, key); err != nil {
		t.Fatalf("cancel deleted the first segment at once: %v", err)
	}
	// Another replica's PUT that had the session in memory before the
	// cancel commits it meanwhile: purge must keep it.
	committed := e.startUpload("cancel")
	wantStatus(t, e.do("PATCH", committed, []byte("committed bytes")), http.StatusAccepted)
	st, err := e.reg.sessions.load(ctx, "cancel", uploadID(committed), "", fromMemory)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.do("DELETE", committed, nil), http.StatusNoContent)
	dc := digest.FromString("committed bytes")
	if _, err := e.reg.meta.commitBlob(ctx, "cancel", dc, st.segs); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.meta.linkBlob(ctx, "cancel", dc); err != nil {
		t.Fatal(err)
	}

	if _, _, err := e.reg.PurgeUploads(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Stat(ctx, key); err == nil {
		t.Error("purge kept the cancelled first segment no blob names")
	}
	if r := e.do("GET", "/v2/cancel/blobs/"+dc.String(), nil); r.StatusCode != http.StatusOK || string(r.body) != "committed bytes" {
		t.Errorf("purge broke a blob committed from a cancelled session: %s", r)
	}
	wantNoKeysUnder(t, e.store, "uploads/")
}

// Only the implicit first segment alone, as its own digest, is committed
// without a compare-and-set: a close that adds a chunk to it must create
// the session object, so it loses to a cancel that got there first.
func TestImplicitFirstSegmentWithMoreDataClosesWithCompareAndSet(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	loc := e.startUpload("cas")
	wantStatus(t, e.do("PATCH", loc, []byte("first ")), http.StatusAccepted)
	b := newEnvOn(t, e.dir)
	st, err := b.reg.sessions.load(ctx, "cas", uploadID(loc), "", fromStore)
	if err != nil || len(st.segs) != 1 || st.segs[0].Digest != digest.FromString("first ") {
		t.Fatalf("state on another replica: %+v, %v", st, err)
	}
	wantStatus(t, e.do("DELETE", loc, nil), http.StatusNoContent)

	last, err := b.reg.writeSegment(ctx, strings.NewReader("last"), 4, "")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = st.hasher.Write([]byte("last"))
	_, err = b.reg.sessions.close(ctx, st, []segment{last}, digest.FromString("first last"))
	if !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("closing a cancelled session with one more chunk: %v, want a lost compare-and-set", err)
	}
}
