package server

import (
	"context"
	"sync"
	"time"

	"github.com/slipway/slipway/gc"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/retention"
	"github.com/slipway/slipway/storage"
)

// gcBackendFor is package gc on store: collectors over collect (store,
// or store with a bound on the requests in flight: storage/pace), meta
// (metadata on collect) and the promotion ledger, and the reports under
// gc/runs/ (read from store);
// with ret (nil: no retention rules), the retention pass run before each
// collection when a rule deletes tags, and its untagged_after as the
// collectors' per-repository hold on untagged manifests. The
// ledger reader and the collectors live as long as the server: each
// keeps what it read of immutable records (ledger records, manifests'
// references) for the next run.
func gcBackendFor(store, collect storage.Store, meta *registry.Metadata, ret *retention.Retention) gcBackend {
	k := &keptCollectors{store: collect, meta: meta, ledger: promote.NewLedgerDigests(collect), byOpts: map[collectorKey]*gc.Collector{}}
	b := gcBackend{
		collector: k.collector,
		reports: func(ctx context.Context, n int) ([]gc.Report, error) {
			return gc.ListReports(ctx, store, n)
		},
	}
	if ret != nil {
		k.graceFor = ret.UntaggedAfter
		if ret.Enabled() {
			b.retention = ret
		}
	}
	return b
}

// keptCollectors are one collector per set of options (the server's
// configuration gives one for real runs and one for dry runs).
type keptCollectors struct {
	store  storage.Store
	meta   *registry.Metadata
	ledger gc.LedgerReader
	// graceFor is every collector's Options.GraceFor (retention's
	// untagged_after; nil: none), the same for all options.
	graceFor func(repo string) time.Duration
	mu       sync.Mutex
	byOpts   map[collectorKey]*gc.Collector
	// progress is the Progress of the run under way (a replica runs one
	// at a time; Options.Progress is fixed when a collector is made).
	progress func(gc.Report)
}

type collectorKey struct {
	grace, purgeAfter time.Duration
	dryRun, keepRefs  bool
}

func (k *keptCollectors) collector(opts gc.Options) collectorRun {
	key := collectorKey{opts.Grace, opts.UploadsPurgeAfter, opts.DryRun, opts.KeepReferrers}
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.byOpts[key]
	if !ok {
		kept := opts
		kept.Progress = k.tell
		kept.GraceFor = k.graceFor
		c = gc.New(k.store, k.meta, k.ledger, kept)
		k.byOpts[key] = c
	}
	return keptRun{k: k, c: c, progress: opts.Progress}
}

func (k *keptCollectors) tell(rep gc.Report) {
	k.mu.Lock()
	p := k.progress
	k.mu.Unlock()
	if p != nil {
		p(rep)
	}
}

// keptRun is one run of a kept collector, reporting to its own Progress.
type keptRun struct {
	k        *keptCollectors
	c        *gc.Collector
	progress func(gc.Report)
}

func (r keptRun) Run(ctx context.Context) (gc.Report, error) {
	r.k.mu.Lock()
	r.k.progress = r.progress
	r.k.mu.Unlock()
	defer func() {
		r.k.mu.Lock()
		r.k.progress = nil
		r.k.mu.Unlock()
	}()
	return r.c.Run(ctx)
}
