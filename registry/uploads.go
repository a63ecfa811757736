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
	"net/http"
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
type uploadState struct {
	ID        string           `json:"id"`
	Repo      string           `json:"repo"`
	Segments  []segment        `json:"segments,omitempty"`
	Offset    int64            `json:"offset"`
	Algorithm digest.Algorithm `json:"algorithm"`
	HashState []byte           `json:"hash_state,omitempty"`
	Started   time.Time        `json:"started"`
	etag      string           // version read, for compare-and-set
	hasher    hash.Hash        // restored from HashState
}

func uploadUnknown(id string) *apiError {
	return oci(errcode.ErrorCodeBlobUploadUnknown, "upload unknown to registry", id)
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
	st := &uploadState{ID: newUploadID(), Repo: name, Algorithm: alg, Started: time.Now().UTC()}
	st.hasher = alg.Hash()
	if err := r.saveUpload(ctx, st, true); err != nil {
		r.fail(c, err)
		return
	}
	r.accepted(c, name, st)
}

// mount links a blob of another repository into name. It returns "" when
// the source cannot serve (the caller falls back to an upload session).
func (r *Registry) mount(ctx context.Context, name, mount, from string) (digest.Digest, error) {
	d, err := parseDigest(mount)
	if err != nil {
		return "", err
	}
	if from == "" || !validName(from) {
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
	seg, err := r.writeSegment(ctx, io.TeeReader(req.Body, h), req.ContentLength)
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

// loadUpload reads a session and restores its hash state.
func (r *Registry) loadUpload(ctx context.Context, name, id string) (*uploadState, error) {
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return nil, uploadUnknown(id)
	}
	b, info, err := r.meta.readSmall(ctx, uploadKey(id), 4<<20)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, uploadUnknown(id)
	}
	if err != nil {
		return nil, err
	}
	st := &uploadState{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("upload state %s: %w", id, err)
	}
	if st.Repo != name {
		return nil, uploadUnknown(id)
	}
	st.etag = info.ETag
	st.hasher = st.Algorithm.Hash()
	if len(st.HashState) > 0 {
		if err := st.hasher.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.HashState); err != nil {
			return nil, fmt.Errorf("upload state %s: hash: %w", id, err)
		}
	}
	return st, nil
}

// saveUpload writes a session: create-only for a new one, compare-and-set
// otherwise, so two requests racing on one session cannot both advance it.
func (r *Registry) saveUpload(ctx context.Context, st *uploadState, create bool) error {
	hs, err := st.hasher.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	st.HashState = hs
	b, _ := json.Marshal(st)
	var info storage.Info
	if create {
		info, err = r.store.PutIfAbsent(ctx, uploadKey(st.ID), bytes.NewReader(b), int64(len(b)))
	} else {
		info, err = r.store.PutIfMatch(ctx, uploadKey(st.ID), bytes.NewReader(b), int64(len(b)), st.etag)
	}
	if errors.Is(err, storage.ErrPreconditionFailed) {
		return oci(errcode.ErrorCodeBlobUploadInvalid, "upload was changed by another request", st.ID).withStatus(http.StatusConflict)
	}
	if err == nil {
		st.etag = info.ETag
	}
	return err
}

