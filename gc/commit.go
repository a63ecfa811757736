package gc

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// commitChunk is how many candidates of a commit layer are committed,
// deleted and cleared together. Between its commit and its deletion a
// committed object is still found by reads (a blob HEAD), and a writer
// relying on it waits (AwaitGone, 10 s) until its tombstone is gone: a
// chunk keeps that window to a few requests (a write per shard, a
// multi-object delete per 1,000 keys) rather than a whole batch's.
const commitChunk = 4096

// doomed is what deleting a committed candidate deletes besides its own
// key, read before the commit so that nothing but deletes lies between
// the commit and the deletion.
type doomed struct {
	referrer string   // a manifest link's referrer index entry, or ""
	data     []string // a descriptor's data objects
	size     int64    // their bytes
	gone     bool     // a descriptor already gone: nothing to delete
}

// commitLayer resolves one dependency layer of marked candidates
// (commitAll): each garbage one is committed, then deleted, then its
// tombstone removed, a chunk at a time with one shard write per shard for
// the commits (tombstone.CommitAll) and for the removals
// (tombstone.RemoveAll) and multi-object deletes for the objects. It
// reports which candidates were kept (found live, or rescued).
func (r *run) commitLayer(ctx context.Context, cands []candidate, garbage []bool) (kept []bool, err error) {
	kept = make([]bool, len(cands))
	for lo := 0; lo < len(cands); lo += r.c.chunk {
		hi := min(lo+r.c.chunk, len(cands))
		if err := r.resolveChunk(ctx, cands[lo:hi], garbage[lo:hi], kept[lo:hi]); err != nil {
			return nil, err
		}
	}
	return kept, nil
}

func (r *run) resolveChunk(ctx context.Context, cands []candidate, garbage, kept []bool) error {
	versions := make(map[string]string, len(cands))
	isGarbage := make(map[string]bool, len(cands))
	for i, c := range cands {
		versions[c.key] = c.version
		isGarbage[c.key] = garbage[i]
	}
	defer r.count(&r.rep.Pending, -int64(len(cands)))
	dooms := make([]doomed, len(cands))
	if slices.Contains(garbage, true) {
		if err := r.alive(); err != nil { // a zombie commits nothing
			return err
		}
		if err := r.each(ctx, len(cands), func(ctx context.Context, i int) error {
			if !garbage[i] {
				return nil
			}
			var err error
			dooms[i], err = r.doom(ctx, cands[i].key)
			return err
		}); err != nil {
			return err
		}
	}
	committed, err := tombstone.CommitAll(ctx, r.c.store, r.id, versions, func(k string) bool { return isGarbage[k] }, r.c.opts.Concurrency)
	if err != nil {
		return err
	}
	var won []string
	var wonDooms []doomed
	for i, c := range cands {
		if _, ok := committed[c.key]; !ok {
			kept[i] = true
			r.count(&r.rep.Rescued, 1)
			continue
		}
		won = append(won, c.key)
		wonDooms = append(wonDooms, dooms[i])
	}
	if err := r.deleteDoomed(ctx, won, wonDooms); err != nil {
		return err
	}
	if err := tombstone.RemoveAll(ctx, r.c.store, committed, r.c.opts.Concurrency); err != nil {
		return err
	}
	for i, c := range cands {
		if _, won := committed[c.key]; won {
			r.freed(c.key, c.size)
			r.freedData(dooms[i].data, dooms[i].size)
		}
	}
	return nil
}

// deleteDoomed deletes committed keys and what each dooms, in the
// reverse order of writes (docs/architecture.md 4.3): referrer entries
// before their manifest links, descriptors before their data, each kind
// with multi-object deletes; this replica's caches forget the keys. A
// kill between leaves Deleting tombstones, which recovery finishes.
func (r *run) deleteDoomed(ctx context.Context, keys []string, dooms []doomed) error {
	var refs, objects, data []string
	for i, k := range keys {
		d := dooms[i]
		if d.referrer != "" {
			refs = append(refs, d.referrer)
		}
		if !d.gone {
			objects = append(objects, k)
		}
		data = append(data, d.data...)
	}
	for _, ks := range [][]string{refs, objects, data} {
		if err := storage.DeleteAll(ctx, r.c.store, ks, r.c.opts.Concurrency); err != nil {
			return err
		}
	}
	for _, k := range keys {
		r.c.meta.Forget(k)
	}
	return nil
}

// doom reads what deleting key will delete besides key itself.
func (r *run) doom(ctx context.Context, key string) (doomed, error) {
	switch {
	case strings.HasPrefix(key, registry.BlobsPrefix):
		data, size, err := r.descriptorData(ctx, key)
		if errors.Is(err, storage.ErrNotFound) {
			return doomed{gone: true}, nil // its data, if any is left, is orphan data
		}
		return doomed{data: data, size: size}, err
	case strings.HasPrefix(key, registry.RepositoriesPrefix):
		if k, ok := registry.ParseRepoKey(key); ok && k.Kind == registry.KeyManifests {
			ref, err := r.referrerEntry(ctx, k)
			return doomed{referrer: ref}, err
		}
	}
	return doomed{}, nil
}

// referrerEntry is the key of the referrer index entry of a manifest
// link, or "" if the manifest has no subject (or is gone).
func (r *run) referrerEntry(ctx context.Context, k registry.RepoKey) (string, error) {
	man, err := r.c.meta.ManifestRecord(ctx, k.Digest)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	refs, err := man.References()
	if err != nil || refs.Subject == nil || refs.Subject.Digest.Validate() != nil {
		return "", nil
	}
	return registry.ReferrerKey(k.Repo, refs.Subject.Digest, k.Digest), nil
}

// release removes tombstones of a batch abandoned on an error (best
// effort: a tombstone left is removed by the next run, its sweep entry
// being gone).
func (r *run) release(ctx context.Context, marked []candidate) {
	versions := make(map[string]string, len(marked))
	for _, c := range marked {
		versions[c.key] = c.version
	}
	_ = tombstone.RemoveAll(context.WithoutCancel(ctx), r.c.store, versions, r.c.opts.Concurrency)
	r.count(&r.rep.Pending, -int64(len(marked)))
}
