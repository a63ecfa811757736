package gc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// LedgerReader names the digests the promotion ledger keeps alive: every
// digest a record names, by target repository (promote.LedgerDigests).
type LedgerReader interface {
	Digests(ctx context.Context) (map[string][]digest.Digest, error)
}

// Collector frees what no root reaches (docs/architecture.md, "The
// collector"). A Collector may run many times, one run at a time; several
// collectors (replicas, a CLI run) may run at once on one store: the
// tombstone protocol keeps them, and writers, from losing anything.
type Collector struct {
	store  storage.Store
	meta   *registry.Metadata
	ledger LedgerReader
	opts   Options
	mu     sync.Mutex // one run at a time
	// refs caches what manifests reference (immutable records), so the
	// second look and later runs do not read them again.
	refs *lru.Cache[hash, *manifestRefs]
	// beatEvery is heartbeatEvery (tests shorten it).
	beatEvery time.Duration
	// chunk is commitChunk (tests shorten it).
	chunk int
}

// refsCacheEntries bounds Collector.refs (an entry is ~0.5 KB).
const refsCacheEntries = 16384

// Defaults of Options.
const (
	defaultConcurrency = 16
	defaultBatch       = 10000
	// orphanMargin is added to purge_after + grace before an unnamed data
	// object is collected: a commit in flight finishes well within it.
	orphanMargin = time.Hour
	// repoConcurrency bounds the repositories judged at once (each with
	// up to Concurrency requests of its own).
	repoConcurrency = 4
	// heartbeatEvery: a run refreshes its sweep entry this often from
	// announcing its sweep to its end (fence wait, listings and second
	// looks included), in the background.
	heartbeatEvery = 10 * time.Second
	// deadSweep: a sweep entry not refreshed for this long, by the store's
	// clock (its ModTime), is a dead run's: recovery removes the run's
	// marked tombstones, then the entry, so a killed run blocks
	// collection for minutes, not longer. A run still alive but judged
	// dead commits nothing afterwards: it stops before a commit when its
	// last heartbeat was sent more than beatStale ago (a live run's is at
	// most heartbeatEvery old), re-reads its entry before each commit
	// batch (errStopped), and its marked tombstones are gone before its
	// entry is (a commit of a removed tombstone loses). What remains is a
	// commit request sent within beatStale of a heartbeat and landing
	// more than deadSweep - beatStale later, i.e. one request stalled for
	// over a minute (docs/architecture.md 5.5).
	deadSweep = 2 * time.Minute
	beatStale = deadSweep / 2
)

// New returns a collector of the registry on store (meta is the
// registry's metadata layer on the same store; ledger may be nil: no
// promotion ledger).
func New(store storage.Store, meta *registry.Metadata, ledger LedgerReader, opts Options) *Collector {
	if opts.Concurrency <= 0 {
		opts.Concurrency = defaultConcurrency
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = defaultBatch
	}
	if opts.Fence == 0 {
		opts.Fence = tombstone.Fence
	}
	if ledger == nil {
		ledger = noLedger{}
	}
	refs, _ := lru.New[hash, *manifestRefs](refsCacheEntries)
	return &Collector{store: store, meta: meta, ledger: ledger, opts: opts, refs: refs, beatEvery: heartbeatEvery, chunk: commitChunk}
}

type noLedger struct{}

func (noLedger) Digests(context.Context) (map[string][]digest.Digest, error) { return nil, nil }

// Run is one full run: recovery of what dead runs left, then the three
// stages (links, records, orphan data). Its report is stored at the
// start, after each stage and at the end, the error included.
func (c *Collector) Run(ctx context.Context) (Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.begin(ctx)
	if err != nil {
		return Report{}, err
	}
	err = r.stages(ctx)
	return r.finish(ctx, err)
}

// run is the state of one run. Only what every stage needs is here;
// per-repository state lives in the stage that uses it.
type run struct {
	c     *Collector
	id    string
	now   time.Time // the store's time at the start
	began time.Time // this machine's (monotonic) time then
	mu    sync.Mutex
	rep   Report
	swept bool // the sweep entry is written (sweep.go: announce)
	beat  beat // the sweep entry's heartbeat (heartbeat.go)
	// dryGone: in a dry run, hashes of the link keys stage 1 would have
	// deleted, so that stage 2 judges as a real run would.
	dryGone hashSet
	// unlinked: digests of the blob links stage 1 deleted (or, dry, would
	// have), and when it last did (Options.LinkTTL).
	unlinked   hashSet
	lastUnlink time.Time
}

