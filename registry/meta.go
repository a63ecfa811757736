package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// Metadata is the registry's metadata layer: blob descriptors and data,
// manifests, repository links, tags, referrers and the catalog on a
// storage.Store. It is the only reader and writer of the keys paths.go
// builds: the /v2/ handlers and the promotion service both go through it,
// so they share one record format, one write order (data, descriptor,
// link, tag) and one set of caches.
//
// Content-addressed records (descriptors, manifests) are immutable and
// cached in process (bounded). Links and tags are mutable and read from
// the store, with one bounded exception: blob GETs may answer from a
// remembered positive "repository has blob" (linked, below).
//
// The layer is split by what it holds: this file (the type, small objects,
// listings, catalog), metablobs.go, metamanifests.go and metatags.go.
type Metadata struct {
	store storage.Store
	// unjournaled is store without the tag journal's wrapper, for batched
	// deletes of keys that are not tags (storage.BatchDeleter is not
	// forwarded by wrappers): the journal's own done records.
	unjournaled storage.Store
	// tagIndex caches the tag indexes read (tagread.go).
	tagIndex  *tagIndexes
	blobs     *lru.Cache[digest.Digest, blobDesc]
	manifests *lru.Cache[digest.Digest, Manifest]
	// catalogued remembers repositories known to have a catalog entry.
	// Entries are only ever added, so a remembered name never goes stale.
	catalogued *lru.Cache[string, struct{}]
	// linked remembers, for at most linkTTL, that a repository links a
	// blob: learnt from a Stat of the link or from this replica's own link
	// write, dropped on this replica's own unlink. It serves blob GETs only
	// (blobInRepoCached; not HEAD, see getBlob), so a pull costs no S3
	// request before the presigned redirect (the stock registry's
	// blobdescriptor cache does the same, without a bound).
	//
	// The bound: a blob deleted from a repository through another replica
	// stays readable by GET through this one for at most linkTTL after
	// this replica last checked or wrote the link. Its bytes are still
	// there: garbage collection must keep an unlinked blob's descriptor and
	// data for longer than linkTTL (paths.go). Manifest PUTs, mounts,
	// promotion and Verify check links in the store, never here.
	linked  *lru.Cache[string, time.Time]
	linkTTL time.Duration
	// tags coalesces concurrent reads of one tag (coalesce.go).
	tags *readGroup[digest.Digest]
	// guard is the writers' side of garbage collection (protect.go).
	guard *tombstone.Guard
	// view reads the outside data imported descriptors name (outside.go);
	// nil without one (Options.BucketView). It has no method that writes.
	view storage.BucketView
}

// sharedReadTimeout bounds a tag read shared by several requests.
const sharedReadTimeout = 30 * time.Second

// defaultBlobLinkTTL: see Metadata.linked. Long enough that a blob pulled
// again within a few minutes (CI fleets pulling the same layers) costs no
// S3 request; short enough that a delete elsewhere is seen soon.
const defaultBlobLinkTTL = 5 * time.Minute

// Cache bounds. maxCachedManifest bounds the memory of the manifest cache:
// at most manifestCacheEntries × maxCachedManifest bytes.
const (
	blobCacheEntries     = 1 << 16
	manifestCacheEntries = 4096
	maxCachedManifest    = 64 << 10
)

// newMeta returns the metadata layer on store; linkTTL <= 0 turns the
// link memory off.
func newMeta(store storage.Store, linkTTL time.Duration) *Metadata {
	b, _ := lru.New[digest.Digest, blobDesc](blobCacheEntries)
	m, _ := lru.New[digest.Digest, Manifest](manifestCacheEntries)
	cat, _ := lru.New[string, struct{}](manifestCacheEntries)
	linked, _ := lru.New[string, time.Time](blobCacheEntries)
	md := &Metadata{store: store, unjournaled: store, blobs: b, manifests: m, catalogued: cat, linked: linked, linkTTL: linkTTL, tagIndex: newTagIndexes(), guard: tombstone.NewGuard(store)}
	md.tags = newReadGroup(sharedReadTimeout, md.readTag)
	return md
}

// Metadata returns the registry's metadata layer (the one its /v2/
// handlers use).
func (r *Registry) Metadata() *Metadata { return r.meta }

// readSmall reads a whole object of at most limit bytes.
func (m *Metadata) readSmall(ctx context.Context, key string, limit int64) ([]byte, storage.Info, error) {
	rc, info, err := m.store.Get(ctx, key, storage.GetOptions{})
	if err != nil {
		return nil, info, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, info, err
	}
	if int64(len(b)) > limit {
		return nil, info, fmt.Errorf("object %s is larger than %d bytes", key, limit)
	}
	return b, info, nil
}

func (m *Metadata) putSmall(ctx context.Context, key string, b []byte) error {
	_, err := m.store.Put(ctx, key, bytes.NewReader(b), int64(len(b)))
	return err
}

// exists reports whether key exists; only a store failure is an error.
func (m *Metadata) exists(ctx context.Context, key string) (bool, error) {
	_, err := m.store.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// listKeys lists keys under prefix after startAfter, up to n (n <= 0: all).
func (m *Metadata) listKeys(ctx context.Context, prefix, startAfter string, n int) (keys []string, more bool, err error) {
	for {
		max := 1000
		if n > 0 && n-len(keys) < max {
			max = n - len(keys) + 1 // one extra to learn whether more follow
		}
		page, err := m.store.List(ctx, storage.ListOptions{Prefix: prefix, StartAfter: startAfter, MaxKeys: max})
		if err != nil {
			return nil, false, err
		}
		for _, o := range page.Objects {
			if n > 0 && len(keys) == n {
				return keys, true, nil
			}
			keys = append(keys, o.Key)
			startAfter = o.Key
		}
		if !page.Truncated || len(page.Objects) == 0 {
			return keys, false, nil
		}
	}
}

// AddRepository records repo in the catalog once (an existing entry is
// fine; a name this process recorded or saw costs no request).
func (m *Metadata) AddRepository(ctx context.Context, repo string) error {
	if m.catalogued.Contains(repo) {
		return nil
	}
	_, err := m.store.PutIfAbsent(ctx, catalogKey(repo), bytes.NewReader(nil), 0)
	if err != nil && !errors.Is(err, storage.ErrPreconditionFailed) {
		return err
	}
	m.catalogued.Add(repo, struct{}{})
	return nil
}

// RepositoryExists reports whether anything was ever pushed or promoted
// to repo (its catalog entry exists).
func (m *Metadata) RepositoryExists(ctx context.Context, repo string) (bool, error) {
	return m.exists(ctx, catalogKey(repo))
}

// Repositories lists repository names in order, after startAfter, at most
// n (n <= 0: all); more tells whether others follow.
func (m *Metadata) Repositories(ctx context.Context, startAfter string, n int) (names []string, more bool, err error) {
	after := ""
	if startAfter != "" {
		after = catalogKey(startAfter)
	}
	keys, more, err := m.listKeys(ctx, catalogPrefix, after, n)
	if err != nil {
		return nil, false, err
	}
	for _, k := range keys {
		if name, ok := nameFromCatalogKey(k); ok {
			names = append(names, name)
		}
	}
	return names, more, nil
}
