package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// hookStore lets a test act at the collector's tombstone writes (writes
// of tombstone shards, decoded).
type hookStore struct {
	storage.Store
	once     sync.Once
	onMark   func(objectKey string) // after the first tombstone is written
	onCommit func(objectKey string) // before the first commit is sent
}

// turning lists, sorted, the object keys whose tombstones a write of the
// shard at key with body puts in state to (and were not before).
func (h *hookStore) turning(ctx context.Context, key string, body []byte, to tombstone.State) []string {
	var before, after struct {
		Tombs map[string]tombstone.Tomb `json:"tombs"`
	}
	if rc, _, err := h.Store.Get(ctx, key, storage.GetOptions{}); err == nil {
		_ = json.NewDecoder(rc).Decode(&before)
		rc.Close()
	}
	if json.Unmarshal(body, &after) != nil {
		return nil
	}
	var out []string
	for k, t := range after.Tombs {
		if t.State == to && before.Tombs[k].State != to {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func (h *hookStore) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	return h.put(ctx, key, r, func(r io.Reader) (storage.Info, error) { return h.Store.PutIfAbsent(ctx, key, r, size) })
}

func (h *hookStore) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (storage.Info, error) {
	return h.put(ctx, key, r, func(r io.Reader) (storage.Info, error) { return h.Store.PutIfMatch(ctx, key, r, size, etag) })
}

func (h *hookStore) put(ctx context.Context, key string, r io.Reader, put func(io.Reader) (storage.Info, error)) (storage.Info, error) {
	if !strings.HasPrefix(key, tombstone.Prefix) {
		return put(r)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return storage.Info{}, err
	}
	if h.onCommit != nil {
		if ks := h.turning(ctx, key, body, tombstone.Deleting); len(ks) > 0 {
			h.once.Do(func() { h.onCommit(ks[0]) })
		}
	}
	var marked []string
	if h.onMark != nil {
		marked = h.turning(ctx, key, body, tombstone.Marked)
	}
	info, err := put(bytes.NewReader(body))
	if err == nil && len(marked) > 0 {
		h.once.Do(func() { h.onMark(marked[0]) })
	}
	return info, err
}

// rescueFirst is a hook that rescues, as a writer would, the first
// object the collector commits, and names it in *rescued.
func (e *env) rescueFirst(rescued *string) *hookStore {
	return &hookStore{onCommit: func(obj string) {
		*rescued = obj
		t, version, err := tombstone.Read(context.Background(), e.store, obj)
		if err == nil { // as a writer does (tombstone.Guard): for the tombstone's run
			err = tombstone.Rescue(context.Background(), e.store, obj, t.Run, version)
		}
		if err != nil {
			e.t.Fatal(err)
		}
	}}
}

func (e *env) hooked(h *hookStore, opts Options) Report {
	e.t.Helper()
	e.reg.Wait()
	h.Store = e.store
	opts.Fence, opts.LinkTTL = -1, -1
	rep, err := New(h, e.reg.Metadata(), promote.NewLedgerDigests(e.store), opts).Run(context.Background())
	if err != nil {
		e.t.Fatalf("run: %v", err)
	}
	return rep
}

// A writer that rescues a marked manifest link before the commit (a tag
// written after the second look protects the link and the record) keeps
// it, and with it the blob links it needs; the rest goes.
func TestWriterRescueWins(t *testing.T) {
	e := newEnv(t)
	one := e.image("app", "", "one", nil, "layer-1")
	two := e.image("app", "", "two", nil, "layer-2")
	images := map[string][]string{
		registry.ManifestLinkKey("app", one.Digest): e.imageKeys("app", one.Digest),
		registry.ManifestLinkKey("app", two.Digest): e.imageKeys("app", two.Digest),
	}
	var rescued string
	h := e.rescueFirst(&rescued)
	rep := e.hooked(h, Options{})
	if _, ok := images[rescued]; !ok || rep.Rescued != 3 {
		t.Fatalf("rescued %q first, report %+v; want a manifest link, kept with its 2 blob links", rescued, rep)
	}
	for link, keys := range images {
		if link == rescued {
			e.wantPresent(keys...)
		} else {
			e.wantGone(keys...)
		}
	}
	e.verify()
}

// A reference written after the tombstones (a writer that skipped
// protection within the fence) is seen by the second look.
func TestSecondLookSeesNewTag(t *testing.T) {
	e := newEnv(t)
	gone := e.image("app", "", "gone", nil, "layer")
	keys := e.imageKeys("app", gone.Digest)
	raw, err := e.reg.Metadata().ManifestRecord(context.Background(), gone.Digest)
	if err != nil {
		t.Fatal(err)
	}
	h := &hookStore{onMark: func(string) {
		e.putManifest("app", "late", raw.MediaType, raw.Raw)
		e.reg.Wait()
	}}
	rep := e.hooked(h, Options{})
	e.wantPresent(keys...)
	if rep.Rescued == 0 || rep.Freed.Objects != 0 {
		t.Errorf("report %+v", rep)
	}
	e.verify()
}

// Tombstones of other runs: a deleting one is finished, a marked one of
// a dead run (no sweep entry) is removed, a marked one of a live run
// keeps its object this run.
func TestTombstonesOfOtherRuns(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	live := e.image("app", "v1", "live", nil, "l1")
	deleting := e.image("app", "", "deleting", nil, "l2")
	held := e.image("other", "", "held", nil, "l3")
	delKeys := e.imageKeys("app", deleting.Digest)
	heldLink := registry.ManifestLinkKey("other", held.Digest)
	liveLink := registry.ManifestLinkKey("app", live.Digest)
	delDesc := e.blobKeys("app", e.pushBlob("app", []byte("l2")).Digest)[1:] // descriptor and data

	etag, err := tombstone.Mark(ctx, e.store, delDesc[0], "dead")
	if err == nil {
		err = tombstone.Commit(ctx, e.store, delDesc[0], "dead", etag)
	}
	if err == nil {
		_, err = tombstone.Mark(ctx, e.store, liveLink, "dead")
	}
	if err == nil {
		err = tombstone.BeginSweep(ctx, e.store, "busy")
	}
	if err == nil {
		_, err = tombstone.Mark(ctx, e.store, heldLink, "busy")
	}
	if err != nil {
		t.Fatal(err)
	}

	e.run(Options{Grace: time.Hour}) // nothing is old enough: only recovery acts
	e.wantGone(delDesc...)
	e.wantPresent(liveLink, heldLink)
	if e.hasTomb(liveLink) || e.hasTomb(delDesc[0]) {
		t.Errorf("tombstones of the dead run are left")
	}

	e.run(Options{})
	e.wantPresent(heldLink)
	e.wantGone(delKeys...)
	if err := tombstone.Remove(ctx, e.store, heldLink); err != nil {
		t.Fatal(err)
	}
	if err := tombstone.EndSweep(ctx, e.store, "busy"); err != nil {
		t.Fatal(err)
	}
	e.run(Options{})
	e.wantGone(heldLink)
	e.wantPresent(liveLink)
	e.verify()
}

// A run whose sweep entry disappears (another run judged it dead) stops
// before it commits anything.
func TestZombieStops(t *testing.T) {
	e := newEnv(t)
	gone := e.image("app", "", "gone", nil, "layer")
	keys := e.imageKeys("app", gone.Digest)
	h := &hookStore{onMark: func(string) {
		sweeps, err := tombstone.Sweeps(context.Background(), e.store)
		if err != nil || len(sweeps) != 1 {
			t.Fatalf("sweeps: %v %v", sweeps, err)
		}
		if err := tombstone.EndSweep(context.Background(), e.store, sweeps[0].Run); err != nil {
			t.Fatal(err)
		}
	}}
	h.Store = e.store
	e.reg.Wait()
	_, err := New(h, e.reg.Metadata(), nil, Options{Fence: -1, LinkTTL: -1}).Run(context.Background())
	if !errors.Is(err, errStopped) {
		t.Fatalf("run: %v, want it stopped", err)
	}
	e.wantPresent(keys...)
	e.run(Options{})
	e.wantGone(keys...)
	e.verify()
}

// A subject a writer rescues keeps its referrers (follow_subject).
func TestRescuedSubjectKeepsReferrers(t *testing.T) {
	e := newEnv(t)
	subject := e.image("app", "", "subject", nil, "s")
	sig := e.image("app", "", "sig", &subject, "sig")
	keys := append(e.imageKeys("app", subject.Digest), e.imageKeys("app", sig.Digest)...)
	var rescued string
	h := e.rescueFirst(&rescued)
	e.hooked(h, Options{})
	if rescued != registry.ManifestLinkKey("app", subject.Digest) {
		t.Fatalf("first commit %q, want the subject's link", rescued)
	}
	e.wantPresent(keys...)
	e.verify()
}

// A push that reuses a garbage image's blobs after the second look (the
// registry's writers protect what they rely on) keeps them: the new image
// pulls whole, and the collector's commits of the blob links lose.
func TestPushDuringSweepKeepsItsBlobs(t *testing.T) {
	e := newEnv(t)
	e.reg.Metadata().Guard().CacheFor = 0 // no fence in this test: writers always look
	old := e.image("app", "", "shared-config", nil, "shared-layer")
	oldLink := registry.ManifestLinkKey("app", old.Digest)
	var pushed v1.Descriptor
	h := &hookStore{onCommit: func(obj string) {
		if obj != oldLink {
			t.Errorf("first commit %s, want the manifest link %s", obj, oldLink)
		}
		pushed = e.image("app", "v2", "shared-config", nil, "shared-layer", "new-layer")
	}}
	rep := e.hooked(h, Options{})
	e.wantGone(oldLink)
	e.wantPresent(e.imageKeys("app", pushed.Digest)...)
	if rep.Rescued < 2 {
		t.Errorf("rescued %d, want the config and layer links", rep.Rescued)
	}
	e.verify()
}
