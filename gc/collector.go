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
}

// Defaults of Options.
const (
	defaultConcurrency = 16
	defaultBatch       = 10000
	// orphanMargin is added to purge_after + grace before an unnamed data
	// object is collected: a commit in flight finishes well within it.
	orphanMargin = time.Hour
	// defaultLinkTTL is the registry's default BlobLinkTTL.
	defaultLinkTTL = 5 * time.Minute
	// repoConcurrency bounds the repositories judged at once (each with
	// up to Concurrency requests of its own).
	repoConcurrency = 4
	// deadSweep: a sweep entry whose heartbeat is older is a dead run's.
	deadSweep = time.Hour
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
	if opts.LinkTTL == 0 {
		opts.LinkTTL = defaultLinkTTL
	}
	if opts.Fence == 0 {
		opts.Fence = tombstone.Fence
	}
	if ledger == nil {
		ledger = noLedger{}
	}
	return &Collector{store: store, meta: meta, ledger: ledger, opts: opts}
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
	mu    sync.Mutex
	rep   Report
	swept bool // the sweep entry is written and the fence waited
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
	r := &run{c: c, id: newRunID()}
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
	if r.swept {
		if eerr := tombstone.EndSweep(bg, r.c.store, r.id); eerr != nil && err == nil {
			err = eerr
		}
	}
	r.mu.Lock()
	r.rep.Finished = time.Now().UTC()
	if d := r.rep.Finished.Sub(r.rep.Started); d < 0 || r.rep.Started.IsZero() {
		r.rep.Finished = r.rep.Started
	}
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
