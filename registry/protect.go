package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// The writer's side of online garbage collection (docs/architecture.md
// §5): every request that makes something depend on existing objects
// calls the Guard after its own writes and succeeds only if the Guard
// does. The Guard asks the store, never the caches of this layer: a
// descriptor or manifest record cached here may have been collected since.

// Retrying after a collection: a request whose own object (a link, a
// descriptor it can write again, its manifest record) is being deleted
// waits for the deletion to finish, then writes it anew and protects
// again, at most collectedRetries times, waiting at most awaitDeletion
// each time.
const (
	collectedRetries = 3
	awaitDeletion    = 10 * time.Second
	awaitPoll        = 50 * time.Millisecond
)

// Guard is the garbage-collection guard of this layer (tests change its
// CacheFor).
func (m *Metadata) Guard() *tombstone.Guard { return m.guard }

// DeleteObject deletes an object the collector committed to delete: a
// blob descriptor first, then the data objects it names (a crash in
// between leaves orphan data, which the collector frees later); anything
// else alone. Missing objects are fine: every step is idempotent. This
// replica's caches forget the object. The collector deletes with it, and
// tombstone.Finish(ctx, store, key, m.DeleteObject) finishes a deletion
// whose collector died.
func (m *Metadata) DeleteObject(ctx context.Context, key string) error {
	d, kind, ok := digestOfKey(key)
	if ok && kind == "blob" && strings.HasPrefix(key, BlobsPrefix) {
		bd, err := m.blobFromStore(ctx, d)
		if errors.Is(err, storage.ErrNotFound) {
			m.Forget(key)
			return nil
		}
		if err != nil {
			return err
		}
		if err := m.store.Delete(ctx, key); err != nil {
			return err
		}
		m.Forget(key)
		for _, s := range bd.segments() {
			if err := m.store.Delete(ctx, s.Key); err != nil {
				return err
			}
		}
		return nil
	}
	err := m.store.Delete(ctx, key)
	m.Forget(key)
	return err
}

// Forget drops what this replica's caches remember of an object (the
// collector calls it for the objects it deletes in batches).
func (m *Metadata) Forget(key string) {
	d, kind, ok := digestOfKey(key)
	switch {
	case !ok:
	case strings.HasPrefix(key, BlobsPrefix):
		m.blobs.Remove(d)
	case strings.HasPrefix(key, ManifestsPrefix):
		m.manifests.Remove(d)
	case kind == "blob":
		m.linked.Remove(key)
	}
}

// digestOfKey reads the digest a descriptor, manifest record or link key
// names; kind is "blob" or "manifest". The keys are parsed by gcview.go's
// RecordDigest and ParseRepoKey, the one parser of the layout.
func digestOfKey(key string) (d digest.Digest, kind string, ok bool) {
	if d, ok := RecordDigest(key); ok {
		if strings.HasPrefix(key, BlobsPrefix) {
			return d, "blob", true
		}
		return d, "manifest", true
	}
	k, ok := ParseRepoKey(key)
	switch {
	case ok && k.Kind == KeyBlobs:
		return k.Digest, "blob", true
	case ok && k.Kind == KeyManifests:
		return k.Digest, "manifest", true
	}
	return "", "", false
}

// collectedKey returns the key of the object an error of Guard.Protect
// says is collected.
func collectedKey(err error) (*tombstone.CollectedError, bool) {
	var ce *tombstone.CollectedError
	ok := errors.As(err, &ce)
	return ce, ok
}

// recoverCollected decides what a request does after Protect failed with
// err on attempt (0-based): nil to write its objects again and protect
// again, which it may when the collected object is one of its own (own)
// and, if its deletion is committed, the deletion has finished; err
// otherwise. Waiting for the collector rather than finishing the
// deletion here: see tombstone.Finish.
func (m *Metadata) recoverCollected(ctx context.Context, err error, attempt int, own func(key string) bool) error {
	ce, ok := collectedKey(err)
	if !ok || !own(ce.Key) || attempt+1 >= collectedRetries {
		return err
	}
	if ce.Deleting {
		gone, werr := tombstone.AwaitGone(ctx, m.store, ce.Key, awaitDeletion, awaitPoll)
		if werr != nil {
			return werr
		}
		if !gone {
			return err
		}
	}
	m.Forget(ce.Key)
	return nil
}

