package gc

import (
	"context"
	"errors"
	"sync"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// A dangling link names a descriptor or manifest record that does not
// exist: a writer killed between its link and its Protect after a
// collection (or a hand edit) leaves one. It references nothing, so it is
// garbage whatever names it, once older than grace. Stage 2 finds the
// digests with no descriptor or record for free, marking which linked
// digests its listings of blobs/ and manifests/ hold; only when some are
// missing does it list repositories/ again to find their links.

// seenSets marks which digests of a digestSets (by index) were listed.
type seenSets struct {
	ls               *digestSets
	blobs, manifests []bool
}

func newSeenSets(ls *digestSets) *seenSets {
	return &seenSets{ls: ls, blobs: make([]bool, len(ls.blobs.items)), manifests: make([]bool, len(ls.manifests.items))}
}

// see marks the digest of a listed descriptor or record key.
func (s *seenSets) see(key string) {
	d, ok := registry.RecordDigest(key)
	if !ok {
		return
	}
	set, seen := &s.ls.manifests, s.manifests
	if key[:len(registry.BlobsPrefix)] == registry.BlobsPrefix {
		set, seen = &s.ls.blobs, s.blobs
	}
	if i, found := set.index(digestHash(d)); found {
		seen[i] = true
	}
}

// missing is the linked digests not seen (nil if none).
func (s *seenSets) missing(ls *digestSets) *digestSets {
	var out digestSets
	for i, ok := range s.blobs {
		if !ok {
			out.blobs.add(ls.blobs.items[i])
		}
	}
	for i, ok := range s.manifests {
		if !ok {
			out.manifests.add(ls.manifests.items[i])
		}
	}
	if len(out.blobs.items)+len(out.manifests.items) == 0 {
		return nil
	}
	out.blobs.seal()
	out.manifests.seal()
	return &out
}

// names says whether key is a link to a digest of ds.
func (ds *digestSets) names(key string) bool {
	k, ok := registry.ParseRepoKey(key)
	switch {
	case !ok:
		return false
	case k.Kind == registry.KeyBlobs:
		return ds.blobs.has(digestHash(k.Digest))
	case k.Kind == registry.KeyManifests:
		return ds.manifests.has(digestHash(k.Digest))
	}
	return false
}

// danglingLinks frees the links, older than grace, to the digests of
// missing (those stage 2's listings did not hold).
func (r *run) danglingLinks(ctx context.Context, missing *digestSets) error {
	if missing == nil {
		return nil
	}
	b := &batcher{r: r, look: r.lookDangling}
	err := storage.Walk(ctx, r.c.store, registry.RepositoriesPrefix, func(o storage.Info) error {
		if r.age(o) < r.c.opts.Grace || !missing.names(o.Key) {
			return nil
		}
		if r.c.opts.DryRun && r.dryGone.has(keyHash(o.Key)) {
			return nil // stage 1 reported it already
		}
		return b.add(ctx, candidate{key: o.Key, size: o.Size})
	})
	if err != nil {
		return err
	}
	return b.flush(ctx)
}

// lookDangling is the second look at dangling links: each link still
// there, and its descriptor or record still missing, read from the store.
func (r *run) lookDangling(ctx context.Context, cands []candidate) (verdict, error) {
	var mu sync.Mutex
	still := map[string]bool{}
	err := r.each(ctx, len(cands), func(ctx context.Context, i int) error {
		k, ok := registry.ParseRepoKey(cands[i].key)
		if !ok {
			return nil
		}
		record := registry.ManifestKey(k.Digest)
		if k.Kind == registry.KeyBlobs {
			record = registry.BlobKey(k.Digest)
		}
		linked, err := r.exists(ctx, cands[i].key)
		if err != nil || !linked {
			return err
		}
		stored, err := r.exists(ctx, record)
		if err != nil || stored {
			return err
		}
		mu.Lock()
		still[cands[i].key] = true
		mu.Unlock()
		return nil
	})
	return verdict{garbage: still}, err
}

// exists Stats key in the store (not in a cache).
func (r *run) exists(ctx context.Context, key string) (bool, error) {
	_, err := r.c.store.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
