package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

// blobDesc is the immutable record of a stored blob: where its bytes are.
// Replicas cache it forever, so garbage collection must never delete a
// descriptor that a later push could re-create pointing at other data
// without a grace period longer than any replica's cache lifetime.
//
// Its JSON (outside.go) is {"data":key,"size":n}, {"segments":[…],"size":n},
// or, for an imported blob whose bytes stay in the stock registry's
// storage, {"data":{"bucket_key":key},"size":n} (Outside).
type blobDesc struct {
	Data     string // the one segment, in the usual case
	Size     int64
	Segments []segment // several segments, in order
	// Outside is the bucket-absolute key of data Slipway does not own
	// (docs/architecture.md §7.2): read through the bucket view only,
	// never a Slipway key, never deleted. Set, Data and Segments are empty.
	Outside string
}

// segments lists the Slipway data objects holding the blob's bytes, in
// order: everything that deletes data (DeleteObject, the collector through
// DescriptorData, dropped commits) goes by it, so it never lists Outside.
func (b blobDesc) segments() []segment {
	if b.Outside != "" {
		return nil
	}
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

// blob returns the descriptor of a stored blob (storage.ErrNotFound if the
// registry holds no such blob at all), from the cache when it can: a
// descriptor cached here may have been garbage-collected since, which the
// reads of its data find out (a blob GET then answers BLOB_UNKNOWN).
func (m *Metadata) blob(ctx context.Context, d digest.Digest) (blobDesc, error) {
	if bd, ok := m.blobs.Get(d); ok {
		return bd, nil
	}
	bd, err := m.blobFromStore(ctx, d)
	if err != nil {
		return blobDesc{}, err
	}
	m.blobs.Add(d, bd)
	return bd, nil
}

// blobFromStore reads a descriptor from the store, not the cache.
func (m *Metadata) blobFromStore(ctx context.Context, d digest.Digest) (blobDesc, error) {
	b, _, err := m.readSmall(ctx, blobKey(d), 4<<20)
	if err != nil {
		return blobDesc{}, err
	}
	var bd blobDesc
	if err := json.Unmarshal(b, &bd); err != nil {
		return blobDesc{}, fmt.Errorf("blob descriptor %s: %w", d, err)
	}
	return bd, nil
}

// errSegmentsCollected: a commit's own segments were deleted by garbage
// collection (a descriptor naming them, written by an earlier commit of
// the same session, was collected): the blob must be uploaded again.
var errSegmentsCollected = errors.New("the upload's data was garbage-collected")

// commitBlob makes the segments the blob d of repository name: the
// descriptor (put-if-absent: if the registry already holds d, the
// existing descriptor wins and the new segments are dropped: dedupe),
// the link, then Guard.Protect of the link and of an existing descriptor
// (one this commit created is younger than the collector's grace). The
// new segments are dropped only after Protect succeeded: until then the
// existing descriptor may be going away, and the segments are what
// replaces it. If it is (ErrCollected), the commit waits until its
// deletion finished, writes its own descriptor and link again and
// protects again (recoverCollected).
func (m *Metadata) commitBlob(ctx context.Context, name string, d digest.Digest, segs []segment) (blobDesc, error) {
	bd, _, err := m.commitDescriptor(ctx, name, d, newBlobDesc(segs))
	return bd, err
}

// commitDescriptor is commitBlob of a prepared descriptor (segments, or
// outside data, which no dedupe drops: segments() lists none); created
// says whether this commit's descriptor was written (else an existing one
// won, and is returned).
func (m *Metadata) commitDescriptor(ctx context.Context, name string, d digest.Digest, want blobDesc) (bd blobDesc, created bool, err error) {
	segs := want.segments()
	for attempt := 0; ; attempt++ {
		bd, created, err = m.putDescriptor(ctx, d, want)
		if err != nil {
			return blobDesc{}, false, err
		}
		if err := m.linkBlob(ctx, name, d); err != nil {
			return blobDesc{}, false, err
		}
		keys := []string{blobLinkKey(name, d)}
		if !created {
			keys = append(keys, blobKey(d))
		}
		err = m.guard.Protect(ctx, keys...)
		if err == nil {
			if !created {
				m.dropUnnamed(ctx, bd, segs)
			}
			return bd, created, nil
		}
		own := func(key string) bool { return key == keys[0] || (key == blobKey(d) && !created) }
		if err := m.recoverCollected(ctx, err, attempt, own); err != nil {
			if _, ok := collectedKey(err); ok {
				m.dropDanglingLink(ctx, keys[0], blobKey(d))
			}
			return blobDesc{}, false, err
		}
		// The old descriptor named these segments (a commit of the same
		// session again) and took them along: nothing left to commit.
		for _, s := range segs {
			if ok, err := m.exists(ctx, s.Key); err != nil {
				return blobDesc{}, false, err
			} else if !ok {
				return blobDesc{}, false, errSegmentsCollected
			}
		}
	}
}

// putDescriptor writes the descriptor bd of d with put-if-absent, or
// returns the existing one (read from the store: a cached one may be
// gone) when there is one.
func (m *Metadata) putDescriptor(ctx context.Context, d digest.Digest, bd blobDesc) (_ blobDesc, created bool, err error) {
	b, err := json.Marshal(bd)
	if err != nil {
		return blobDesc{}, false, fmt.Errorf("blob descriptor %s: %w", d, err)
	}
	for range 3 {
		_, err = m.store.PutIfAbsent(ctx, blobKey(d), bytes.NewReader(b), int64(len(b)))
		if err == nil {
			m.blobs.Add(d, bd)
			return bd, true, nil
		}
		if !errors.Is(err, storage.ErrPreconditionFailed) {
			return blobDesc{}, false, err
		}
		existing, err := m.blobFromStore(ctx, d)
		if err == nil {
			m.blobs.Add(d, existing)
			return existing, false, nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return blobDesc{}, false, err
		}
		// Deleted since the put: try again to write ours.
		m.blobs.Remove(d)
	}
	return blobDesc{}, false, fmt.Errorf("blob descriptor %s keeps changing: %w", d, storage.ErrUnavailable)
}

// dropUnnamed deletes the segments of a commit that the descriptor that
// won (existing) does not name.
func (m *Metadata) dropUnnamed(ctx context.Context, existing blobDesc, segs []segment) {
	var drop []segment
	for _, s := range segs {
		if !existing.names(s.Key) {
			drop = append(drop, s)
		}
	}
	m.deleteSegments(ctx, drop, false)
}

// deleteSegments deletes data objects, except an implicit first segment
// (Digest set, segments.go) that a blob may still come to name: it goes
// only once the descriptor of its digest exists and names other data (no
// commit can name it then), or, with expired (purge: no request can commit
// it any more), unless that descriptor names it. It returns the ones kept.
func (m *Metadata) deleteSegments(ctx context.Context, segs []segment, expired bool) (kept []segment) {
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

// unusedFirstSegment decides from the descriptor in the store: a cached
// one naming other data may have been garbage-collected since and
// re-created naming s (a cached one naming s is enough to keep s).
func (m *Metadata) unusedFirstSegment(ctx context.Context, s segment, expired bool) bool {
	if bd, ok := m.blobs.Get(s.Digest); ok && bd.names(s.Key) {
		return false
	}
	bd, err := m.blobFromStore(ctx, s.Digest)
	if err != nil {
		return expired && errors.Is(err, storage.ErrNotFound)
	}
	m.blobs.Add(s.Digest, bd)
	return !bd.names(s.Key)
}

// names reports whether the descriptor names the data object key.
func (bd blobDesc) names(key string) bool {
	for _, x := range bd.segments() {
		if x.Key == key {
			return true
		}
	}
	return false
}

// openBlob reads length bytes of a stored blob from start: its segments
// from the store, outside data through the bucket view (an error naming
// the key when the registry has none).
func (m *Metadata) openBlob(ctx context.Context, bd blobDesc, start, length int64) io.ReadCloser {
	if bd.Outside != "" {
		return newSegmentsReader(ctx, m.outsideReader(), []segment{{Key: bd.Outside, Size: bd.Size}}, start, length)
	}
	return newSegmentsReader(ctx, m.store, bd.segments(), start, length)
}

// presignBlob returns a URL that reads the blob for expiry without the
// registry; ok is false when the store (the bucket view, for outside
// data) cannot presign or the blob is held in several segments (no one
// URL serves it).
func (m *Metadata) presignBlob(ctx context.Context, bd blobDesc, expiry time.Duration) (u *url.URL, ok bool) {
	if bd.Outside != "" {
		if m.view == nil {
			return nil, false
		}
		u, err := m.view.PresignGet(ctx, bd.Outside, expiry)
		return u, err == nil
	}
	p, can := m.store.(storage.Presigner)
	if !can || bd.Data == "" {
		return nil, false
	}
	u, err := p.PresignGet(ctx, bd.Data, expiry)
	return u, err == nil
}

// dataSize is the size of a data segment as stored (for Verify).
func (m *Metadata) dataSize(ctx context.Context, s segment) (int64, error) {
	info, err := m.store.Stat(ctx, s.Key)
	return info.Size, err
}

// ReadBlob returns the content of a small stored blob (an image config),
// refusing blobs larger than limit.
func (m *Metadata) ReadBlob(ctx context.Context, d digest.Digest, limit int64) ([]byte, error) {
	bd, err := m.blob(ctx, d)
	if err != nil {
		return nil, err
	}
	if bd.Size > limit {
		return nil, fmt.Errorf("blob %s is %d bytes, more than %d", d, bd.Size, limit)
	}
	rd := m.openBlob(ctx, bd, 0, bd.Size)
	defer rd.Close()
	b := make([]byte, bd.Size)
	if _, err := io.ReadFull(rd, b); err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	return b, nil
}

// blobInRepo returns the descriptor of a blob linked into a repository.
func (m *Metadata) blobInRepo(ctx context.Context, name string, d digest.Digest) (blobDesc, error) {
	if _, err := m.store.Stat(ctx, blobLinkKey(name, d)); err != nil {
		return blobDesc{}, err
	}
	return m.blob(ctx, d)
}

// blobInRepoCached is blobInRepo answered from the link memory when it
// can (see Metadata.linked); for blob GETs only.
func (m *Metadata) blobInRepoCached(ctx context.Context, name string, d digest.Digest) (blobDesc, error) {
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

func (m *Metadata) rememberLink(key string) {
	if m.linkTTL > 0 {
		m.linked.Add(key, time.Now().Add(m.linkTTL))
	}
}

// linkBlob makes blob d, which the registry holds, part of repository
// name: it writes the link (unconditionally: one request) and then the
// catalog entry, so a repository with any link is in the catalog. A blob
// the registry lacks is storage.ErrNotFound and links nothing; the check
// costs no request after a commit or a lookup of d (its descriptor is
// cached then), which is how the /v2/ paths reach it.
func (m *Metadata) linkBlob(ctx context.Context, name string, d digest.Digest) error {
	if _, err := m.blob(ctx, d); err != nil {
		return err
	}
	key := blobLinkKey(name, d)
	if err := m.putSmall(ctx, key, nil); err != nil {
		return err
	}
	m.rememberLink(key)
	return m.AddRepository(ctx, name)
}

// LinkBlob is linkBlob for other packages (the promotion service), with
// one difference: a link that already exists is not written again (a
// HEAD, not a PUT, for the layers most promotions share with the image
// before). Either way the descriptor and the link are then protected from
// garbage collection (protectLink). Callers linking many blobs at once
// call AddRepository first, so that they do not all race to create the
// catalog entry. A blob being collected is storage.ErrNotFound (and
// tombstone.ErrCollected).
func (m *Metadata) LinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	if _, err := m.blob(ctx, d); err != nil {
		return err
	}
	if linked, err := m.exists(ctx, blobLinkKey(repo, d)); err == nil && linked {
		return m.protectLink(ctx, repo, d, false)
	}
	return m.protectLink(ctx, repo, d, true)
}

// protectLink links blob d into repo (write: linkBlob, else the link
// exists) and protects the link and the descriptor. A link being deleted
// is waited for and written again; a descriptor being deleted cannot be
// brought back here: the error is storage.ErrNotFound and
// tombstone.ErrCollected (mount then falls back to an upload).
func (m *Metadata) protectLink(ctx context.Context, repo string, d digest.Digest, write bool) error {
	link := blobLinkKey(repo, d)
	for attempt := 0; ; attempt++ {
		if write {
			if err := m.linkBlob(ctx, repo, d); err != nil {
				return err
			}
		}
		err := m.guard.Protect(ctx, blobKey(d), link)
		if err == nil {
			return nil
		}
		if err := m.recoverCollected(ctx, err, attempt, func(k string) bool { return k == link }); err != nil {
			if _, ok := collectedKey(err); ok {
				m.dropDanglingLink(ctx, link, blobKey(d))
				return fmt.Errorf("%w: %w", storage.ErrNotFound, err)
			}
			return err
		}
		write = true
	}
}

// unlinkBlob removes a blob from a repository (storage.ErrNotFound when it
// is not linked there); its bytes stay for garbage collection.
func (m *Metadata) unlinkBlob(ctx context.Context, name string, d digest.Digest) error {
	key := blobLinkKey(name, d)
	if _, err := m.store.Stat(ctx, key); err != nil {
		return err
	}
	m.linked.Remove(key)
	err := m.store.Delete(ctx, key)
	// Again after the delete: a read that checked the link before it may
	// have remembered it meanwhile.
	m.linked.Remove(key)
	return err
}
