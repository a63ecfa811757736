package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gin-gonic/gin"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

// uploadState is an upload session, stored so that any replica (or this
// one after a restart) can continue it. Each PATCH writes its bytes once,
// into a new segment (see segments.go); the session lists the segments and
// carries the hash state, so finishing is a descriptor write.
//
// The object uploads/<id> is written only once the session holds data
// (uploadid.go): a POST stores nothing. Every write of it is a
// compare-and-set (put-if-absent for the first, put-if-match on the ETag
// the writer started from after), so two requests (on one replica or on
// several) racing on one session cannot both advance it.
type uploadState struct {
	ID        string           `json:"id"`
	Repo      string           `json:"repo"`
	Segments  []segment        `json:"segments,omitempty"`
	Offset    int64            `json:"offset"`
	Algorithm digest.Algorithm `json:"algorithm"`
	HashState []byte           `json:"hash_state,omitempty"`
	Started   time.Time        `json:"started"`
	// Closed is "" while the session takes data; the digest it was
	// committed as once a PUT won it; closedCancelled after DELETE. A
	// closed session takes no data, and nothing drops its segments (a
	// committed blob may name them); a PUT with the digest it was closed
	// as commits again (idempotent), so a PUT cut short between closing
	// and committing can be retried.
	Closed string    `json:"closed,omitempty"`
	etag   string    // version read or written (when stored)
	stored bool      // the object exists, at etag
	cached bool      // from this replica's memory, not read by this request
	hasher hash.Hash // restored from HashState
}

const closedCancelled = "cancelled"

// sessionEntry is what a replica remembers of a session it wrote (or
// issued): the state as stored and its ETag. It is only ever a guess: every
// use ends in a compare-and-set against the store (see appendChunk and
// finishUpload), and a lost one sends the request back to the store.
type sessionEntry struct {
	state  []byte
	etag   string
	stored bool
}

// sessionCacheEntries bounds the sessions a replica remembers (a few KiB
// each at most).
const sessionCacheEntries = 1 << 14

func uploadUnknown(id string) *apiError {
	return oci(errcode.ErrorCodeBlobUploadUnknown, "upload unknown to registry", id)
}

func uploadConflict(id string) *apiError {
	return oci(errcode.ErrorCodeBlobUploadInvalid, "upload was changed by another request", id).withStatus(http.StatusConflict)
}

func newUploadID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (r *Registry) uploadLocation(name, id string) string {
	return r.opts.PublicURL + "/v2/" + name + "/blobs/uploads/" + id
}

// startUpload handles POST /v2/<name>/blobs/uploads/: a cross-repository
// mount, a monolithic upload (?digest=), or a new session.
func (r *Registry) startUpload(c *gin.Context, name string) {
	r.uploads.Inc()
	defer r.uploads.Dec()
	if !r.allowNewSession(c) {
		return
	}
	ctx := c.Request.Context()
	q := c.Request.URL.Query()

	if mount := q.Get("mount"); mount != "" {
		if done, err := r.mount(ctx, name, mount, q.Get("from")); err != nil {
			r.fail(c, err)
			return
		} else if done != "" {
			r.created(c, name, done)
			return
		}
		// Source unknown or unreadable: fall back to a normal session (202).
	}
	if dg := q.Get("digest"); dg != "" && q.Get("mount") == "" {
		d, err := parseDigest(dg)
		if err != nil {
			r.fail(c, err)
			return
		}
		if err := r.putMonolithic(ctx, name, d, c.Request); err != nil {
			r.fail(c, err)
			return
		}
		r.created(c, name, d)
		return
	}

	alg := digest.Canonical
	if a := q.Get("digest-algorithm"); a != "" {
		alg = digest.Algorithm(a)
		if alg != digest.SHA256 && alg != digest.SHA512 {
			r.fail(c, oci(errcode.ErrorCodeDigestInvalid, "unsupported digest algorithm", a))
			return
		}
	}
	// Nothing is stored: the signed id is the session until data arrives.
	now := time.Now().UTC()
	st := &uploadState{ID: r.mintUploadID(name, alg, now), Repo: name, Algorithm: alg, Started: now.Truncate(time.Second)}
	st.hasher = alg.Hash()
	r.remember(st)
	r.accepted(c, name, st)
}

