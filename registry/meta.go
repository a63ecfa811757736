package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

// meta is the metadata layer under the handlers: descriptors, manifests,
// links, tags and referrers on a storage.Store. Content-addressed records
// are immutable and cached in process (bounded); links and tags are mutable
// and read from the store, with one bounded exception: blob GETs
// (/v2/<name>/blobs/<digest>) may answer from a remembered positive
// "repository has blob" (linked, below).
type meta struct {
	store     storage.Store
	blobs     *lru.Cache[digest.Digest, blobDesc]
	manifests *lru.Cache[digest.Digest, *manifestRecord]
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
}

// sharedReadTimeout bounds a tag read shared by several requests.
const sharedReadTimeout = 30 * time.Second

// defaultBlobLinkTTL: see meta.linked. Long enough that a blob pulled
// again within a few minutes (CI fleets pulling the same layers) costs no
// S3 request; short enough that a delete elsewhere is seen soon.
const defaultBlobLinkTTL = 5 * time.Minute

// blobDesc is the immutable record of a stored blob: where its bytes are.
// Replicas cache it forever, so garbage collection must never delete a
// descriptor that a later push could re-create pointing at other data
// without a grace period longer than any replica's cache lifetime.
type blobDesc struct {
	Data     string    `json:"data,omitempty"` // the one segment, in the usual case
	Size     int64     `json:"size"`
	Segments []segment `json:"segments,omitempty"` // several segments, in order
}

// segments lists where the blob's bytes are, in order.
func (b blobDesc) segments() []segment {
	if b.Data != "" {
		return []segment{{Key: b.Data, Size: b.Size}}
	}
	return b.Segments
}

func newBlobDesc(segs []segment) blobDesc {
	if len(segs) == 1 {
		return blobDesc{Data: segs[0].Key, Size: segs[0].Size}
	}
	bd := blobDesc{Segments: make([]segment, len(segs))}
	for i, s := range segs {
		bd.Size += s.Size
		bd.Segments[i] = segment{Key: s.Key, Size: s.Size} // no Digest: that is session state
	}
	return bd
}

// manifestRecord is a stored manifest: its bytes and the media type it was
// pushed with.
type manifestRecord struct {
	Digest    digest.Digest
	MediaType string
	Raw       []byte
}

// maxCachedManifest bounds the memory of the manifest cache: at most
// manifestCacheEntries × maxCachedManifest bytes.
const (
	blobCacheEntries     = 1 << 16
	manifestCacheEntries = 4096
	maxCachedManifest    = 64 << 10
)

// newMeta returns the metadata layer on store; linkTTL <= 0 turns the
// link memory off.
func newMeta(store storage.Store, linkTTL time.Duration) *meta {
	b, _ := lru.New[digest.Digest, blobDesc](blobCacheEntries)
	m, _ := lru.New[digest.Digest, *manifestRecord](manifestCacheEntries)
	cat, _ := lru.New[string, struct{}](manifestCacheEntries)
	linked, _ := lru.New[string, time.Time](blobCacheEntries)
	md := &meta{store: store, blobs: b, manifests: m, catalogued: cat, linked: linked, linkTTL: linkTTL}
	md.tags = newReadGroup(sharedReadTimeout, md.readTag)
	return md
}

