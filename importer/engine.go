package importer

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/importer/stocklayout"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// This file is the import engine (docs/architecture.md §7.5): every
// selected repository planned (reads only, a few repositories ahead),
// then imported in the crash
// order of a push — catalog entry, blobs, manifests children first, tags
// last — through the registry's own metadata layer. Every write reads
// first, so a second run writes nothing and a run killed at any point is
// finished by the next one.

// ImmutableTagger writes a tag into an immutable stage through the
// promotion engine's commit, with a ledger record of outcome "imported"
// (promote.Service.ImportTag): imported is false when the tag already
// named d.
type ImmutableTagger interface {
	ImportTag(ctx context.Context, repo, tag string, d digest.Digest, source, actor string) (imported bool, err error)
}

// OutsideImporter makes a stock data object, named by its bucket key and
// left in place, blob d of repo (same-bucket reference mode, §7.2);
// created as registry.Metadata.ImportBlob.
type OutsideImporter interface {
	ImportOutsideBlob(ctx context.Context, repo string, d digest.Digest, bucketKey string, size int64) (created bool, err error)
}

// Options configure Run.
type Options struct {
	// Source is the stock registry's store, rooted at its rootdirectory.
	// Run reads it through storage.ReadOnly whatever it is.
	Source storage.Store
	// SourceName names the source in the summary and in ledger records
	// ("/var/lib/registry", "s3://bucket/root").
	SourceName string
	// Registry is Slipway's registry on Store (registry.New(Store, …)):
	// its metadata layer writes everything but blob data.
	Registry *registry.Registry
	// Store is Slipway's store, where copied blob data is written (a
	// storage.Copier there copies without the bytes passing through).
	Store storage.Store
	// Stages are Slipway's stages; a repository mapped into an immutable
	// one gets its tags through Tagger.
	Stages []config.Stage
	// Tagger writes tags into immutable stages; nil: such tags are
	// problems.
	Tagger ImmutableTagger
	// Actor is who runs the import, for ledger records.
	Actor string
	// Repositories selects stock repositories by name (path.Match; ""
	// selects all).
	Repositories string
	// StageMap renames repositories into Slipway.
	StageMap StageMap
	// Reference, when set, turns on same-bucket reference mode: it gives
	// the bucket key of a stock object (its store key), which an outside
	// descriptor then names; the registry's metadata must implement
	// OutsideImporter. The caller decides that the source is Slipway's
	// own bucket and that the stock layout lies outside Slipway's keys.
	Reference func(stockKey string) (bucketKey string)
	// DryRun writes nothing and reports what would be written.
	DryRun bool
	// Verify rehashes every blob to import from the source first; a
	// mismatch is a problem and the blob is not imported.
	Verify bool
	// OverwriteMutable replaces a tag Slipway has with another digest
	// (never in an immutable stage, never a fixed tag).
	OverwriteMutable bool
	// StopAtFirstProblem ends the run after the first problem
	// (--keep-going=false).
	StopAtFirstProblem bool
	// Parallel bounds the blobs imported (and verified) at once; 0: 4.
	Parallel int
	// Progress, when set, counts the work as it goes.
	Progress *Progress
}

// engine is one run.
type engine struct {
	opts    Options
	src     storage.Store
	layout  *stocklayout.Layout
	meta    *registry.Metadata
	outside OutsideImporter
	t       *tally
	prog    *Progress
	stop    context.CancelFunc // ends the run's context (StopAtFirstProblem)
	// verifyBufs are --verify's read buffers, shared by every repository
	// imported at once.
	verifyBufs sync.Pool
}

// job is one selected repository and its plan.
type job struct {
	stock, repo string
	plan        Plan
}

