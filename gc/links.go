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
	// Judged again a few repositories at a time, as in the first pass.
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(repoConcurrency)
	for repo := range repos {
		g.Go(func() error {
			objs, err := listRepo(gctx, r.c.store, repo)
			if err != nil {
				return err
			}
			st := newRepoState(repo, objs)
			fresh, refs, err := r.garbageLinks(gctx, st, ledger[repo])
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, c := range fresh {
				v.garbage[c.key] = true
			}
			addDeps(v.deps, st, refs)
			return nil
		})
	}
	return v, g.Wait()
}

// addDeps records what each manifest link of st needs: the links of its
// children and blobs, and (a kept subject keeps its referrers) each
// referrer's link is needed by its subject's.
func addDeps(deps map[string][]string, st *repoState, refs map[hash]*manifestRefs) {
	for d, mr := range refs {
		key := st.manifests[d].info.Key
		for _, c := range mr.children {
			if l, ok := st.manifests[c]; ok {
				deps[key] = append(deps[key], l.info.Key)
			}
		}
		for _, b := range mr.blobs {
			if l, ok := st.blobs[b]; ok {
				deps[key] = append(deps[key], l.info.Key)
			}
		}
		if s, ok := st.manifests[mr.subject]; ok && mr.hasSubject {
			deps[s.info.Key] = append(deps[s.info.Key], key)
		}
	}
}