// awaitCollected waits, before a request answers that an object it
// relies on is being collected (ce, from Guard.Protect), until a
// committed deletion of that object has finished (at most awaitDeletion),
// and forgets the object. The client's retry then finds it absent and
// uploads it again: answered earlier, the retry's HEAD could still find
// the object (its deletion is committed but not done) and fail the same
// way.
func (m *Metadata) awaitCollected(ctx context.Context, ce *tombstone.CollectedError) {
	if ce.Deleting {
		_, _ = tombstone.AwaitGone(ctx, m.store, ce.Key, awaitDeletion, awaitPoll)
	}
	m.Forget(ce.Key)
}

// dropDanglingLink deletes the link a failed request wrote to an object
// that garbage collection deleted (once the deletion finished and the
// object is absent). Such a link would let this replica's caches (which
// may still hold the collected descriptor or record) answer a HEAD, and
// pass a manifest PUT's check, for an object that is gone. Every link
// written to an object since the collector listed it is a failing
// writer's (a successful one rescued the object), so deleting it undoes
// no success, except a re-push that re-creates the object between the
// absence check and the delete: that push's link goes and its manifest
// PUT fails with BLOB_UNKNOWN (retryable, nothing lost). Best effort.
func (m *Metadata) dropDanglingLink(ctx context.Context, link, object string) {
	ctx = context.WithoutCancel(ctx)
	if gone, err := tombstone.AwaitGone(ctx, m.store, object, awaitDeletion, awaitPoll); err != nil || !gone {
		return
	}
	if ok, err := m.exists(ctx, object); err != nil || ok {
		return
	}
	m.Forget(object)
	_ = m.store.Delete(ctx, link)
	m.Forget(link)
}

// manifestTreeKeys lists what a request relying on manifest d of repo
// relies on: its link and record, the link and descriptor of every blob
// it references, and the same for every child, recursively (an index
// rescued while its children's blobs go would be a manifest that cannot
// be pulled). Records are read through the cache: their content is
// immutable, and Protect itself checks that each still exists.
func (m *Metadata) manifestTreeKeys(ctx context.Context, repo string, d digest.Digest, depth int, seen map[digest.Digest]bool) ([]string, error) {
	if seen[d] {
		return nil, nil
	}
	seen[d] = true
	keys := []string{manifestLinkKey(repo, d), manifestKey(d)}
	man, err := m.manifest(ctx, d)
	if errors.Is(err, storage.ErrNotFound) {
		return keys, nil // Protect reports the record gone
	}
	if err != nil {
		return nil, err
	}
	refs, err := man.References()
	if err != nil {
		return nil, err
	}
	keys = append(keys, blobKeys(repo, refs.Blobs)...)
	if depth >= maxTreeDepth {
		return nil, fmt.Errorf("manifest %s: indexes nested deeper than %d", d, maxTreeDepth)
	}
	for _, c := range refs.Children {
		ck, err := m.manifestTreeKeys(ctx, repo, c.Digest, depth+1, seen)
		if err != nil {
			return nil, err
		}
		keys = append(keys, ck...)
	}
	return keys, nil
}

// maxTreeDepth bounds index nesting in manifestTreeKeys.
const maxTreeDepth = 8

// blobKeys are the link and descriptor keys of blobs in repo.
func blobKeys(repo string, blobs []v1.Descriptor) []string {
	keys := make([]string, 0, 2*len(blobs))
	for _, b := range blobs {
		keys = append(keys, blobLinkKey(repo, b.Digest), blobKey(b.Digest))
	}
	return keys
}

// protectManifest protects manifest d of repo and its whole tree
// (manifestTreeKeys), reading the tree only during a sweep.
func (m *Metadata) protectManifest(ctx context.Context, repo string, d digest.Digest) error {
	return m.guard.ProtectFunc(ctx, func() ([]string, error) {
		return m.manifestTreeKeys(ctx, repo, d, 0, map[digest.Digest]bool{})
	})
}

// ProtectManifest protects, from garbage collection, manifest d of repo
// and its whole tree (links, records, blobs' links and descriptors,
// children), for a caller that found it linked and now relies on it (the
// promotion service). Something of the tree being collected is an error
// wrapping tombstone.ErrCollected: link the tree again (LinkBlob,
// LinkManifest write back what they can).
func (m *Metadata) ProtectManifest(ctx context.Context, repo string, d digest.Digest) error {
	return m.protectManifest(ctx, repo, d)
}