// mount links a blob of another repository into name. It returns "" when
// the source cannot serve (the caller falls back to an upload session).
func (r *Registry) mount(ctx context.Context, name, mount, from string) (digest.Digest, error) {
	d, err := parseDigest(mount)
	if err != nil {
		return "", err
	}
	if from == "" || !ValidName(from) {
		// No automatic discovery across repositories: it would hand out
		// blobs of repositories the caller may not read.
		return "", nil
	}
	if _, err := r.meta.blobInRepo(ctx, from, d); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return "", nil
		}
		return "", err
	}
	return d, r.meta.linkBlob(ctx, name, d)
}

// putMonolithic stores a whole blob sent with POST ?digest=.
func (r *Registry) putMonolithic(ctx context.Context, name string, d digest.Digest, req *http.Request) error {
	h := d.Algorithm().Hash()
	seg, err := r.writeSegment(ctx, io.TeeReader(req.Body, h), req.ContentLength, "")
	if err != nil {
		return err
	}
	if got := digest.NewDigest(d.Algorithm(), h); got != d {
		r.deleteSegments(ctx, []segment{seg})
		return digestMismatch(d, got)
	}
	return r.commit(ctx, name, d, []segment{seg})
}

func digestMismatch(want, got digest.Digest) *apiError {
	return oci(errcode.ErrorCodeDigestInvalid, "digest does not match content", map[string]string{"expected": want.String(), "computed": got.String()})
}

// commit makes written segments a blob of the repository: descriptor
// (dedupe on an existing digest), then link.
func (r *Registry) commit(ctx context.Context, name string, d digest.Digest, segs []segment) error {
	if _, err := r.meta.commitBlob(ctx, d, segs); err != nil {
		return err
	}
	return r.meta.linkBlob(ctx, name, d)
}

func (r *Registry) created(c *gin.Context, name string, d digest.Digest) {
	h := c.Writer.Header()
	h.Set("Location", r.blobLocation(name, d))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	c.Status(http.StatusCreated)
}

func (r *Registry) accepted(c *gin.Context, name string, st *uploadState) {
	r.uploadHeaders(c, name, st)
	c.Status(http.StatusAccepted)
}

// uploadHeaders describe a session: where to continue and what it holds.
func (r *Registry) uploadHeaders(c *gin.Context, name string, st *uploadState) {
	h := c.Writer.Header()
	h.Set("Location", r.uploadLocation(name, st.ID))
	h.Set("Docker-Upload-UUID", st.ID)
	h.Set("Range", fmt.Sprintf("0-%d", max(st.Offset-1, 0)))
	h.Set("Content-Length", "0")
}

// remember keeps the state just written (or issued) as this replica's guess
// of the session.
func (r *Registry) remember(st *uploadState) {
	b, err := json.Marshal(st)
	if err != nil {
		return
	}
	r.sessions.Add(st.ID, sessionEntry{state: b, etag: st.etag, stored: st.stored})
}

func (r *Registry) forget(id string) { r.sessions.Remove(id) }

// recall returns this replica's guess of a session (cached set).
func (r *Registry) recall(name, id string) (*uploadState, bool) {
	e, ok := r.sessions.Get(id)
	if !ok {
		return nil, false
	}
	st, err := decodeUpload(e.state, id)
	if err != nil || st.Repo != name {
		return nil, false
	}
	st.etag, st.stored, st.cached = e.etag, e.stored, true
	return st, true
}

func decodeUpload(b []byte, id string) (*uploadState, error) {
	st := &uploadState{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("upload state %s: %w", id, err)
	}
	st.hasher = st.Algorithm.Hash()
	if len(st.HashState) > 0 {
		if err := st.hasher.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.HashState); err != nil {
			return nil, fmt.Errorf("upload state %s: hash: %w", id, err)
		}
	}
	return st, nil
}

