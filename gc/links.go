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
			cands, _, err := r.garbageLinks(gctx, st, ledger[repo])
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
// A manifest link needs the links of its children and blobs (deps).
func (r *run) lookLinks(ctx context.Context, cands []candidate) (verdict, error) {
	v := verdict{garbage: map[string]bool{}, deps: map[string][]string{}}
	ledger, err := r.c.ledger.Digests(ctx)
	if err != nil {
		return v, err
	}
	repos := map[string]bool{}
	for _, c := range cands {
		if k, ok := registry.ParseRepoKey(c.key); ok {
			repos[k.Repo] = true
		}
	}
	for repo := range repos {
		objs, err := listRepo(ctx, r.c.store, repo)
		if err != nil {
			return v, err
		}
		fresh, refs, err := r.garbageLinks(ctx, newRepoState(repo, objs), ledger[repo])
		if err != nil {
			return v, err
		}
		for _, c := range fresh {
			v.garbage[c.key] = true
		}
		for d, mr := range refs {
			var deps []string
			for _, c := range mr.children {
				deps = append(deps, registry.ManifestLinkKey(repo, c))
			}
			for _, b := range mr.blobs {
				deps = append(deps, registry.BlobLinkKey(repo, b))
			}
			link := registry.ManifestLinkKey(repo, d)
			v.deps[link] = append(v.deps[link], deps...)
			if mr.subject != "" { // a kept subject keeps its referrers
				s := registry.ManifestLinkKey(repo, mr.subject)
				v.deps[s] = append(v.deps[s], link)
			}
		}
	}
	return v, nil
}
