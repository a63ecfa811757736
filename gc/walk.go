package gc

import (
	"context"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// walkRepos lists repositories/ once and calls f with each repository's
// objects, one repository at a time. A repository's keys are contiguous
// in the listing ("<name>/_…": no component of a nested repository starts
// with '_'), so only one repository's objects are held at a time.
func walkRepos(ctx context.Context, s storage.Store, f func(repo string, objs []storage.Info) error) error {
	var repo string
	var objs []storage.Info
	err := storage.Walk(ctx, s, registry.RepositoriesPrefix, func(o storage.Info) error {
		k, ok := registry.ParseRepoKey(o.Key)
		if !ok {
			return nil
		}
		if k.Repo != repo && len(objs) > 0 {
			if err := f(repo, objs); err != nil {
				return err
			}
			objs = nil
		}
		repo = k.Repo
		objs = append(objs, o)
		return nil
	})
	if err != nil || len(objs) == 0 {
		return err
	}
	return f(repo, objs)
}

// listRepo lists one repository's own objects (not its nested
// repositories').
func listRepo(ctx context.Context, s storage.Store, repo string) ([]storage.Info, error) {
	var objs []storage.Info
	err := storage.Walk(ctx, s, registry.RepoPrefix(repo)+"_", func(o storage.Info) error {
		objs = append(objs, o)
		return nil
	})
	return objs, err
}
