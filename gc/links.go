package gc

import (
	"context"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// links is stage 1: in each repository, the manifest links no root
// reaches (with their referrer entries) and the blob links no live
// manifest needs. One listing of repositories/, a repository at a time;
// candidates of several repositories are swept together in batches.
func (r *run) links(ctx context.Context) error {
	ledger, err := r.c.ledger.Digests(ctx)
	if err != nil {
		return err
	}
	// Repositories are judged a few at a time; the walk sweeps a batch
	// (one sweep at a time) once judges have filled it.
	var mu sync.Mutex
	var batch []candidate
	take := func(min int) []candidate {
		mu.Lock()
		defer mu.Unlock()
		if len(batch) < min {
			return nil
		}
		full := batch
		batch = nil
		return full
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(repoConcurrency)
	err = walkRepos(gctx, r.c.store, func(repo string, objs []storage.Info) error {
		g.Go(func() error {
			st := newRepoState(repo, objs)
			r.examined(st.objects, st.bytes)
			cands, err := r.garbageLinks(gctx, st, ledger[repo])
			mu.Lock()
			defer mu.Unlock()
			if r.c.opts.DryRun {
				for _, c := range cands {
					r.dryGone.add(keyHash(c.key))
				}
			}
			batch = append(batch, cands...)
			return err
		})
		return r.sweep(gctx, take(r.c.opts.BatchSize), r.lookLinks)
	})
	if werr := g.Wait(); werr != nil {
		err = werr
	}
	if err == nil {
		err = r.sweep(ctx, take(0), r.lookLinks)
	}
	return err
}

// lookLinks is stage 1's second look: each repository of the batch is
// listed again and judged again with its tags and the ledger read again.
func (r *run) lookLinks(ctx context.Context, cands []candidate) (map[string]bool, error) {
	ledger, err := r.c.ledger.Digests(ctx)
	if err != nil {
		return nil, err
	}
	repos := map[string]bool{}
	for _, c := range cands {
		if k, ok := registry.ParseRepoKey(c.key); ok {
			repos[k.Repo] = true
		}
	}
	still := map[string]bool{}
	for repo := range repos {
		objs, err := listRepo(ctx, r.c.store, repo)
		if err != nil {
			return nil, err
		}
		fresh, err := r.garbageLinks(ctx, newRepoState(repo, objs), ledger[repo])
		if err != nil {
			return nil, err
		}
		for _, c := range fresh {
			still[c.key] = true
		}
	}
	return still, nil
}