// loadUpload returns a session and restores its hash state: this
// replica's guess when useCache and it has one, else the stored state. A
// missing object is the initial state of a valid, young id (uploadid.go).
func (r *Registry) loadUpload(ctx context.Context, name, id string, useCache bool) (*uploadState, error) {
	ok, signed, issued, alg := r.uploadIDInfo(name, id)
	if !ok {
		return nil, uploadUnknown(id)
	}
	if useCache {
		if st, ok := r.recall(name, id); ok && (st.stored || time.Since(issued) <= r.opts.UploadTTL) {
			return st, nil
		}
	}
	b, info, err := r.meta.readSmall(ctx, uploadKey(id), 4<<20)
	if errors.Is(err, storage.ErrNotFound) {
		r.forget(id)
		if !signed || time.Since(issued) > r.opts.UploadTTL {
			return nil, uploadUnknown(id)
		}
		st := &uploadState{ID: id, Repo: name, Algorithm: alg, Started: issued, hasher: alg.Hash()}
		return st, r.loadFirstSegment(ctx, st)
	}
	if err != nil {
		return nil, err
	}
	st, err := decodeUpload(b, id)
	if err != nil {
		return nil, err
	}
	if st.Repo != name {
		return nil, uploadUnknown(id)
	}
	st.etag, st.stored = info.ETag, true
	return st, nil
}

// loadFirstSegment adds a session's implicit first segment to st (empty,
// not stored), if it was written, hashing its bytes again: the one case
// where a replica reads a chunk back to continue a session (another
// replica took the first PATCH, or this one restarted since).
func (r *Registry) loadFirstSegment(ctx context.Context, st *uploadState) error {
	key := firstSegmentKey(st.ID)
	info, err := r.store.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	seg := segment{Key: key, Size: info.Size}
	if err := r.rehash(ctx, st.hasher, seg); err != nil {
		return err
	}
	seg.Digest = digest.NewDigest(st.Algorithm, st.hasher)
	st.Segments, st.Offset = []segment{seg}, seg.Size
	return nil
}

// loadOpen is loadUpload for a request that adds to the session: a closed
// session is unknown. A closed state from memory is checked in the store.
func (r *Registry) loadOpen(ctx context.Context, name, id string, useCache bool) (*uploadState, error) {
	st, err := r.loadUpload(ctx, name, id, useCache)
	if err == nil && st.Closed != "" && st.cached {
		st, err = r.loadUpload(ctx, name, id, false)
	}
	if err == nil && st.Closed != "" {
		return nil, uploadUnknown(id)
	}
	return st, err
}

// saveUpload writes a session with compare-and-set: put-if-absent for one
// not stored yet, put-if-match on the ETag it was read (or last written)
// at otherwise. A lost race is storage.ErrPreconditionFailed.
func (r *Registry) saveUpload(ctx context.Context, st *uploadState) error {
	hs, err := st.hasher.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	st.HashState = hs
	b, _ := json.Marshal(st)
	var info storage.Info
	if !st.stored {
		info, err = r.store.PutIfAbsent(ctx, uploadKey(st.ID), bytes.NewReader(b), int64(len(b)))
	} else {
		info, err = r.store.PutIfMatch(ctx, uploadKey(st.ID), bytes.NewReader(b), int64(len(b)), st.etag)
	}
	if err != nil {
		if !errors.Is(err, storage.ErrPreconditionFailed) {
			r.forget(st.ID)
		}
		// A lost race leaves the memory as it is: it may hold the
		// winner's write (appendChunk tells a race on this replica by it).
		return err
	}
	st.etag, st.stored = info.ETag, true
	r.remember(st)
	return nil
}

func (r *Registry) uploadStatus(c *gin.Context, name, id string) {
	// Read from the store: another replica may have moved the session.
	st, err := r.loadOpen(c.Request.Context(), name, id, false)
	if err != nil {
		r.fail(c, err)
		return
	}
	r.uploadHeaders(c, name, st)
	c.Status(http.StatusNoContent)
}

// patchUpload appends one chunk. With Content-Range the chunk must start
// where the session ends (416 otherwise); without it, it is appended.
func (r *Registry) patchUpload(c *gin.Context, name, id string) {
	r.uploads.Inc()
	defer r.uploads.Dec()
	if st, ok := r.receiveChunk(c, name, id); ok {
		r.accepted(c, name, st)
	}
}

