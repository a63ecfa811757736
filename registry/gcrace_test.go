package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
	"github.com/slipway/slipway/storage/pause"
	"github.com/slipway/slipway/storage/s3/s3test"
	"github.com/slipway/slipway/tombstone"
)

// The race between garbage collection and writers, driven step by step:
// the test plays the collector (tombstone's functions, in the protocol's
// order) on the same store as a registry serving /v2/, and holds one or
// the other at a chosen request (storage/pause). On both backends.

// onBackends runs a test on the filesystem store and on MinIO.
func onBackends(t *testing.T, run func(t *testing.T, s storage.Store)) {
	t.Run("fs", func(t *testing.T) {
		s, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		run(t, s)
	})
	t.Run("minio", func(t *testing.T) { run(t, s3test.Store(t)) })
}

// gcWorld is a registry (the writer) and a collector's metadata layer on
// one paused store.
type gcWorld struct {
	t     *testing.T
	p     *pause.Pauser
	store storage.Store // the paused store everyone uses
	w     *env          // the writer, over HTTP
	coll  *Metadata     // the collector's (another process's) metadata layer
}

func newGCWorld(t *testing.T, inner storage.Store) *gcWorld {
	t.Helper()
	p := pause.New(inner)
	s := p.Store()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := New(s, Options{Logger: quiet})
	reg.meta.Guard().CacheFor = 0 // the writer always looks for a sweep (but in the fence test)
	eng := gin.New()
	reg.Register(eng)
	srv := httptest.NewServer(eng)
	t.Cleanup(srv.Close)
	t.Cleanup(p.ReleaseAll) // before srv.Close, which waits for held requests
	return &gcWorld{t: t, p: p, store: s, w: &env{t: t, srv: srv, reg: reg}, coll: New(s, Options{Logger: quiet}).meta}
}

// reach waits until an operation is held at pt; a protocol that never
// gets there fails the test instead of hanging it.
func reach(t *testing.T, pt *pause.Point) {
	t.Helper()
	select {
	case <-pt.Reached():
	case <-time.After(20 * time.Second):
		t.Fatal("the operation the test waits for never came")
	}
}

// linkedAnywhere is the collector's look at whether any repository links
// blob d (a fresh listing).
func (g *gcWorld) linkedAnywhere(d digest.Digest) bool {
	g.t.Helper()
	keys, _, err := g.coll.listKeys(context.Background(), "repositories/", "", 0)
	if err != nil {
		g.t.Fatal(err)
	}
	for _, k := range keys {
		if strings.HasSuffix(k, "/_blobs/"+string(d.Algorithm())+"/"+d.Encoded()) {
			return true
		}
	}
	return false
}

// deleteCommitted is the collector's step 5: delete the object (a
// descriptor with its data), then the tombstone.
func (g *gcWorld) deleteCommitted(key string) error {
	ctx := context.Background()
	if err := g.coll.DeleteObject(ctx, key); err != nil {
		return err
	}
	return tombstone.Remove(ctx, g.store, key)
}

// untaggedImage pushes an image of one layer to "app" by digest (no tag)
// and returns its manifest and digest.
func (g *gcWorld) untaggedImage(layer string) ([]byte, digest.Digest) {
	g.t.Helper()
	raw := g.w.image("app", layer)
	d := digest.FromBytes(raw)
	wantStatus(g.t, g.w.putManifest("app", d.String(), v1.MediaTypeImageManifest, raw), http.StatusCreated)
	return raw, d
}

// commitDeletion plays the collector up to its commit on key: sweep entry,
// tombstone, second look (live tells whether it finds key live), commit.
func (g *gcWorld) commitDeletion(key string, live func() bool) {
	g.t.Helper()
	ctx := context.Background()
	if err := tombstone.BeginSweep(ctx, g.store, "run1"); err != nil {
		g.t.Fatal(err)
	}
	etag, err := tombstone.Mark(ctx, g.store, key, "run1")
	if err != nil {
		g.t.Fatal(err)
	}
	if live != nil && live() {
		g.t.Fatalf("second look: %s is live", key)
	}
	if err := tombstone.Commit(ctx, g.store, key, "run1", etag); err != nil {
		g.t.Fatal(err)
	}
}

// holdDeletion starts the collector's deletion of a committed key and
// holds it right before the object's delete; the channel gets its result.
func (g *gcWorld) holdDeletion(key string) (*pause.Point, <-chan error) {
	g.t.Helper()
	atDelete := g.p.Before(pause.Delete, key)
	deleted := make(chan error, 1)
	go func() { deleted <- g.deleteCommitted(key) }()
	reach(g.t, atDelete)
	return atDelete, deleted
}

