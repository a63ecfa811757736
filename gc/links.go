package gc

import (
	"context"

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
	var batch []candidate
	err = walkRepos(ctx, r.c.store, func(repo string, objs []storage.Info) error {
		st := newRepoState(repo, objs)
		r.examined(st.objects, st.bytes)
		cands, err := r.garbageLinks(ctx, st, ledger[repo])
		if err != nil {
			return err
		}
		if r.c.opts.DryRun {
			for _, c := range cands {
				r.dryGone.add(keyHash(c.key))
			}
		}
		batch = append(batch, cands...)
		if len(batch) >= r.c.opts.BatchSize {
			err = r.sweep(ctx, batch, r.lookLinks)
			batch = nil
		}
		return err
	})
	if err == nil {
		err = r.sweep(ctx, batch, r.lookLinks)
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
