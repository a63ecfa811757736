package gc

import (
	"context"
	"time"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// digestSets is a set of blob digests and one of manifest digests: those
// some repository links (run.linked), or those a listing missed
// (seenSets.missing).
type digestSets struct{ blobs, manifests hashSet }

// linked lists repositories/ once. gone, if set, holds hashes of link
// keys to treat as deleted (a dry run's stage 1).
func (r *run) linked(ctx context.Context, gone *hashSet) (*digestSets, error) {
	ls := &digestSets{}
	err := storage.Walk(ctx, r.c.store, registry.RepositoriesPrefix, func(o storage.Info) error {
		k, ok := registry.ParseRepoKey(o.Key)
		if !ok || (k.Kind != registry.KeyBlobs && k.Kind != registry.KeyManifests) {
			return nil
		}
		if gone != nil && gone.has(keyHash(o.Key)) {
			return nil
		}
		if k.Kind == registry.KeyBlobs {
			ls.blobs.add(digestHash(k.Digest))
		} else {
			ls.manifests.add(digestHash(k.Digest))
		}
		return nil
	})
	ls.blobs.seal()
	ls.manifests.seal()
	return ls, err
}

// unlinked says whether a descriptor or manifest record key names a digest
// no repository of ls links.
func (ls *digestSets) unlinked(key string) bool {
	d, ok := registry.RecordDigest(key)
	if !ok {
		return false // not one of ours: never touched
	}
	if len(key) > len(registry.BlobsPrefix) && key[:len(registry.BlobsPrefix)] == registry.BlobsPrefix {
		return !ls.blobs.has(digestHash(d))
	}
	return !ls.manifests.has(digestHash(d))
}

// records is stage 2: blob descriptors (with their data) and manifest
// records that no repository links, older than grace, judged on a listing
// of every link made after stage 1. Then the dangling links: linked
// digests the listings of blobs/ and manifests/ did not hold.
func (r *run) records(ctx context.Context) error {
	var gone *hashSet
	if r.c.opts.DryRun {
		gone = &r.dryGone
	}
	ls, err := r.linked(ctx, gone)
	if err != nil {
		return err
	}
	// Replicas may serve a blob unlinked moments ago from a remembered
	// link (and a cached descriptor) for LinkTTL: such descriptors wait.
	held := r.c.opts.LinkTTL > 0 && !r.lastUnlink.IsZero() && time.Since(r.lastUnlink) < r.c.opts.LinkTTL
	r.unlinked.seal()
	seen := newSeenSets(ls)
	b := &batcher{r: r, look: r.lookRecords}
	for _, prefix := range []string{registry.BlobsPrefix, registry.ManifestsPrefix} {
		err := storage.Walk(ctx, r.c.store, prefix, func(o storage.Info) error {
			r.examined(1, o.Size)
			seen.see(o.Key)
			if r.age(o) < r.c.opts.Grace || !ls.unlinked(o.Key) {
				return nil
			}
			if d, _ := registry.RecordDigest(o.Key); held && prefix == registry.BlobsPrefix && r.unlinked.has(digestHash(d)) {
				return nil
			}
			return b.add(ctx, candidate{key: o.Key, size: o.Size})
		})
		if err != nil {
			return err
		}
	}
	if err := b.flush(ctx); err != nil {
		return err
	}
	return r.danglingLinks(ctx, seen.missing(ls))
}

// lookRecords is stage 2's second look: every link, listed again.
func (r *run) lookRecords(ctx context.Context, cands []candidate) (verdict, error) {
	ls, err := r.linked(ctx, nil)
	if err != nil {
		return verdict{}, err
	}
	still := map[string]bool{}
	for _, c := range cands {
		if ls.unlinked(c.key) {
			still[c.key] = true
		}
	}
	return verdict{garbage: still}, nil
}

// age is an object's age by the store's clock at the start of the run.
func (r *run) age(o storage.Info) time.Duration { return r.now.Sub(o.ModTime) }