// garbageBlob pushes data to repository "old" and deletes it there: its
// descriptor is then garbage, a candidate of the collector.
func (g *gcWorld) garbageBlob(data []byte) digest.Digest {
	g.t.Helper()
	d := g.w.pushBlob("old", data)
	wantStatus(g.t, g.w.do("DELETE", "/v2/old/blobs/"+d.String(), nil), http.StatusAccepted)
	return d
}

// wantPull checks that repo serves blob d with exactly data, through the
// writer and through a new replica (no caches).
func (g *gcWorld) wantPull(repo string, d digest.Digest, data []byte) {
	g.t.Helper()
	r := g.w.do("GET", "/v2/"+repo+"/blobs/"+d.String(), nil)
	if r.StatusCode != http.StatusOK || !bytes.Equal(r.body, data) {
		g.t.Fatalf("pull %s@%s: %s, %d bytes, want %d", repo, d, r.Status, len(r.body), len(data))
	}
	fresh := New(g.store, Options{}).meta
	bd, err := fresh.blobInRepo(context.Background(), repo, d)
	if err != nil {
		g.t.Fatalf("a new replica finds no %s@%s: %v", repo, d, err)
	}
	rc := fresh.openBlob(context.Background(), bd, 0, bd.Size)
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, data) {
		g.t.Fatalf("a new replica reads %d bytes of %s (%v), want %d", len(got), d, err, len(data))
	}
}

// wantVerified checks that every tag, manifest and blob link of the store
// can be served whole (Verify).
func (g *gcWorld) wantVerified() {
	g.t.Helper()
	problems, err := Verify(context.Background(), g.store)
	if err != nil || len(problems) > 0 {
		g.t.Fatalf("store does not verify: %v %q", err, problems)
	}
}

// (a) The collector has marked a garbage descriptor, taken its second look
// and is about to commit; a push of the same blob completes meanwhile. Its
// rescue wins: the commit loses, the blob stays whole.
func TestGCRescueBeforeCommit(t *testing.T) {
	onBackends(t, func(t *testing.T, inner storage.Store) {
		ctx := context.Background()
		g := newGCWorld(t, inner)
		data := bytes.Repeat([]byte("layer a "), 4096)
		d := g.garbageBlob(data)
		desc := blobKey(d)
		if err := tombstone.BeginSweep(ctx, g.store, "run1"); err != nil {
			t.Fatal(err)
		}
		atCommit := g.p.Before(pause.PutIfMatch, tombstone.Key(desc))
		committed := make(chan error, 1)
		go func() {
			etag, err := tombstone.Mark(ctx, g.store, desc, "run1")
			if err == nil && g.linkedAnywhere(d) {
				err = errors.New("second look: linked")
			}
			if err == nil {
				err = tombstone.Commit(ctx, g.store, desc, "run1", etag)
			}
			if err == nil {
				err = g.deleteCommitted(desc)
			}
			committed <- err
		}()
		reach(t, atCommit)
		g.w.pushBlob("new", data)
		atCommit.Release()
		if err := <-committed; !errors.Is(err, storage.ErrPreconditionFailed) {
			t.Fatalf("collector's commit: %v, want it lost to the rescue", err)
		}
		if tb, _, err := tombstone.Read(ctx, g.store, desc); err != nil || tb.State != tombstone.Rescued {
			t.Fatalf("tombstone %+v %v, want rescued", tb, err)
		}
		g.wantPull("new", d, data)
		g.wantVerified()
	})
}