// errRangeMoved: a chunk's Content-Range does not continue the stored
// session (found after rebasing on it).
var errRangeMoved = errors.New("chunk does not continue the upload")

// receiveChunk loads a session (this replica's memory first) and appends
// the request's body, if any, to it. When it returns false it has
// answered the request.
func (r *Registry) receiveChunk(c *gin.Context, name, id string) (*uploadState, bool) {
	ctx := c.Request.Context()
	st, start, size, ok := r.openForChunk(c, name, id)
	if !ok {
		return nil, false
	}
	settle, err := r.slotForChunk(c, st, size)
	if err != nil {
		r.fail(c, err)
		return nil, false
	}
	st, err = r.appendChunk(ctx, name, st, c.Request.Body, start, size)
	settle(st, err)
	if errors.Is(err, errRangeMoved) {
		r.rangeInvalid(c, name, st)
		return nil, false
	}
	if err != nil {
		r.fail(c, err)
		return nil, false
	}
	return st, true
}

// openForChunk loads an open session and checks the request's
// Content-Range against it; a mismatch with remembered state is checked
// again against the store before the 416. start is -1 without
// Content-Range.
func (r *Registry) openForChunk(c *gin.Context, name, id string) (st *uploadState, start, size int64, ok bool) {
	ctx := c.Request.Context()
	st, err := r.loadOpen(ctx, name, id, true)
	if err != nil {
		r.fail(c, err)
		return nil, 0, 0, false
	}
	start, size, ok = chunkRange(c, st)
	if !ok && st.cached {
		if st, err = r.loadOpen(ctx, name, id, false); err != nil {
			r.fail(c, err)
			return nil, 0, 0, false
		}
		start, size, ok = chunkRange(c, st)
	}
	if !ok {
		r.rangeInvalid(c, name, st)
		return nil, 0, 0, false
	}
	return st, start, size, true
}

func (r *Registry) rangeInvalid(c *gin.Context, name string, st *uploadState) {
	r.uploadHeaders(c, name, st)
	r.fail(c, oci(errcode.ErrorCodeRangeInvalid, "chunk does not continue the upload", c.GetHeader("Content-Range")).withStatus(http.StatusRequestedRangeNotSatisfiable))
}

// chunkRange checks a chunk's Content-Range against the session: it must
// start where the session ends. It returns where the chunk starts (-1: no
// Content-Range) and its size (-1: unknown, read to EOF).
func chunkRange(c *gin.Context, st *uploadState) (start, size int64, ok bool) {
	size = c.Request.ContentLength
	cr := c.GetHeader("Content-Range")
	if cr == "" {
		return -1, size, true
	}
	start, end, ok := parseContentRange(cr)
	if !ok || start != st.Offset || (size >= 0 && end-start+1 != size) {
		return 0, 0, false
	}
	return start, end - start + 1, true
}

