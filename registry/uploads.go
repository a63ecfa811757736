package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gin-gonic/gin"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/storage"
)

// The /v2/<name>/blobs/uploads/ handlers: each reads its request into the
// terms of the upload sessions (upload.go) and answers their result.

// startUpload handles POST /v2/<name>/blobs/uploads/: a cross-repository
// mount, a monolithic upload (?digest=), or a new session.
func (r *Registry) startUpload(c *gin.Context, name string) {
	r.uploads.Inc()
	defer r.uploads.Dec()
	if !r.allowNewSession(c) {
		return
	}
	q := c.Request.URL.Query()
	switch {
	case q.Get("mount") != "" && r.mount(c, name, q.Get("mount"), q.Get("from")):
	case q.Get("digest") != "" && q.Get("mount") == "":
		r.putWhole(c, name, q.Get("digest"))
	default:
		alg := digest.Algorithm(q.Get("digest-algorithm"))
		if alg == "" {
			alg = digest.Canonical
		} else if alg != digest.SHA256 && alg != digest.SHA512 {
			r.fail(c, oci(errcode.ErrorCodeDigestInvalid, "unsupported digest algorithm", string(alg)))
			return
		}
		r.accepted(c, name, r.sessions.open(name, alg))
	}
}

// mount links blob mount of repository from into name and answers, or
// reports false without answering when from cannot serve it (the client
// gets a new session instead).
func (r *Registry) mount(c *gin.Context, name, mount, from string) (answered bool) {
	d, err := parseDigest(mount)
	if err != nil {
		r.fail(c, err)
		return true
	}
	if from == "" || !names.ValidRepository(from) {
		// No automatic discovery across repositories: it would hand out
		// blobs of repositories the caller may not read.
		return false
	}
	ok, err := r.sessions.mount(c.Request.Context(), name, from, d)
	if err != nil {
		r.fail(c, err)
		return true
	}
	if ok {
		r.created(c, name, d)
	}
	return ok
}

// putWhole stores the request's body as the blob dg (POST ?digest=).
func (r *Registry) putWhole(c *gin.Context, name, dg string) {
	d, err := parseDigest(dg)
	if err == nil {
		err = r.sessions.putWhole(c.Request.Context(), name, d, c.Request.Body, c.Request.ContentLength)
	}
	if err != nil {
		r.failUpload(c, name, "", progress{}, err)
		return
	}
	r.created(c, name, d)
}

func (r *Registry) uploadStatus(c *gin.Context, name, id string) {
	p, err := r.sessions.status(c.Request.Context(), name, id, c.Query(hashHintParam))
	if err != nil {
		r.failUpload(c, name, id, p, err)
		return
	}
	r.uploadHeaders(c, name, p)
	c.Status(http.StatusNoContent)
}

// patchUpload appends one chunk. With Content-Range the chunk must start
// where the session ends (416 otherwise); without it, it is appended.
func (r *Registry) patchUpload(c *gin.Context, name, id string) {
	r.uploads.Inc()
	defer r.uploads.Dec()
	p, err := r.sessions.append(c.Request.Context(), r.account(c), name, id, requestChunk(c))
	if err != nil {
		r.failUpload(c, name, id, p, err)
		return
	}
	r.accepted(c, name, p)
}

// finishUpload handles PUT ?digest=: the last chunk (if any), then the
// session is committed as the digest (uploads.commit).
func (r *Registry) finishUpload(c *gin.Context, name, id string) {
	r.uploads.Inc()
	defer r.uploads.Dec()
	d, err := parseDigest(c.Query("digest"))
	if err != nil {
		r.fail(c, err)
		return
	}
	p, err := r.sessions.commit(c.Request.Context(), name, id, d, requestChunk(c))
	if err != nil {
		r.failUpload(c, name, id, p, err)
		return
	}
	r.created(c, name, d)
}

func (r *Registry) cancelUpload(c *gin.Context, name, id string) {
	if err := r.sessions.cancel(c.Request.Context(), name, id); err != nil {
		r.failUpload(c, name, id, progress{}, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// Wait returns once the work the registry does after responses (deleting
// finished upload sessions, marking tag journal records done) is done.
func (r *Registry) Wait() {
	r.sessions.background.Wait()
	r.background.Wait()
}

// failUpload answers an error of the upload sessions in OCI terms; p is
// the session's progress (for the headers of a 416).
func (r *Registry) failUpload(c *gin.Context, name, id string, p progress, err error) {
	var mismatch *digestMismatchError
	var tooMany *tooManyError
	switch {
	case errors.Is(err, errUploadUnknown):
		err = oci(errcode.ErrorCodeBlobUploadUnknown, "upload unknown to registry", id)
	case errors.Is(err, errUploadConflict):
		err = oci(errcode.ErrorCodeBlobUploadInvalid, "upload was changed by another request", id).withStatus(http.StatusConflict)
	case errors.Is(err, errRangeInvalid):
		r.uploadHeaders(c, name, p)
		err = oci(errcode.ErrorCodeRangeInvalid, "chunk does not continue the upload", c.GetHeader("Content-Range")).withStatus(http.StatusRequestedRangeNotSatisfiable)
	case errors.As(err, &mismatch):
		err = oci(errcode.ErrorCodeDigestInvalid, "digest does not match content", map[string]string{"expected": mismatch.want.String(), "computed": mismatch.got.String()})
	case errors.As(err, &tooMany):
		err = tooMany.answer(c)
	}
	r.fail(c, err)
}

func (r *Registry) created(c *gin.Context, name string, d digest.Digest) {
	h := c.Writer.Header()
	h.Set("Location", r.blobLocation(name, d))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	c.Status(http.StatusCreated)
}

func (r *Registry) accepted(c *gin.Context, name string, p progress) {
	r.uploadHeaders(c, name, p)
	c.Status(http.StatusAccepted)
}

// uploadHeaders describe a session: where to continue and what it holds.
func (r *Registry) uploadHeaders(c *gin.Context, name string, p progress) {
	h := c.Writer.Header()
	loc := r.opts.PublicURL + "/v2/" + name + "/blobs/uploads/" + p.id
	if p.hint != "" {
		loc += "?" + hashHintParam + "=" + p.hint // base64url: nothing to escape
	}
	h.Set("Location", loc)
	h.Set("Docker-Upload-UUID", p.id)
	h.Set("Range", fmt.Sprintf("0-%d", max(p.offset-1, 0)))
	h.Set("Content-Length", "0")
}

// requestChunk is the request's body with its Content-Length and
// Content-Range.
func requestChunk(c *gin.Context) chunk {
	ch := chunk{body: c.Request.Body, length: c.Request.ContentLength, hint: c.Query(hashHintParam)}
	if cr := c.GetHeader("Content-Range"); cr != "" {
		ch.ranged = true
		ch.first, ch.last, ch.valid = parseContentRange(cr)
	}
	return ch
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
	// chunk's length disagree with its range.
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