// (b) The collector has committed the deletion of a garbage descriptor and
// is held before deleting it. A push of the same blob finds the deletion
// committed, waits for it to finish, and writes its own descriptor: the
// blob it was told is stored is whole.
func TestGCCommitBeforeBlobPush(t *testing.T) {
	onBackends(t, func(t *testing.T, inner storage.Store) {
		ctx := context.Background()
		g := newGCWorld(t, inner)
		data := bytes.Repeat([]byte("layer b "), 4096)
		d := g.garbageBlob(data)
		desc := blobKey(d)
		old, err := g.coll.blobFromStore(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		g.commitDeletion(desc, func() bool { return g.linkedAnywhere(d) })
		atDelete, deleted := g.holdDeletion(desc)

		// The writer's Protect reads the tombstone (deleting); the writer
		// then waits for the deletion, held here a while (it must neither
		// give up nor write its descriptor before the deletion is over).
		protectRead := g.p.Before(pause.Get, tombstone.Key(desc))
		pushed := make(chan resp, 1)
		go func() { pushed <- g.w.do("POST", "/v2/new/blobs/uploads/?digest="+d.String(), data) }()
		reach(t, protectRead)
		protectRead.Release()
		time.Sleep(300 * time.Millisecond)
		select {
		case r := <-pushed:
			t.Fatalf("the push did not wait for the deletion: %s", r)
		default:
		}
		atDelete.Release()
		if err := <-deleted; err != nil {
			t.Fatal(err)
		}
		wantStatus(t, <-pushed, http.StatusCreated)

		bd, err := g.coll.blobFromStore(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if bd.Data == "" || bd.Data == old.Data {
			t.Fatalf("descriptor after the retry names %q, want new data (old %q)", bd.Data, old.Data)
		}
		g.wantPull("new", d, data)
		g.wantVerified()
	})
}

// (b) for a manifest: the collector has committed the deletion of a layer's
// link and is held before deleting it; a manifest PUT referencing the
// layer gets 404 MANIFEST_BLOB_UNKNOWN and its tag is not written.
func TestGCCommitBeforeManifestPut(t *testing.T) {
	onBackends(t, func(t *testing.T, inner storage.Store) {
		ctx := context.Background()
		g := newGCWorld(t, inner)
		raw := g.w.image("app", "layer c")
		layer := digest.FromString("layer c")
		link := blobLinkKey("app", layer)
		g.commitDeletion(link, nil)
		atDelete, deleted := g.holdDeletion(link)

		wantError(t, g.w.putManifest("app", "v1", v1.MediaTypeImageManifest, raw), http.StatusNotFound, "MANIFEST_BLOB_UNKNOWN")
		if _, err := g.coll.Tag(ctx, "app", "v1"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("tag after the refused PUT: %v, want none", err)
		}
		atDelete.Release()
		if err := <-deleted; err != nil {
			t.Fatal(err)
		}
		// Pushed again, the layer comes back and the manifest goes in.
		g.w.pushBlob("app", []byte("layer c"))
		wantStatus(t, g.w.putManifest("app", "v1", v1.MediaTypeImageManifest, raw), http.StatusCreated)
		g.wantVerified()
	})
}

// A manifest PUT refused because a blob it needs is being deleted answers
// only once the deletion has finished: the client's retry (docker HEADs
// each layer again) then finds the blob absent and uploads it, instead of
// finding it still there and failing the same way.
func TestManifestPutWaitsForCommittedDeletion(t *testing.T) {
	onBackends(t, func(t *testing.T, inner storage.Store) {
		g := newGCWorld(t, inner)
		raw := g.w.image("app", "layer d")
		layer := digest.FromString("layer d")
		link := blobLinkKey("app", layer)
		g.commitDeletion(link, nil)
		atDelete, deleted := g.holdDeletion(link)

		answered := make(chan resp, 1)
		go func() { answered <- g.w.putManifest("app", "v1", v1.MediaTypeImageManifest, raw) }()
		select {
		case r := <-answered:
			t.Fatalf("the PUT answered %d while the deletion it relies on was still under way", r.StatusCode)
		case <-time.After(500 * time.Millisecond):
		}
		atDelete.Release()
		if err := <-deleted; err != nil {
			t.Fatal(err)
		}
		wantError(t, <-answered, http.StatusNotFound, "MANIFEST_BLOB_UNKNOWN")
		// The retry's HEAD finds the layer gone: it is uploaded again.
		wantStatus(t, g.w.do("HEAD", "/v2/app/blobs/"+layer.String(), nil), http.StatusNotFound)
		g.w.pushBlob("app", []byte("layer d"))
		wantStatus(t, g.w.putManifest("app", "v1", v1.MediaTypeImageManifest, raw), http.StatusCreated)
		g.wantVerified()
	})
}

// A manifest PUT whose blob the repository lacks answers distribution's
// 400, but the retryable 404 while a collection runs or just after one:
// the client's HEAD may have found the blob just before the collector
// freed it.
func TestMissingReferenceDuringSweep(t *testing.T) {
	onBackends(t, func(t *testing.T, inner storage.Store) {
		g := newGCWorld(t, inner)
		raw := g.w.image("app", "layer e") // its blobs are linked in app only
		wantError(t, g.w.putManifest("other", "v1", v1.MediaTypeImageManifest, raw), http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")
		if err := tombstone.BeginSweep(context.Background(), g.store, "run1"); err != nil {
			t.Fatal(err)
		}
		wantError(t, g.w.putManifest("other", "v1", v1.MediaTypeImageManifest, raw), http.StatusNotFound, "MANIFEST_BLOB_UNKNOWN")
		// Just after the run, the blob may have gone with it.
		if err := tombstone.EndSweep(context.Background(), g.store, "run1"); err != nil {
			t.Fatal(err)
		}
		wantError(t, g.w.putManifest("other", "v1", v1.MediaTypeImageManifest, raw), http.StatusNotFound, "MANIFEST_BLOB_UNKNOWN")
	})
}

// (c) The fence. A writer whose cached "no sweep" answer is younger than
// CacheFor skips protection (no request), and its writes land before the
// collector's first tombstone, which comes Fence after the sweep entry:
// the second look sees them. A writer whose writes end later than CacheFor
// after its list looks again, sees the sweep and rescues.
func TestGCFence(t *testing.T) {
	onBackends(t, func(t *testing.T, inner storage.Store) {
		ctx := context.Background()
		const cacheFor, fence = time.Second, 2 * time.Second
		g := newGCWorld(t, inner)
		guard := g.w.reg.meta.Guard()
		guard.CacheFor = cacheFor
		a := g.garbageBlob([]byte("blob a"))
		b := g.garbageBlob([]byte("blob b"))

		// The writer learns "no sweep" (its list is sent now), then the
		// collector announces its sweep.
		if err := guard.Protect(ctx, "anything"); err != nil {
			t.Fatal(err)
		}
		listed, lists := time.Now(), guard.Lists()
		if err := tombstone.BeginSweep(ctx, g.store, "run1"); err != nil {
			t.Fatal(err)
		}
		swept := time.Now()

		// Writer 1 links a within CacheFor: no request to check.
		if err := g.w.reg.meta.LinkBlob(ctx, "dst", a); err != nil {
			t.Fatal(err)
		}
		if time.Since(listed) >= cacheFor {
			t.Fatalf("linking took %v, more than CacheFor: the machine is too slow for this test", time.Since(listed))
		}
		if guard.Lists() != lists {
			t.Fatalf("a Protect within CacheFor listed the sweeps")
		}
		// Writer 2 links b, but its link write is held past the fence.
		atLink := g.p.Before(pause.Put, blobLinkKey("dst", b))
		linked := make(chan error, 1)
		go func() { linked <- g.w.reg.meta.LinkBlob(ctx, "dst", b) }()
		reach(t, atLink)

		// The collector waits Fence, marks, takes its second look.
		time.Sleep(time.Until(swept.Add(fence)))
		etags := map[digest.Digest]string{}
		for _, d := range []digest.Digest{a, b} {
			etag, err := tombstone.Mark(ctx, g.store, blobKey(d), "run1")
			if err != nil {
				t.Fatal(err)
			}
			etags[d] = etag
		}
		if !g.linkedAnywhere(a) {
			t.Fatal("the second look does not see writer 1's link, written before the fence ended")
		}
		if err := tombstone.Remove(ctx, g.store, blobKey(a)); err != nil { // live: kept
			t.Fatal(err)
		}
		if g.linkedAnywhere(b) {
			t.Fatal("writer 2's link is written already")
		}
		// Writer 2's write ends now, long after its cached answer: its
		// Protect looks again and rescues b before the commit.
		atLink.Release()
		if err := <-linked; err != nil {
			t.Fatal(err)
		}
		if err := tombstone.Commit(ctx, g.store, blobKey(b), "run1", etags[b]); !errors.Is(err, storage.ErrPreconditionFailed) {
			t.Fatalf("commit of b: %v, want it lost to writer 2's rescue", err)
		}
		g.wantPull("dst", a, []byte("blob a"))
		g.wantPull("dst", b, []byte("blob b"))
		g.wantVerified()
	})
}

// collectBehindReplica deletes blob d's descriptor and data (and its link
// in repo, with link) from e's store, as another replica's collector
// would, leaving e's caches as they are.
func collectBehindReplica(t *testing.T, e *env, repo string, d digest.Digest, link bool) {
	t.Helper()
	ctx := context.Background()
	bd, err := e.reg.meta.blobFromStore(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{blobKey(d), bd.Data}
	if link {
		keys = append(keys, blobLinkKey(repo, d))
	}
	for _, k := range keys {
		if err := e.store.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
}

// A blob GET answered from caches (link memory, cached descriptor) whose
// data another replica's collector deleted is 404 BLOB_UNKNOWN, not 500.
func TestBlobGetOfCollectedData(t *testing.T) {
	e := newEnv(t)
	data := []byte("collected elsewhere")
	d := e.pushBlob("app", data)
	r := e.do("GET", "/v2/app/blobs/"+d.String(), nil)
	wantStatus(t, r, http.StatusOK)
	collectBehindReplica(t, e, "app", d, true)
	wantError(t, e.do("GET", "/v2/app/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
	// Forgotten: the next GET asks the store, which says so too.
	wantError(t, e.do("GET", "/v2/app/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")

	// Pushed again through another replica (new data), while this one
	// still remembers the old descriptor: its GET finds the new one.
	d2 := e.pushBlob("app", []byte("pushed twice"))
	wantStatus(t, e.do("GET", "/v2/app/blobs/"+d2.String(), nil), http.StatusOK)
	collectBehindReplica(t, e, "app", d2, false)
	other := newEnvOn(t, e.dir)
	other.pushBlob("app", []byte("pushed twice"))
	r = e.do("GET", "/v2/app/blobs/"+d2.String(), nil)
	if r.StatusCode != http.StatusOK || string(r.body) != "pushed twice" {
		t.Fatalf("GET of a blob collected and pushed again: %s", r)
	}
}

// A tag written on a manifest part of whose tree the collector has
// committed to delete (after its second look, which did not see the tag)
// is taken back: the write fails with ErrCollected and the tag is gone,
// rather than naming a manifest that cannot be pulled.
func TestGCTagOnCollectedTree(t *testing.T) {
	onBackends(t, func(t *testing.T, inner storage.Store) {
		ctx := context.Background()
		g := newGCWorld(t, inner)
		_, d := g.untaggedImage("layer t")
		link := blobLinkKey("app", digest.FromString("layer t"))
		g.commitDeletion(link, nil)
		go func() {
			time.Sleep(100 * time.Millisecond) // the writer waits meanwhile
			if err := g.deleteCommitted(link); err != nil {
				t.Error(err)
			}
		}()
		err := g.w.reg.meta.SetTag(ctx, "app", "v1", d, "", "")
		if !errors.Is(err, tombstone.ErrCollected) || !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("SetTag on a collected tree: %v, want ErrCollected and ErrNotFound", err)
		}
		if _, err := g.coll.Tag(ctx, "app", "v1"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("the tag stayed: %v", err)
		}
	})
}

// A re-push of a manifest whose link the collector is deleting waits for
// the deletion, links it again and tags it: it pulls whole.
func TestGCManifestRepushDuringItsDeletion(t *testing.T) {
	onBackends(t, func(t *testing.T, inner storage.Store) {
		ctx := context.Background()
		g := newGCWorld(t, inner)
		raw, d := g.untaggedImage("layer r")
		link := manifestLinkKey("app", d)
		g.commitDeletion(link, nil)
		atDelete, deleted := g.holdDeletion(link)
		pushed := make(chan resp, 1)
		go func() { pushed <- g.w.putManifest("app", "v1", v1.MediaTypeImageManifest, raw) }()
		time.Sleep(200 * time.Millisecond)
		atDelete.Release()
		if err := <-deleted; err != nil {
			t.Fatal(err)
		}
		wantStatus(t, <-pushed, http.StatusCreated)
		r := g.w.do("GET", "/v2/app/manifests/v1", nil, "Accept", v1.MediaTypeImageManifest)
		if r.StatusCode != http.StatusOK || !bytes.Equal(r.body, raw) {
			t.Fatalf("pull by tag after the re-push: %s", r)
		}
		if ok, err := g.coll.HasManifest(ctx, "app", d); err != nil || !ok {
			t.Fatalf("manifest link after the re-push: %v %v", ok, err)
		}
		g.wantVerified()
	})
}

// A replica that remembers a collected descriptor must not take it as
// proof that an implicit first segment is unused: the blob may have been
// pushed again, its new descriptor naming that segment.
func TestFirstSegmentKeptAfterRecollection(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	data := []byte("collected, then committed from a first segment")
	d := e.pushBlob("app", data) // e's replica caches its descriptor
	collectBehindReplica(t, e, "app", d, true)
	// Another replica commits the digest from a session's first segment.
	other := newEnvOn(t, e.dir)
	first := segment{Key: firstSegmentKey("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), Size: int64(len(data)), Digest: d}
	if _, err := e.store.Put(ctx, first.Key, bytes.NewReader(data), first.Size); err != nil {
		t.Fatal(err)
	}
	if _, err := other.reg.meta.commitBlob(ctx, "app", d, []segment{first}); err != nil {
		t.Fatal(err)
	}
	// e's replica drops that session's segments (a cancel racing the PUT).
	if kept := e.reg.meta.deleteSegments(ctx, []segment{first}, false); len(kept) != 1 {
		t.Fatalf("kept %v, want the first segment the new descriptor names", kept)
	}
	wantStatus(t, e.do("GET", "/v2/app/blobs/"+d.String(), nil), http.StatusOK)
}