func (m *meta) readSmall(ctx context.Context, key string, limit int64) ([]byte, storage.Info, error) {
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

func (m *meta) putSmall(ctx context.Context, key string, b []byte) error {
	_, err := m.store.Put(ctx, key, bytes.NewReader(b), int64(len(b)))
	return err
}

// blob returns the descriptor of a stored blob (storage.ErrNotFound if the
// registry holds no such blob at all).
func (m *meta) blob(ctx context.Context, d digest.Digest) (blobDesc, error) {
	if bd, ok := m.blobs.Get(d); ok {
		return bd, nil
	}
	b, _, err := m.readSmall(ctx, blobKey(d), 4<<20)
	if err != nil {
		return blobDesc{}, err
	}
	var bd blobDesc
	if err := json.Unmarshal(b, &bd); err != nil {
		return blobDesc{}, fmt.Errorf("blob descriptor %s: %w", d, err)
	}
	m.blobs.Add(d, bd)
	return bd, nil
}

// commitBlob records that the segments hold the blob d. If the registry
// already holds d, the new segments are dropped (dedupe) and the existing
// descriptor wins.
func (m *meta) commitBlob(ctx context.Context, d digest.Digest, segs []segment) (blobDesc, error) {
	bd := newBlobDesc(segs)
	b, _ := json.Marshal(bd)
	_, err := m.store.PutIfAbsent(ctx, blobKey(d), bytes.NewReader(b), int64(len(b)))
	switch {
	case err == nil:
		m.blobs.Add(d, bd)
		return bd, nil
	case errors.Is(err, storage.ErrPreconditionFailed):
		existing, gerr := m.blob(ctx, d)
		if gerr != nil {
			return blobDesc{}, gerr
		}
		named := map[string]bool{}
		for _, s := range existing.segments() {
			named[s.Key] = true
		}
		var drop []segment
		for _, s := range segs {
			if !named[s.Key] {
				drop = append(drop, s)
			}
		}
		m.deleteSegments(ctx, drop, false)
		return existing, nil
	default:
		return blobDesc{}, err
	}
}

// deleteSegments deletes data objects, except an implicit first segment
// (Digest set, segments.go) that a blob may still come to name: it goes
// only once the descriptor of its digest exists and names other data (no
// commit can name it then), or, with expired (purge: no request can commit
// it any more), unless that descriptor names it. It returns the ones kept.
func (m *meta) deleteSegments(ctx context.Context, segs []segment, expired bool) (kept []segment) {
	ctx = context.WithoutCancel(ctx)
	for _, s := range segs {
		if s.Digest != "" && !m.unusedFirstSegment(ctx, s, expired) {
			kept = append(kept, s)
			continue
		}
		_ = m.store.Delete(ctx, s.Key)
	}
	return kept
}

func (m *meta) unusedFirstSegment(ctx context.Context, s segment, expired bool) bool {
	bd, err := m.blob(ctx, s.Digest)
	if err != nil {
		return expired && errors.Is(err, storage.ErrNotFound)
	}
	for _, x := range bd.segments() {
		if x.Key == s.Key {
			return false
		}
	}
	return true
}

// blobInRepo returns the descriptor of a blob linked into a repository.
func (m *meta) blobInRepo(ctx context.Context, name string, d digest.Digest) (blobDesc, error) {
	if _, err := m.store.Stat(ctx, blobLinkKey(name, d)); err != nil {
		return blobDesc{}, err
	}
	return m.blob(ctx, d)
}

// blobInRepoCached is blobInRepo answered from the link memory when it
// can (see meta.linked); for blob GETs only.
func (m *meta) blobInRepoCached(ctx context.Context, name string, d digest.Digest) (blobDesc, error) {
	if m.linkTTL <= 0 {
		return m.blobInRepo(ctx, name, d)
	}
	key := blobLinkKey(name, d)
	if until, ok := m.linked.Get(key); ok && time.Now().Before(until) {
		return m.blob(ctx, d)
	}
	bd, err := m.blobInRepo(ctx, name, d)
	if err == nil {
		m.rememberLink(key)
	}
	return bd, err
}

func (m *meta) rememberLink(key string) {
	if m.linkTTL > 0 {
		m.linked.Add(key, time.Now().Add(m.linkTTL))
	}
}

func (m *meta) linkBlob(ctx context.Context, name string, d digest.Digest) error {
	if err := m.putSmall(ctx, blobLinkKey(name, d), nil); err != nil {
		return err
	}
	m.rememberLink(blobLinkKey(name, d))
	return m.addToCatalog(ctx, name)
}

func (m *meta) unlinkBlob(ctx context.Context, name string, d digest.Digest) error {
	m.linked.Remove(blobLinkKey(name, d))
	err := m.store.Delete(ctx, blobLinkKey(name, d))
	// Again after the delete: a read that checked the link before it may
	// have remembered it meanwhile.
	m.linked.Remove(blobLinkKey(name, d))
	return err
}

// addToCatalog records the repository name once; an existing entry is fine.
func (m *meta) addToCatalog(ctx context.Context, name string) error {
	if m.catalogued.Contains(name) {
		return nil
	}
	_, err := m.store.PutIfAbsent(ctx, catalogKey(name), bytes.NewReader(nil), 0)
	if err != nil && !errors.Is(err, storage.ErrPreconditionFailed) {
		return err
	}
	m.catalogued.Add(name, struct{}{})
	return nil
}

// manifest returns a stored manifest by digest (any repository).
func (m *meta) manifest(ctx context.Context, d digest.Digest) (*manifestRecord, error) {
	if rec, ok := m.manifests.Get(d); ok {
		return rec, nil
	}
	b, _, err := m.readSmall(ctx, manifestKey(d), maxManifestSize+1024)
	if err != nil {
		return nil, err
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, fmt.Errorf("manifest record %s is corrupt", d)
	}
	rec := &manifestRecord{Digest: d, MediaType: string(b[:i]), Raw: b[i+1:]}
	if len(rec.Raw) <= maxCachedManifest {
		m.manifests.Add(d, rec)
	}
	return rec, nil
}

// putManifest stores manifest bytes content-addressed; an existing record
// is kept (same digest, same bytes).
func (m *meta) putManifest(ctx context.Context, rec *manifestRecord) error {
	if strings.ContainsRune(rec.MediaType, '\n') {
		return fmt.Errorf("media type contains a newline")
	}
	b := make([]byte, 0, len(rec.MediaType)+1+len(rec.Raw))
	b = append(append(append(b, rec.MediaType...), '\n'), rec.Raw...)
	_, err := m.store.PutIfAbsent(ctx, manifestKey(rec.Digest), bytes.NewReader(b), int64(len(b)))
	if err != nil && !errors.Is(err, storage.ErrPreconditionFailed) {
		return err
	}
	return nil
}

func (m *meta) manifestInRepo(ctx context.Context, name string, d digest.Digest) (*manifestRecord, error) {
	if _, err := m.store.Stat(ctx, manifestLinkKey(name, d)); err != nil {
		return nil, err
	}
	return m.manifest(ctx, d)
}

func (m *meta) linkManifest(ctx context.Context, name string, d digest.Digest) error {
	if err := m.putSmall(ctx, manifestLinkKey(name, d), nil); err != nil {
		return err
	}
	return m.addToCatalog(ctx, name)
}

// tag resolves a tag to a digest: a read of the store that began after
// the call did, shared with concurrent calls for the same tag (readGroup).
func (m *meta) tag(ctx context.Context, name, tag string) (digest.Digest, error) {
	return m.tags.do(ctx, tagKey(name, tag))
}

func (m *meta) readTag(ctx context.Context, key string) (digest.Digest, error) {
	b, _, err := m.readSmall(ctx, key, 256)
	if err != nil {
		return "", err
	}
	d, _, err := parseTag(b)
	if err != nil {
		return "", fmt.Errorf("tag %s is corrupt: %w", key, err)
	}
	return d, nil
}

func (m *meta) setTag(ctx context.Context, name, tag string, d digest.Digest) error {
	return m.putSmall(ctx, tagKey(name, tag), []byte(d.String()))
}

// listKeys lists keys under prefix after startAfter, up to n (n <= 0: all).
func (m *meta) listKeys(ctx context.Context, prefix, startAfter string, n int) (keys []string, more bool, err error) {
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
