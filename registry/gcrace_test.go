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
	return &gcWorld{t: t, p: p, store: s, w: &env{t: t, srv: srv, reg: reg}, coll: New(s, Options{Logger: quiet}).meta}
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
		<-atCommit.Reached()
		g.w.pushBlob("new", data)
		atCommit.Release()
		if err := <-committed; !errors.Is(err, storage.ErrPreconditionFailed) {
			t.Fatalf("collector's commit: %v, want it lost to the rescue", err)
		}
		if tb, _, err := tombstone.Read(ctx, g.store, desc); err != nil || tb.State != tombstone.Rescued {
			t.Fatalf("tombstone %+v %v, want rescued", tb, err)
		}
		g.wantPull("new", d, data)
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
		if err := tombstone.BeginSweep(ctx, g.store, "run1"); err != nil {
			t.Fatal(err)
		}
		etag, err := tombstone.Mark(ctx, g.store, desc, "run1")
		if err != nil {
			t.Fatal(err)
		}
		if g.linkedAnywhere(d) {
			t.Fatal("second look: linked")
		}
		if err := tombstone.Commit(ctx, g.store, desc, "run1", etag); err != nil {
			t.Fatal(err)
		}
		atDelete := g.p.Before(pause.Delete, desc)
		deleted := make(chan error, 1)
		go func() { deleted <- g.deleteCommitted(desc) }()
		<-atDelete.Reached()

		// The writer's Protect reads the tombstone (deleting), then waits
		// for it to go: hold its first wait.
		protectRead := g.p.Before(pause.Get, tombstone.Key(desc))
		waitRead := g.p.Before(pause.Get, tombstone.Key(desc))
		pushed := make(chan resp, 1)
		go func() { pushed <- g.w.do("POST", "/v2/new/blobs/uploads/?digest="+d.String(), data) }()
		<-protectRead.Reached()
		protectRead.Release()
		<-waitRead.Reached()
		atDelete.Release()
		if err := <-deleted; err != nil {
			t.Fatal(err)
		}
		waitRead.Release()
		wantStatus(t, <-pushed, http.StatusCreated)

		bd, err := g.coll.blobFromStore(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if bd.Data == "" || bd.Data == old.Data {
			t.Fatalf("descriptor after the retry names %q, want new data (old %q)", bd.Data, old.Data)
		}
		g.wantPull("new", d, data)
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
		if err := tombstone.BeginSweep(ctx, g.store, "run1"); err != nil {
			t.Fatal(err)
		}
		etag, err := tombstone.Mark(ctx, g.store, link, "run1")
		if err != nil {
			t.Fatal(err)
		}
		if err := tombstone.Commit(ctx, g.store, link, "run1", etag); err != nil {
			t.Fatal(err)
		}
		atDelete := g.p.Before(pause.Delete, link)
		deleted := make(chan error, 1)
		go func() { deleted <- g.deleteCommitted(link) }()
		<-atDelete.Reached()

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
		<-atLink.Reached()

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
	})
}

// A blob GET answered from caches (link memory, cached descriptor) whose
// data another replica's collector deleted is 404 BLOB_UNKNOWN, not 500.
func TestBlobGetOfCollectedData(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	data := []byte("collected elsewhere")
	d := e.pushBlob("app", data)
	r := e.do("GET", "/v2/app/blobs/"+d.String(), nil)
	wantStatus(t, r, http.StatusOK)
	bd, err := e.reg.meta.blobFromStore(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{blobLinkKey("app", d), blobKey(d), bd.Data} {
		if err := e.store.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	wantError(t, e.do("GET", "/v2/app/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
	// Forgotten: the next GET asks the store, which says so too.
	wantError(t, e.do("GET", "/v2/app/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
}
