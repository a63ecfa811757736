package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gc"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/retention"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/pace"
)

// collectorRun is one collection (*gc.Collector).
type collectorRun interface {
	Run(ctx context.Context) (gc.Report, error)
}

// gcBackend is what the scheduler and the API need of package gc
// (gcwire.go builds the real one; tests pass fakes).
type gcBackend struct {
	// collector returns a collector with opts (nil: none available).
	collector func(opts gc.Options) collectorRun
	// reports lists the n newest run reports, newest first.
	reports func(ctx context.Context, n int) ([]gc.Report, error)
	// retention is the pass each collection runs first (nil: no rule
	// deletes tags).
	retention retention.Applier
}

// errGCRunning: this replica runs a collection already, or another
// collector holds the lease. errGCRecent: a scheduled try found that a
// collection succeeded less than gc.interval ago.
var (
	errGCRunning = errors.New("a garbage collection is running")
	errGCRecent  = errors.New("a garbage collection ran less than gc.interval ago")
)

// collection runs this replica's garbage collections: on a schedule when
// gc.enabled, and on demand (POST /api/v1/gc/runs). At most one at a time
// per replica; across replicas the lease (gc.AcquireLease) keeps it to one
// at a time, which only saves work: correctness never depends on it.
type collection struct {
	store      storage.Store
	cfg        config.GC
	purgeAfter time.Duration
	backend    gcBackend
	owner      string
	log        *slog.Logger
	metrics    *gcMetrics
	running    atomic.Bool
	// runs is the lifetime of on-demand runs: they outlive their request
	// and end with the server (stop).
	runs   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newCollection(cfg config.Config, store storage.Store, backend gcBackend, log *slog.Logger, m *gcMetrics) *collection {
	runs, cancel := context.WithCancel(context.Background())
	return &collection{store: store, cfg: cfg.GC, purgeAfter: cfg.Uploads.PurgeAfter, backend: backend,
		owner: leaseOwner(), log: log, metrics: m, runs: runs, cancel: cancel}
}

// leaseOwner names this process in the lease: host, pid and a random
// part (a restarted process is another owner).
func leaseOwner() string {
	host, _ := os.Hostname()
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// GCOptions are the collector options cfg gives (gc.grace, gc.dry_run,
// gc.referrers, gc.concurrency, uploads.purge_after); `slipway gc` and the
// server alike.
func GCOptions(cfg config.Config) gc.Options {
	return gc.Options{
		Grace:             cfg.GC.Grace,
		UploadsPurgeAfter: cfg.Uploads.PurgeAfter,
		DryRun:            cfg.GC.DryRun,
		KeepReferrers:     cfg.GC.Referrers == config.ReferrersKeep,
		Concurrency:       cfg.GC.Concurrency,
	}
}

// loop tries a collection every gc.interval until ctx ends, when
// gc.enabled. The first try waits a random part of the interval, so
// replicas started together do not all reach for the lease at once.
func (g *collection) loop(ctx context.Context) {
	if !g.cfg.Enabled {
		return
	}
	wait := time.Duration(mrand.Int64N(int64(g.cfg.Interval)))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = g.cfg.Interval
		run, err := g.start(ctx, "schedule", g.cfg.DryRun)
		if err != nil {
			if errors.Is(err, errGCRunning) || errors.Is(err, errGCRecent) {
				g.log.Debug("gc: not started", "reason", err.Error())
			} else {
				g.log.Warn("gc: not started", "error", err.Error())
			}
			continue
		}
		<-run.done
	}
}

// started is a collection under way.
type started struct {
	id   chan string   // the run id, once the collector has reported it
	done chan struct{} // closed at the end
}

// start begins a collection in the background if this replica runs none
// and it gets the lease; errGCRunning (wrapping the lease's holder)
// otherwise. ctx bounds the run (the server's, for on-demand runs).
func (g *collection) start(ctx context.Context, trigger string, dryRun bool) (*started, error) {
	if g.backend.collector == nil {
		return nil, errors.New("gc: no collector in this build")
	}
	if !g.running.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("%w on this replica", errGCRunning)
	}
	lease, err := gc.AcquireLease(ctx, g.store, g.owner, g.cfg.Lease)
	if err != nil {
		g.running.Store(false)
		if errors.Is(err, gc.ErrLeaseHeld) {
			g.metrics.runs.WithLabelValues("lease_held").Inc()
			return nil, fmt.Errorf("%w: %w", errGCRunning, err)
		}
		return nil, err
	}
	if trigger == "schedule" && g.ranRecently(ctx, lease.Taken()) {
		g.running.Store(false)
		_ = lease.Release(context.WithoutCancel(ctx))
		g.metrics.runs.WithLabelValues("recent").Inc()
		return nil, errGCRecent
	}
	s := &started{id: make(chan string, 1), done: make(chan struct{})}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(s.done)
		defer g.running.Store(false)
		held, release := lease.Keep(ctx, func(err error) { g.log.Warn("gc: lease", "error", err.Error()) })
		defer release()
		g.run(held, trigger, dryRun, s.id)
	}()
	return s, nil
}

// ranRecently: the newest successful run (a real one, unless gc.dry_run)
// started less than 9/10 of
// gc.interval before now (the lease's taking, both by the store's
// clock). Every replica tries every interval; this keeps the fleet to
// about one collection per interval, not one per replica. Unknown (no
// clock, reports unreadable): not recent.
func (g *collection) ranRecently(ctx context.Context, now time.Time) bool {
	if now.IsZero() || g.backend.reports == nil {
		return false
	}
	reps, err := g.backend.reports(ctx, 5)
	if err != nil {
		return false
	}
	for _, r := range reps {
		// An on-demand dry run does not stand for the real run due.
		if !r.Finished.IsZero() && r.Error == "" && (!r.DryRun || g.cfg.DryRun) {
			return now.Sub(r.Started) < g.cfg.Interval*9/10
		}
	}
	return false
}