// Run imports the selected repositories of the stock registry in
// opts.Source into Slipway and returns the summary. Problems with single
// objects are in the summary and the run goes on (unless
// StopAtFirstProblem); the error is what stops the run: a source that is
// not a stock layout (before anything is written), a store that stays
// unavailable, ctx ending. A run stopped at any point leaves only what a
// killed push leaves, and the next run finishes it.
func Run(ctx context.Context, opts Options) (Summary, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	if _, err := path.Match(opts.Repositories, ""); err != nil {
		return Summary{}, fmt.Errorf("--repositories %q: %w", opts.Repositories, err)
	}
	e := &engine{opts: opts, src: storage.ReadOnly(opts.Source), meta: opts.Registry.Metadata(),
		t: newTally(opts.SourceName, opts.DryRun, opts.Verify), prog: opts.Progress}
	e.verifyBufs.New = func() any { b := make([]byte, verifyBufferSize); return &b }
	if opts.Reference != nil {
		oi, ok := any(e.meta).(OutsideImporter)
		if !ok {
			return Summary{}, errors.New("same-bucket reference mode: this build's registry cannot write outside descriptors; use --mode=copy")
		}
		e.outside = oi
	}
	var err error
	if e.layout, err = stocklayout.Open(ctx, e.src); err != nil {
		return Summary{}, fmt.Errorf("%s: %w", opts.SourceName, err)
	}
	defer opts.Registry.Wait()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	e.stop = stop
	if opts.StopAtFirstProblem {
		e.t.onProblem = stop
	}
	// Planning runs ahead of the import by at most planAhead
	// repositories: memory holds that many plans (their manifests'
	// bytes), whatever the registry's size.
	jobs := make(chan job, planAhead)
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error {
		defer close(jobs)
		return e.plan(gctx, jobs)
	})
	// Repositories are independent (a blob two of them share is linked
	// by both; its descriptor is put-if-absent): several at once keep
	// the store busy while one waits on its few large blobs.
	for range repoParallel {
		g.Go(func() error {
			for j := range jobs {
				if err := e.repository(gctx, j); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err = g.Wait()
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil && ctx.Err() == nil && errors.Is(err, context.Canceled) {
		err = nil // stopped at the first problem, which the summary holds
	}
	return e.t.summary(), err
}

// planAhead bounds the repositories planned and not yet imported;
// repoParallel repositories are planned, and imported, at once.
const (
	planAhead    = 8
	repoParallel = 4
)

// plan lists and selects the stock repositories, maps their names and
// plans each one (reads only), sending the plans to jobs in order.
func (e *engine) plan(ctx context.Context, jobs chan<- job) error {
	stock, problems, err := e.layout.Repositories(ctx)
	if err != nil {
		return err
	}
	for _, p := range problems {
		e.t.problem("", p)
	}
	names := make(chan string)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(names)
		for _, name := range stock {
			if ok, _ := path.Match(e.opts.Repositories, name); e.opts.Repositories != "" && !ok {
				continue
			}
			select {
			case names <- name:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range repoParallel {
		g.Go(func() error {
			for name := range names {
				if err := e.planOne(gctx, name, jobs); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// planOne maps and plans one stock repository and sends its plan to jobs.
func (e *engine) planOne(ctx context.Context, name string, jobs chan<- job) error {
	repo, err := e.opts.StageMap.Map(name)
	if err != nil {
		e.t.problem(stocklayout.Root+"repositories/"+name, err)
		e.t.count(repositories, skipped)
		return nil
	}
	p, err := PlanRepository(ctx, e.layout, name)
	if err != nil {
		return err
	}
	for _, pr := range p.Problems {
		e.t.problem("", pr)
		e.countPlanSkip(pr)
	}
	e.t.mu.Lock()
	e.t.s.UnreferencedLayers += int64(len(p.Unreferenced))
	e.t.mu.Unlock()
	var size int64
	for _, b := range p.Blobs {
		size += b.Size
	}
	e.prog.plan(int64(len(p.Blobs)+len(p.Manifests)+len(p.Tags)), size)
	select {
	case jobs <- job{stock: name, repo: repo, plan: p}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// countPlanSkip counts a manifest or tag the plan skipped.
func (e *engine) countPlanSkip(err error) {
	var se *SkippedError
	if !errors.As(err, &se) {
		return
	}
	switch {
	case strings.HasPrefix(se.What, "manifest "):
		e.t.count(func(s *Summary) *Counts { return &s.Manifests }, skipped)
	case strings.HasPrefix(se.What, "tag "):
		e.t.count(tags, skipped)
	}
}

// repository imports one planned repository: catalog entry, blobs,
// manifests, tags (§7.5 steps 2–5).
func (e *engine) repository(ctx context.Context, j job) error {
	listed, err := e.meta.RepositoryExists(ctx, j.repo)
	if err != nil {
		return e.fail(ctx, "repository "+j.repo, err)
	}
	switch {
	case listed:
		e.t.count(repositories, present)
	case e.opts.DryRun:
		e.t.count(repositories, imported)
	default:
		if err := e.meta.AddRepository(ctx, j.repo); err != nil {
			return e.fail(ctx, "repository "+j.repo, err)
		}
		e.t.count(repositories, imported)
	}
	failed, err := e.blobs(ctx, j.repo, j.plan.Blobs)
	if err != nil {
		return err
	}
	notImported, err := e.manifests(ctx, j.repo, j.plan.Manifests, failed)
	if err != nil {
		return err
	}
	return e.tags(ctx, j, notImported)
}

// fail handles err about object what: a store that stays unavailable
// or the run's context ending stops the run (the error returned); any
// other error is a problem of that object, and the run goes on (nil).
func (e *engine) fail(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, storage.ErrUnavailable) {
		return fmt.Errorf("%s: %w", what, err)
	}
	e.t.problem(what, err)
	return nil
}
