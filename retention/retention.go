// Package retention applies the configured retention rules (config
// Retention): it deletes old tags, and only tags. The collector (package
// gc) frees the manifests and blobs no tag or ledger record references any
// more; retention never deletes anything else.
//
// What a pass never touches, whatever the rules say: repositories of an
// immutable stage; tags a promotion wrote (Ledger.Promoted); tags naming a
// digest that one of the newest keep_promotions ledger records of some
// promoted tag named in that repository (Ledger.RecentDigests). A rule
// without dry_run: false only reports. Every pass stores its report
// (report.go).
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// Ledger is what retention reads of the promotion ledger
// (*promote.Service implements it).
type Ledger interface {
	// Promoted reports whether a promotion wrote the tag as it is now
	// (its stamp carries a ledger sequence number). A stamp it cannot
	// read counts as promoted.
	Promoted(st registry.TagState) bool
	// RecentDigests returns, for every promoted tag, the digests its
	// newest n ledger records named, by the repository they apply to:
	// the record's target repository and its source repository.
	RecentDigests(ctx context.Context, n int) (map[string]map[digest.Digest]bool, error)
}

// Options configure a Retention.
type Options struct {
	Rules  []config.RetentionRule
	Stages []config.Stage
	Ledger Ledger // required when a rule sets keep_promotions
	Logger *slog.Logger
}

// Retention applies rules to the repositories of one store. It holds no
// state between passes: any replica (or `slipway gc`) may run one.
type Retention struct {
	store storage.Store
	meta  *registry.Metadata
	opts  Options
	log   *slog.Logger
}

// New returns the rules of opts on the registry's metadata and its store
// (the store reports are written to).
func New(store storage.Store, meta *registry.Metadata, opts Options) *Retention {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Retention{store: store, meta: meta, opts: opts, log: opts.Logger}
}

// Enabled reports whether any rule deletes (or reports) tags: a pass is
// worth running.
func (r *Retention) Enabled() bool {
	for _, rule := range r.opts.Rules {
		if rule.DeletesTags() {
			return true
		}
	}
	return false
}

// ApplyOptions adjust one pass.
type ApplyOptions struct {
	// DryRun makes every rule only report, whatever its dry_run says
	// (the collector's own dry run).
	DryRun bool
}

// Applier is the pass the collector runs before its mark phase, when
// retention is configured (*Retention implements it).
type Applier interface {
	Apply(ctx context.Context, o ApplyOptions) (Report, error)
}

// rule returns the rule applying to repo (the first that matches) and its
// index; ok is false when none does, or repo is in an immutable stage.
func (r *Retention) rule(repo string) (config.RetentionRule, int, bool) {
	st, inStage := config.StageOf(r.opts.Stages, repo)
	if inStage && st.Immutable {
		return config.RetentionRule{}, 0, false
	}
	for i, rule := range r.opts.Rules {
		if !auth.MatchGlob(rule.Repositories, repo) {
			continue
		}
		if len(rule.Stages) > 0 && !(inStage && slices.Contains(rule.Stages, st.Name)) {
			continue
		}
		return rule, i, true
	}
	return config.RetentionRule{}, 0, false
}

// UntaggedAfter is how long an untagged manifest of repo must stay
// according to the rules (0: no rule says; the collector's grace alone
// applies). Retention deletes no manifest itself: the collector frees an
// untagged manifest of repo only once it is older than both its grace and
// this.
func (r *Retention) UntaggedAfter(repo string) time.Duration {
	rule, _, ok := r.rule(repo)
	if !ok {
		return 0
	}
	return rule.UntaggedAfter
}

// Apply runs one pass over every repository: the tags each rule would
// delete are deleted (or, for a dry run, only reported). The report is
// stored at the start of the pass and again at its end; its start time is
// the store's clock (the report's write time), against which tag ages are
// judged. A failure in one repository is reported and the pass goes on;
// the error is for failures that stop the pass (listing the catalog,
// reading the ledger, storing the report).
func (r *Retention) Apply(ctx context.Context, o ApplyOptions) (Report, error) {
	rep := newReport(o.DryRun)
	now, err := r.begin(ctx, &rep)
	if err != nil {
		return rep, err
	}
	recent, err := r.recentByN(ctx)
	if err != nil {
		return rep, r.end(ctx, &rep, err)
	}
	after := ""
	for {
		repos, more, err := r.meta.Repositories(ctx, after, 1000)
		if err != nil {
			return rep, r.end(ctx, &rep, fmt.Errorf("retention: listing repositories: %w", err))
		}
		for _, repo := range repos {
			after = repo
			rule, idx, ok := r.rule(repo)
			if !ok || !rule.DeletesTags() {
				continue
			}
			if err := r.applyRepo(ctx, &rep, repo, rule, idx, now, o.DryRun, recent[rule.KeepPromotions][repo]); err != nil {
				if ctx.Err() != nil {
					return rep, r.end(ctx, &rep, ctx.Err())
				}
				rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", repo, err))
				r.log.WarnContext(ctx, "retention: a repository failed", "repository", repo, "error", err.Error())
			}
		}
		if !more || len(repos) == 0 {
			break
		}
	}
	return rep, r.end(ctx, &rep, nil)
}

// recentByN reads the ledger once for each keep_promotions some rule
// sets (usually one value): the digests to keep, by that N and by
// repository. A rule without keep_promotions finds nothing there.
func (r *Retention) recentByN(ctx context.Context) (map[int]map[string]map[digest.Digest]bool, error) {
	out := map[int]map[string]map[digest.Digest]bool{}
	for _, rule := range r.opts.Rules {
		n := rule.KeepPromotions
		if _, done := out[n]; done || n <= 0 {
			continue
		}
		if r.opts.Ledger == nil {
			return nil, errors.New("retention: keep_promotions needs the promotion ledger")
		}
		recent, err := r.opts.Ledger.RecentDigests(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("retention: reading the ledger: %w", err)
		}
		out[n] = recent
	}
	return out, nil
}

// promoted: Ledger.Promoted, or without a ledger any stamped tag (only
// promotion writes stamps: registry.Metadata.SetTag).
func (r *Retention) promoted(st registry.TagState) bool {
	if r.opts.Ledger == nil {
		return st.Stamp != ""
	}
	return r.opts.Ledger.Promoted(st)
}

// applyRepo decides on repo's tags and deletes (or reports) them.
func (r *Retention) applyRepo(ctx context.Context, rep *Report, repo string, rule config.RetentionRule, idx int, now time.Time, forceDry bool, recent map[digest.Digest]bool) error {
	states, err := r.meta.TagStates(ctx, repo)
	if err != nil {
		return err
	}
	rep.Repositories++
	rep.Tags += len(states)
	dry := forceDry || rule.IsDryRun()
	for _, c := range decide(rule, states, now, r.promoted, recent) {
		d := Deletion{Repository: repo, Tag: c.tag, Digest: c.state.Digest, Pushed: c.state.ModTime, Rule: idx, Reason: c.reason, DryRun: dry}
		if !dry {
			// Only the state decided on: a tag re-pushed since stays.
			err := r.meta.DeleteTag(ctx, repo, c.tag, c.state.ETag)
			switch {
			case errors.Is(err, storage.ErrNotFound):
				continue // already gone
			case errors.Is(err, storage.ErrPreconditionFailed):
				rep.Changed = append(rep.Changed, d)
				continue
			case err != nil:
				return err
			}
		}
		rep.Deleted = append(rep.Deleted, d)
	}
	return nil
}