// appendChunk writes a chunk as a new segment and records it in the
// session with compare-and-set. It returns the session as stored.
//
// When the compare-and-set loses and the state came from this replica's
// memory, the memory was stale (another replica moved the session since):
// the chunk is rebased on the stored state (its bytes are read back into
// that state's hash) if its Content-Range, or for a chunk without one the
// absence of a local writer, allows. Otherwise (a request racing on the
// same session) the loser drops its segment and gets 409.
func (r *Registry) appendChunk(ctx context.Context, name string, st *uploadState, body io.Reader, start, size int64) (*uploadState, error) {
	if size == 0 {
		return st, nil
	}
	before, err := st.hasher.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return st, err
	}
	first := ""
	if !st.stored && len(st.Segments) == 0 && len(st.ID) == 2*uploadIDBytes {
		first = firstSegmentKey(st.ID) // signed ids only: see uploadid.go
	}
	seg, err := r.writeSegment(ctx, io.TeeReader(body, st.hasher), size, first)
	if errors.Is(err, storage.ErrPreconditionFailed) {
		// Another request wrote the first chunk: a race, or this
		// replica's memory of an empty session is stale (the first chunk
		// went to another replica). The body is spent, so the chunk cannot
		// be rebased like a later one; the memory is dropped, so a retry
		// continues from the store. (A chunk with Content-Range never gets
		// here: its range already told the memory was stale.)
		r.forget(st.ID)
		return st, uploadConflict(st.ID)
	}
	if err != nil {
		return st, err
	}
	if seg.Size == 0 {
		r.deleteSegments(ctx, []segment{seg})
		return st, st.hasher.(encoding.BinaryUnmarshaler).UnmarshalBinary(before)
	}
	if seg.Key == first {
		// Stored as the session's state by itself (firstSegmentKey).
		seg.Digest = digest.NewDigest(st.Algorithm, st.hasher)
		st.Segments = append(st.Segments, seg)
		st.Offset += seg.Size
		if st.HashState, err = st.hasher.(encoding.BinaryMarshaler).MarshalBinary(); err != nil {
			return st, err
		}
		r.remember(st)
		return st, nil
	}
	startedAt := st.etag
	st.Segments = append(st.Segments, seg)
	st.Offset += seg.Size
	err = r.saveUpload(ctx, st)
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, storage.ErrPreconditionFailed) {
		r.deleteSegments(ctx, []segment{seg})
		return st, err
	}
	if !st.cached {
		r.deleteSegments(ctx, []segment{seg})
		return st, uploadConflict(st.ID)
	}
	if start < 0 {
		if e, ok := r.sessions.Get(st.ID); ok && e.etag != startedAt {
			// Another request of this replica wrote it meanwhile: a race.
			r.deleteSegments(ctx, []segment{seg})
			return st, uploadConflict(st.ID)
		}
	}
	fresh, err := r.loadOpen(ctx, name, st.ID, false)
	if err != nil {
		r.deleteSegments(ctx, []segment{seg})
		return st, err
	}
	if start >= 0 && start != fresh.Offset {
		r.deleteSegments(ctx, []segment{seg})
		return fresh, errRangeMoved
	}
	if err := r.rehash(ctx, fresh.hasher, seg); err != nil {
		r.deleteSegments(ctx, []segment{seg})
		return fresh, err
	}
	fresh.Segments = append(fresh.Segments, seg)
	fresh.Offset += seg.Size
	if err := r.saveUpload(ctx, fresh); err != nil {
		r.deleteSegments(ctx, []segment{seg})
		if errors.Is(err, storage.ErrPreconditionFailed) {
			err = uploadConflict(st.ID)
		}
		return fresh, err
	}
	return fresh, nil
}

// rehash feeds a stored segment's bytes to h (rebasing a chunk on a state
// other than the one it was hashed with: rare, see appendChunk).
func (r *Registry) rehash(ctx context.Context, h hash.Hash, seg segment) error {
	rd := newSegmentsReader(ctx, r.store, []segment{seg}, 0, seg.Size)
	defer rd.Close()
	_, err := io.Copy(h, rd)
	return err
}