// run is one collection, its summary log line and its metrics.
func (g *collection) run(ctx context.Context, trigger string, dryRun bool, id chan<- string) {
	opts := GCOptions(config.Config{GC: g.cfg, Uploads: config.Uploads{PurgeAfter: g.purgeAfter}})
	opts.DryRun = opts.DryRun || dryRun
	tell := func(rep gc.Report) {
		if rep.Run != "" {
			select {
			case id <- rep.Run:
			default:
			}
		}
		g.metrics.pending.Set(float64(rep.Pending))
	}
	opts.Progress = tell
	if rrep, ran, err := applyRetention(ctx, g.backend.retention, opts.DryRun); err != nil {
		g.log.Warn("gc: retention failed; collecting anyway", "trigger", trigger, "summary", rrep.Summary(), "error", err.Error())
	} else if ran && len(rrep.Errors) > 0 {
		g.log.Warn("gc: retention finished with errors", "trigger", trigger, "summary", rrep.Summary())
	} else if ran {
		g.log.Info("gc: retention finished", "trigger", trigger, "summary", rrep.Summary())
	}
	begun := time.Now()
	rep, err := g.backend.collector(opts).Run(ctx)
	took := time.Since(begun)
	tell(rep)
	g.metrics.finished(rep, err, took)
	attrs := append(summaryAttrs(rep, took), "trigger", trigger)
	if err != nil {
		g.log.Warn("gc run failed", append(attrs, "error", err.Error())...)
		return
	}
	g.log.Info("gc run finished", attrs...)
}

// summaryAttrs are the numbers of a run, for its log line.
func summaryAttrs(rep gc.Report, took time.Duration) []any {
	return []any{"run", rep.Run, "dry_run", rep.DryRun,
		"examined_objects", rep.Examined.Objects, "examined_bytes", rep.Examined.Bytes,
		"freed_objects", rep.Freed.Objects, "freed_bytes", rep.Freed.Bytes,
		"rescued", rep.Rescued, "pending", rep.Pending, "duration", took.Round(time.Millisecond).String()}
}

// stop ends on-demand runs and waits for every run to finish (a run
// stopped midway leaves the store consistent; the next one finishes).
func (g *collection) stop() {
	g.cancel()
	g.wg.Wait()
}

// lastFinished is the report of the newest finished run among the last
// few (ok false: none).
func (g *collection) lastFinished(ctx context.Context) (gc.Report, bool, error) {
	if g.backend.reports == nil {
		return gc.Report{}, false, nil
	}
	reps, err := g.backend.reports(ctx, 10)
	if err != nil {
		return gc.Report{}, false, err
	}
	for _, r := range reps {
		if !r.Finished.IsZero() {
			return r, true, nil
		}
	}
	return gc.Report{}, false, nil
}

// CollectOnce runs one collection on store, as `slipway gc` does, while
// replicas keep serving: first the retention pass when cfg has rules
// that delete tags (dry when opts.DryRun), whose outcome goes to
// retained (not called without such rules; its error does not stop the
// collection, see applyRetention), then the collector, whose reads and
// deletes go through collect (store itself, or store paced: GentlePace).
// It takes the lease when it is free (so that no
// scheduled run starts meanwhile) and runs anyway when another collector
// holds it (or takes it over), telling held why: two collectors at once
// are safe, only slower. A failed lease request is a store failure and
// ends it.
func CollectOnce(ctx context.Context, cfg config.Config, store, collect storage.Store, opts gc.Options, held func(error), retained func(retention.Report, error)) (gc.Report, error) {
	lease, err := gc.AcquireLease(ctx, store, "slipway gc "+leaseOwner(), cfg.GC.Lease)
	switch {
	case errors.Is(err, gc.ErrLeaseHeld):
		held(err)
	case err != nil:
		return gc.Report{}, err
	default:
		// The operator asked for this run: it goes on even if the lease
		// is lost (only renewals stop).
		_, release := lease.Keep(ctx, held)
		defer release()
	}
	quiet := slog.New(slog.DiscardHandler)
	meta := registry.New(store, registry.Options{Logger: quiet}).Metadata()
	ledger := promote.New(store, meta, promote.Options{Stages: cfg.Stages, Logger: quiet})
	collectMeta := meta
	if collect != store {
		collectMeta = registry.New(collect, registry.Options{Logger: quiet}).Metadata()
	}
	b := gcBackendFor(store, collect, collectMeta, newRetention(cfg, store, meta, ledger, quiet))
	if rep, ran, err := applyRetention(ctx, b.retention, opts.DryRun); ran {
		retained(rep, err)
	}
	return b.collector(opts).Run(ctx)
}

// GentlePace is the pace of a collection that shares the store with
// clients, as a replica's own collections keep while it serves them:
// gc.busy_concurrency requests in flight, each place busy at most
// gc.busy_share of the time (docs/architecture.md 5.5).
func GentlePace(cfg config.GC) pace.Bound {
	return pace.Bound{InFlight: cfg.BusyConcurrency, Share: cfg.BusyShare}
}

// GentleStore is store at GentlePace throughout, the store `slipway gc
// --gentle` collects through: a process apart cannot see the replicas'
// clients.
func GentleStore(cfg config.GC, store storage.Store) storage.Store {
	bound := GentlePace(cfg)
	return pace.Wrap(store, func() pace.Bound { return bound })
}