func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *Collector) begin(ctx context.Context) (*run, error) {
	r := &run{c: c, id: newRunID(), began: time.Now()}
	now, err := storeNow(ctx, c.store, r.id)
	if err != nil {
		return nil, fmt.Errorf("gc: reading the store's clock: %w", err)
	}
	r.now = now
	r.rep = Report{Run: r.id, Started: now, DryRun: c.opts.DryRun}
	if err := WriteReport(ctx, c.store, r.rep); err != nil {
		return nil, fmt.Errorf("gc: writing the report: %w", err)
	}
	return r, nil
}

// storeNow is the store's current time: the ModTime of an object written
// now. Ages are judged against it, never against this machine's clock.
func storeNow(ctx context.Context, s storage.Store, run string) (time.Time, error) {
	key := clockKey(run)
	info, err := s.Put(ctx, key, bytes.NewReader(nil), 0)
	if err == nil && info.ModTime.IsZero() {
		info, err = s.Stat(ctx, key)
	}
	if err != nil {
		return time.Time{}, err
	}
	_ = s.Delete(ctx, key)
	return info.ModTime, nil
}

func (r *run) stages(ctx context.Context) error {
	if !r.c.opts.DryRun {
		if err := r.recover(ctx); err != nil {
			return err
		}
	}
	for _, stage := range []func(context.Context) error{r.links, r.records, r.orphans} {
		if err := stage(ctx); err != nil {
			return err
		}
		r.checkpoint(ctx)
	}
	return nil
}

// checkpoint stores the report so far and tells Progress.
func (r *run) checkpoint(ctx context.Context) {
	rep := r.report()
	_ = WriteReport(ctx, r.c.store, rep)
	if r.c.opts.Progress != nil {
		r.c.opts.Progress(rep)
	}
}

func (r *run) report() Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.rep
	rep.Deleted = append([]string(nil), r.rep.Deleted...)
	return rep
}

// finish ends the sweep (best effort, also after an error) and stores the
// final report.
func (r *run) finish(ctx context.Context, err error) (Report, error) {
	bg := context.WithoutCancel(ctx)
	r.beat.stopBeating()
	if r.swept {
		if eerr := tombstone.EndSweep(bg, r.c.store, r.id); eerr != nil && err == nil {
			err = eerr
		}
	}
	r.mu.Lock()
	// In the store's time, as Started: this machine's clock may differ.
	r.rep.Finished = r.rep.Started.Add(time.Since(r.began))
	if err != nil {
		r.rep.Error = err.Error()
	} else {
		r.rep.Pending = 0
	}
	r.mu.Unlock()
	rep := r.report()
	if werr := WriteReport(bg, r.c.store, rep); werr != nil && err == nil {
		err = werr
	}
	// Best effort: a failed prune leaves older reports for the next run.
	_, _ = storage.KeepNewest(bg, r.c.store, runsPrefix, KeptReports)
	if r.c.opts.Progress != nil {
		r.c.opts.Progress(rep)
	}
	return rep, err
}

// examined counts objects looked at.
func (r *run) examined(objects, bytes int64) {
	r.mu.Lock()
	r.rep.Examined.Objects += objects
	r.rep.Examined.Bytes += bytes
	r.mu.Unlock()
}

// freed counts an object freed (or, in a dry run, that would be).
func (r *run) freed(key string, size int64) {
	r.mu.Lock()
	if k, ok := registry.ParseRepoKey(key); ok && k.Kind == registry.KeyBlobs {
		r.unlinked.add(digestHash(k.Digest))
		r.lastUnlink = time.Now()
	}
	r.rep.Freed.Objects++
	r.rep.Freed.Bytes += size
	if len(r.rep.Deleted) < MaxListed {
		r.rep.Deleted = append(r.rep.Deleted, key)
	}
	r.mu.Unlock()
}

func (r *run) count(field *int64, n int64) {
	r.mu.Lock()
	*field += n
	r.mu.Unlock()
}

// errStopped: the run's sweep entry is gone (another run judged it dead).
var errStopped = errors.New("gc: this run's sweep entry is gone (judged dead by another run): stopping")