// finishUpload handles PUT ?digest=: the last chunk (if any), verify,
// close the session (compare-and-set: this is what makes a remembered
// state safe to commit, and what keeps a cancel from dropping segments a
// blob now names), commit, forget the session.
func (r *Registry) finishUpload(c *gin.Context, name, id string) {
	r.uploads.Inc()
	defer r.uploads.Dec()
	ctx := c.Request.Context()
	d, err := parseDigest(c.Query("digest"))
	if err != nil {
		r.fail(c, err)
		return
	}
	st, err := r.loadUpload(ctx, name, id, true)
	if err == nil && st.Closed != "" && st.cached {
		st, err = r.loadUpload(ctx, name, id, false)
	}
	if err != nil {
		r.fail(c, err)
		return
	}
	if st.Closed != "" {
		r.finishClosed(c, name, st, d)
		return
	}
	start, size, ok := chunkRange(c, st)
	if !ok && st.cached {
		if st, err = r.loadOpen(ctx, name, id, false); err != nil {
			r.fail(c, err)
			return
		}
		start, size, ok = chunkRange(c, st)
	}
	if !ok {
		r.rangeInvalid(c, name, st)
		return
	}
	// The last chunk: a segment of this request, recorded by the close.
	var last []segment
	if size != 0 {
		seg, err := r.writeSegment(ctx, io.TeeReader(c.Request.Body, st.hasher), size, "")
		if err != nil {
			r.fail(c, err)
			return
		}
		if seg.Size > 0 {
			last = []segment{seg}
		} else {
			r.deleteSegments(ctx, []segment{seg})
		}
	}
	for attempt := 0; ; attempt++ {
		got, err := r.uploadDigest(ctx, st, last, d.Algorithm())
		if err != nil {
			r.deleteSegments(ctx, last)
			r.fail(c, err)
			return
		}
		if got == d {
			err = r.closeUpload(ctx, st, last, d)
			if err == nil {
				break
			}
			if !errors.Is(err, storage.ErrPreconditionFailed) || !st.cached || attempt > 0 {
				r.deleteSegments(ctx, last)
				if errors.Is(err, storage.ErrPreconditionFailed) {
					err = uploadConflict(id)
				}
				r.fail(c, err)
				return
			}
		} else if !st.cached || attempt > 0 {
			r.dropUpload(ctx, st, last, false)
			r.fail(c, digestMismatch(d, got))
			return
		}
		// The remembered state was stale (or the digest does not match
		// it): start again from the store.
		fresh, err := r.loadUpload(ctx, name, id, false)
		if err != nil {
			r.deleteSegments(ctx, last)
			r.fail(c, err)
			return
		}
		if fresh.Closed != "" {
			r.deleteSegments(ctx, last)
			r.finishClosed(c, name, fresh, d)
			return
		}
		if start >= 0 && start != fresh.Offset {
			r.deleteSegments(ctx, last)
			r.rangeInvalid(c, name, fresh)
			return
		}
		for _, seg := range last {
			if err := r.rehash(ctx, fresh.hasher, seg); err != nil {
				r.deleteSegments(ctx, last)
				r.fail(c, err)
				return
			}
		}
		st = fresh
	}
	if err := r.commit(ctx, name, d, st.Segments); err != nil {
		// The session is closed as d: a retried PUT commits again.
		r.fail(c, err)
		return
	}
	r.endCommitted(st)
	r.created(c, name, d)
}

// finishClosed answers a PUT on a closed session: one closed as the same
// digest is committed again (a retry of a PUT cut short), anything else is
// unknown, as a finished upload is.
func (r *Registry) finishClosed(c *gin.Context, name string, st *uploadState, d digest.Digest) {
	if st.Closed != d.String() {
		r.fail(c, uploadUnknown(st.ID))
		return
	}
	if err := r.commit(c.Request.Context(), name, d, st.Segments); err != nil {
		r.fail(c, err)
		return
	}
	r.endCommitted(st)
	r.created(c, name, d)
}

// uploadDigest is the digest of the session's bytes followed by last's
// (already fed to st.hasher), in alg.
func (r *Registry) uploadDigest(ctx context.Context, st *uploadState, last []segment, alg digest.Algorithm) (digest.Digest, error) {
	if alg == st.Algorithm {
		return digest.NewDigest(st.Algorithm, st.hasher), nil
	}
	// The session hashed another algorithm: hash the stored bytes.
	segs := append(slices.Clone(st.Segments), last...)
	var size int64
	for _, s := range segs {
		size += s.Size
	}
	return r.hashSegments(ctx, segs, size, alg)
}

// closeUpload records that the session (with last appended) is the blob d,
// with compare-and-set. A session not stored writes nothing when its only
// segments are this request's own, or when it is exactly its implicit
// first segment committed as that segment's digest (firstSegmentKey: the
// one commit allowed without compare-and-set); any other close of it is a
// put-if-absent of the session object.
func (r *Registry) closeUpload(ctx context.Context, st *uploadState, last []segment, d digest.Digest) error {
	if !st.stored && (len(st.Segments) == 0 || (len(last) == 0 && len(st.Segments) == 1 && st.Segments[0].Digest == d)) {
		st.Segments = append(st.Segments, last...)
		return nil
	}
	closed := *st
	closed.Segments = append(slices.Clone(st.Segments), last...)
	closed.Closed = d.String()
	for _, s := range last {
		closed.Offset += s.Size
	}
	if err := r.saveUpload(ctx, &closed); err != nil {
		return err
	}
	*st = closed
	return nil
}