func (r *Registry) uploadStatus(c *gin.Context, name, id string) {
	st, err := r.loadUpload(c.Request.Context(), name, id)
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

// receiveChunk loads a session and appends the request's body, if any, to
// it. When it returns false it has answered the request.
func (r *Registry) receiveChunk(c *gin.Context, name, id string) (*uploadState, bool) {
	ctx := c.Request.Context()
	st, err := r.loadUpload(ctx, name, id)
	if err != nil {
		r.fail(c, err)
		return nil, false
	}
	size, ok := r.chunkSize(c, name, st)
	if !ok {
		return nil, false
	}
	if err := r.appendChunk(ctx, st, c.Request.Body, size); err != nil {
		r.fail(c, err)
		return nil, false
	}
	return st, true
}

// chunkSize checks a chunk's Content-Range against the session: it must
// start where the session ends, or the answer is 416 and the session stays
// as it was. It returns the chunk's size (-1: unknown, read to EOF).
func (r *Registry) chunkSize(c *gin.Context, name string, st *uploadState) (int64, bool) {
	size := c.Request.ContentLength
	cr := c.GetHeader("Content-Range")
	if cr == "" {
		return size, true
	}
	start, end, ok := parseContentRange(cr)
	if !ok || start != st.Offset || (size >= 0 && end-start+1 != size) {
		r.uploadHeaders(c, name, st)
		r.fail(c, oci(errcode.ErrorCodeRangeInvalid, "chunk does not continue the upload", cr).withStatus(http.StatusRequestedRangeNotSatisfiable))
		return 0, false
	}
	return end - start + 1, true
}

// appendChunk writes a chunk as a new segment and records it in the
// session with compare-and-set. A request that loses the race (another
// request advanced the session meanwhile) drops its segment and gets 409.
func (r *Registry) appendChunk(ctx context.Context, st *uploadState, body io.Reader, size int64) error {
	if size == 0 {
		return nil
	}
	before, err := st.hasher.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	seg, err := r.writeSegment(ctx, io.TeeReader(body, st.hasher), size)
	if err != nil {
		return err
	}
	if seg.Size == 0 {
		r.deleteSegments(ctx, []segment{seg})
		return st.hasher.(encoding.BinaryUnmarshaler).UnmarshalBinary(before)
	}
	st.Segments = append(st.Segments, seg)
	st.Offset += seg.Size
	if err := r.saveUpload(ctx, st, false); err != nil {
		r.deleteSegments(ctx, []segment{seg})
		return err
	}
	return nil
}

// finishUpload handles PUT ?digest=: the last chunk (if any), verify,
// commit.
func (r *Registry) finishUpload(c *gin.Context, name, id string) {
	r.uploads.Inc()
	defer r.uploads.Dec()
	ctx := c.Request.Context()
	d, err := parseDigest(c.Query("digest"))
	if err != nil {
		r.fail(c, err)
		return
	}
	st, ok := r.receiveChunk(c, name, id)
	if !ok {
		return
	}
	got := digest.NewDigest(st.Algorithm, st.hasher)
	if d.Algorithm() != st.Algorithm {
		// The session hashed another algorithm: hash the stored bytes.
		if got, err = r.hashSegments(ctx, st.Segments, st.Offset, d.Algorithm()); err != nil {
			r.fail(c, err)
			return
		}
	}
	if got != d {
		r.dropUpload(ctx, st)
		r.fail(c, digestMismatch(d, got))
		return
	}
	if err := r.commit(ctx, name, d, st.Segments); err != nil {
		r.fail(c, err)
		return
	}
	_ = r.store.Delete(ctx, uploadKey(st.ID))
	r.created(c, name, d)
}

func (r *Registry) hashSegments(ctx context.Context, segs []segment, size int64, alg digest.Algorithm) (digest.Digest, error) {
	rd := newSegmentsReader(ctx, r.store, segs, 0, size)
	defer rd.Close()
	h := alg.Hash()
	if _, err := io.Copy(h, rd); err != nil {
		return "", err
	}
	return digest.NewDigest(alg, h), nil
}

// dropUpload forgets a session and its segments; used on cancel and on a
// failed final verification.
func (r *Registry) dropUpload(ctx context.Context, st *uploadState) {
	r.deleteSegments(ctx, st.Segments)
	_ = r.store.Delete(context.WithoutCancel(ctx), uploadKey(st.ID))
}

func (r *Registry) cancelUpload(c *gin.Context, name, id string) {
	st, err := r.loadUpload(c.Request.Context(), name, id)
	if err != nil {
		r.fail(c, err)
		return
	}
	r.dropUpload(c.Request.Context(), st)
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
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	return start, end, true
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
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
