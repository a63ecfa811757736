package gc

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/tombstone"
)

// A run killed mid-way leaves its sweep entry and marked tombstones: the
// next run leaves them alone while the entry's heartbeat (its ModTime,
// the store's clock) is recent, and once it is older than deadSweep
// (minutes, not an hour) removes them and frees everything.
func TestKilledRunRecoveredAfterMinutes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	gone := e.image("app", "", "gone", nil, "layer")
	keys := e.imageKeys("app", gone.Digest)
	link := registry.ManifestLinkKey("app", gone.Digest)
	if err := tombstone.BeginSweep(ctx, e.store, "killed"); err != nil {
		t.Fatal(err)
	}
	if _, err := tombstone.Mark(ctx, e.store, link, "killed"); err != nil {
		t.Fatal(err)
	}
	e.age(time.Minute, tombstone.SweepKey("killed"))
	e.run(Options{})
	e.wantPresent(keys...) // the manifest link is held, and what it needs with it
	e.wantPresent(tombstone.Key(link))
	if p := e.verifyProblems(); len(p) > 0 {
		t.Fatalf("after a run beside a live sweep: %q", p)
	}

	e.age(3*time.Minute, tombstone.SweepKey("killed"))
	rep := e.run(Options{})
	e.wantGone(keys...)
	if rep.Freed.Objects == 0 {
		t.Errorf("freed nothing: %+v", rep)
	}
	e.verify()
}

// A run refreshes its sweep entry in the background, the fence wait
// included.
func TestHeartbeatDuringFence(t *testing.T) {
	e := newEnv(t)
	e.image("app", "", "gone", nil, "layer")
	var beat time.Duration
	h := &hookStore{onMark: func(string) {
		sweeps, err := tombstone.Sweeps(context.Background(), e.store)
		if err != nil || len(sweeps) != 1 {
			t.Fatalf("sweeps: %v %v", sweeps, err)
		}
		beat = sweeps[0].Heartbeat.Sub(sweeps[0].Started)
	}}
	h.Store = e.store
	e.reg.Wait()
	c := New(h, e.reg.Metadata(), nil, Options{Fence: 300 * time.Millisecond})
	c.beatEvery = 20 * time.Millisecond
	if _, err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if beat < 200*time.Millisecond {
		t.Errorf("last heartbeat %s after the start of a 300 ms fence, want beats every 20 ms", beat)
	}
	e.verify()
}

// A run whose last heartbeat was sent beatStale ago or more commits
// nothing: another run may have judged it dead.
func TestStaleHeartbeatStopsCommits(t *testing.T) {
	r := &run{}
	r.beat.last = time.Now()
	if err := r.alive(); err != nil {
		t.Fatalf("fresh heartbeat: %v", err)
	}
	r.beat.last = time.Now().Add(-beatStale - time.Second)
	if err := r.alive(); err == nil || !strings.Contains(err.Error(), "heartbeat") {
		t.Fatalf("stale heartbeat: %v, want stopped", err)
	}
	if beatStale+heartbeatEvery >= deadSweep {
		t.Errorf("beatStale %s + heartbeatEvery %s must stay under deadSweep %s", beatStale, heartbeatEvery, deadSweep)
	}
}

// A link older than grace whose descriptor (or manifest record) is gone
// references nothing: it is freed even when a tagged manifest names it;
// a tag's manifest link without a record goes, and the next run frees
// the blob links only it needed.
func TestDanglingLinksFreed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	img := e.image("app", "v1", "img", nil, "kept-layer", "lost-layer")
	lostBlob := e.blobKeys("app", e.pushBlob("app", []byte("lost-layer")).Digest)
	keptBlob := e.blobKeys("app", e.pushBlob("app", []byte("kept-layer")).Digest)
	noRecord := e.image("app", "v2", "no-record", nil, "own-layer")
	noRecordKeys := e.imageKeys("app", noRecord.Digest)
	e.reg.Wait()
	for _, k := range []string{lostBlob[1], registry.ManifestKey(noRecord.Digest)} {
		if err := e.store.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	e.run(Options{Grace: time.Hour}) // young: kept
	e.wantPresent(lostBlob[0], noRecordKeys[0])

	rep := e.run(Options{DryRun: true})
	if !slices.Contains(rep.Deleted, lostBlob[0]) || !slices.Contains(rep.Deleted, noRecordKeys[0]) {
		t.Errorf("dry run lists %q, want the dangling links", rep.Deleted)
	}
	e.run(Options{})
	e.wantGone(lostBlob[0], noRecordKeys[0])
	e.run(Options{})
	e.wantGone(noRecordKeys[2:]...) // config and layer: only the record-less manifest needed them
	e.wantPresent(registry.ManifestLinkKey("app", img.Digest), registry.ManifestKey(img.Digest))
	e.wantPresent(keptBlob...)
}

// With the default options one run frees the blob data whose last link it
// removed (no LinkTTL hold), and a replica that still remembers the link
// answers the blob's GET with 404 BLOB_UNKNOWN, neither 500 nor bytes.
func TestReplicaGetAfterDefaultRun(t *testing.T) {
	e := newEnv(t)
	gone := e.image("app", "", "gone", nil, "layer")
	layer := e.pushBlob("app", []byte("layer"))
	keys := e.imageKeys("app", gone.Digest)
	replica := newEnvOn(t, e.dir)
	path := "/v2/app/blobs/" + layer.Digest.String()
	if res, b := replica.do("GET", path, nil); res.StatusCode != http.StatusOK || string(b) != "layer" {
		t.Fatalf("GET before: %d %s", res.StatusCode, b)
	}
	e.reg.Wait()
	c := New(e.store, e.reg.Metadata(), promote.NewLedgerDigests(e.store), Options{Fence: -1})
	if _, err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.wantGone(keys...)
	res, b := replica.do("GET", path, nil)
	var body struct{ Errors []struct{ Code string } }
	_ = json.Unmarshal(b, &body)
	if res.StatusCode != http.StatusNotFound || len(body.Errors) == 0 || body.Errors[0].Code != "BLOB_UNKNOWN" {
		t.Errorf("GET through the replica after the run: %d %s", res.StatusCode, b)
	}
	e.verify()
}