// dropSessionLater deletes a committed session after the response. The
// delete is off the response path because a session left behind (the
// process dies first, or the delete fails) is harmless: it is closed, so it
// takes no data and nothing drops its segments; a PUT with its digest
// commits again (idempotent); and purge removes it after
// uploads.purge_after like any untouched session. Once it is gone, a young
// id reads as a new, empty session (uploadid.go) — also harmless.
func (r *Registry) dropSessionLater(id string) {
	r.forget(id)
	r.background.Add(1)
	go func() {
		defer r.background.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.store.Delete(ctx, uploadKey(id)); err != nil {
			r.opts.Logger.Warn("deleting a finished upload session (purge will)", "upload", id, "error", err.Error())
		}
	}()
}

// Wait returns once the work the registry does after responses (deleting
// finished upload sessions) is done.
func (r *Registry) Wait() { r.background.Wait() }

func (r *Registry) hashSegments(ctx context.Context, segs []segment, size int64, alg digest.Algorithm) (digest.Digest, error) {
	rd := newSegmentsReader(ctx, r.store, segs, 0, size)
	defer rd.Close()
	h := alg.Hash()
	if _, err := io.Copy(h, rd); err != nil {
		return "", err
	}
	return digest.NewDigest(alg, h), nil
}

// dropUpload forgets a session and its segments (plus last, this
// request's own): on cancel (keep: the cancelled session stays stored, so
// later requests on the id get 404 until purge removes it) and on a failed
// final verification (the session is deleted, as before). The session is
// first closed as cancelled with compare-and-set: if that loses, another
// request moved or closed the session and its segments are left alone.
//
// An implicit first segment (firstSegmentKey) may have been committed by a
// PUT elsewhere without compare-and-set: it stays listed in the cancelled
// state, and is deleted only when that is known safe (meta.deleteSegments),
// by purge otherwise. So such a session is recorded as cancelled even when
// it was not stored, and the record stays while the segment may.
func (r *Registry) dropUpload(ctx context.Context, st *uploadState, last []segment, keep bool) error {
	ctx = context.WithoutCancel(ctx)
	segs := st.Segments
	var implicit []segment
	for _, s := range segs {
		if s.Digest != "" {
			implicit = append(implicit, s)
		}
	}
	record := st.stored || len(implicit) > 0
	if record || keep {
		cancelled := *st
		cancelled.Segments, cancelled.Offset, cancelled.Closed = implicit, 0, closedCancelled
		if err := r.saveUpload(ctx, &cancelled); err != nil {
			r.deleteSegments(ctx, last)
			return err
		}
	}
	r.release(st.ID)
	kept := r.deleteSegments(ctx, append(slices.Clone(segs), last...))
	if !keep && record && len(kept) == 0 {
		r.forget(st.ID)
		_ = r.store.Delete(ctx, uploadKey(st.ID))
	}
	return nil
}

func (r *Registry) cancelUpload(c *gin.Context, name, id string) {
	st, err := r.loadOpen(c.Request.Context(), name, id, false)
	if err != nil {
		r.fail(c, err)
		return
	}
	if err := r.dropUpload(c.Request.Context(), st, nil, true); err != nil {
		if errors.Is(err, storage.ErrPreconditionFailed) {
			err = uploadConflict(id)
		}
		r.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// parseContentRange reads "start-end" (also "bytes start-end/*").
func parseContentRange(s string) (start, end int64, ok bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "bytes ")
	s, _, _ = strings.Cut(s, "/")
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	// end < MaxInt64 keeps the size, end-start+1, from overflowing to a
	// negative number, which would read as "size unknown" and let the
	// chunk's length disagree with its range (testdata/fuzz/FuzzContentRange).
	if err1 != nil || err2 != nil || start < 0 || end < start || end == math.MaxInt64 {
		return 0, 0, false
	}
	return start, end, true
}

// bodyError turns a failure while reading the client's body into a
// client error; storage failures stay what they are.
func bodyError(err error) error {
	if errors.Is(err, storage.ErrUnavailable) || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrInvalidKey) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "unexpected EOF") {
		return oci(errcode.ErrorCodeBlobUploadInvalid, "request body ended early", nil).withStatus(http.StatusBadRequest)
	}
	return err
}
