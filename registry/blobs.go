package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gin-gonic/gin"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

func blobUnknown(d string) *apiError {
	return oci(errcode.ErrorCodeBlobUnknown, "blob unknown to registry", d)
}

// getBlob answers HEAD and GET of a blob, with single byte ranges.
func (r *Registry) getBlob(c *gin.Context, name, ref string) {
	ctx := c.Request.Context()
	d, err := parseDigest(ref)
	if err != nil {
		r.fail(c, err)
		return
	}
	// GET may answer from the link memory (a pull then costs no store
	// request before the redirect); HEAD always asks the store: clients
	// HEAD a blob to decide whether to upload it, and a remembered link
	// that another replica deleted would make them skip it and fail at the
	// manifest PUT.
	lookup := r.meta.blobInRepo
	if c.Request.Method == http.MethodGet {
		lookup = r.meta.blobInRepoCached
	}
	bd, err := lookup(ctx, name, d)
	if errors.Is(err, storage.ErrNotFound) {
		r.fail(c, blobUnknown(ref))
		return
	}
	if err != nil {
		r.fail(c, err)
		return
	}
	h := c.Writer.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "max-age=31536000")

	start, length, partial, ok := parseRange(c.GetHeader("Range"), bd.Size)
	if !ok {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", bd.Size))
		r.fail(c, oci(errcode.ErrorCodeRangeInvalid, "requested range not satisfiable", nil).withStatus(http.StatusRequestedRangeNotSatisfiable))
		return
	}
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, bd.Size))
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	if c.Request.Method == http.MethodHead {
		c.Status(status)
		return
	}
	if r.redirect(c, bd) {
		return
	}
	buf := r.getBuffer()
	defer r.putBuffer(buf)
	// Read the first piece before the status goes out, so a missing object
	// or an unreachable store is still an error response. It is a whole
	// buffer, not a few KiB: the kernel sizes its first read-ahead window
	// from the first read of a file (a 32 KiB first read starts it at
	// 128 KiB and it takes five reads to grow; BENCHMARKS.md, pull-16m).
	first := buf[:min(length, int64(len(buf)))]
	rc := r.meta.openBlob(ctx, bd, start, length)
	k, err := io.ReadFull(rc, first)
	if errors.Is(err, storage.ErrNotFound) {
		// The descriptor came from a cache (this replica's, or the link
		// memory) and garbage collection has deleted the blob since: the
		// caches forget it, and the store says whether it is back (pushed
		// again, naming other data) or unknown.
		rc.Close()
		rc = nil
		r.meta.Forget(blobKey(d))
		r.meta.Forget(blobLinkKey(name, d))
		if fresh, ferr := r.meta.blobInRepo(ctx, name, d); ferr == nil && fresh.Size == bd.Size {
			rc = r.meta.openBlob(ctx, fresh, start, length)
			k, err = io.ReadFull(rc, first)
		}
		if errors.Is(err, storage.ErrNotFound) {
			err = blobUnknown(ref)
		}
	}
	if rc != nil {
		defer rc.Close()
	}
	if err != nil {
		h.Del("Content-Length")
		h.Del("Content-Range")
		r.fail(c, fmt.Errorf("blob descriptor %s: %w", blobKey(d), err))
		return
	}
	c.Status(status)
	_, _ = c.Writer.Write(first[:k])
	n, err := io.CopyBuffer(c.Writer, rc, buf)
	n += int64(k)
	if err != nil || n != length {
		// Headers are gone; the short body tells the client.
		r.opts.Logger.WarnContext(ctx, "blob body cut short", "digest", d.String(), "sent", n, "want", length, "error", err)
	}
}

// redirect sends a blob read to a presigned URL when the backend and the
// configuration allow it.
func (r *Registry) redirect(c *gin.Context, bd blobDesc) bool {
	if !r.opts.Redirect || c.GetHeader("Range") != "" || bd.Size < r.opts.RedirectMinSize {
		return false
	}
	u, ok := r.meta.presignBlob(c.Request.Context(), bd, r.opts.RedirectExpiry)
	if !ok {
		return false
	}
	c.Writer.Header().Del("Content-Length")
	c.Redirect(http.StatusTemporaryRedirect, u.String())
	return true
}

// parseRange reads a single "bytes=a-b" range. No header: the whole blob.
func parseRange(hdr string, size int64) (start, length int64, partial, ok bool) {
	if hdr == "" {
		return 0, size, false, true
	}
	spec, found := strings.CutPrefix(hdr, "bytes=")
	if !found {
		return 0, size, false, true // RFC 9110 §14.2: ignore unknown units
	}
	if strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false, false
	}
	if a == "" { // suffix range: last b bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 || size == 0 {
			return 0, 0, false, false
		}
		n = min(n, size)
		return size - n, n, true, true
	}
	s, err := strconv.ParseInt(a, 10, 64)
	if err != nil || s < 0 || s >= size {
		return 0, 0, false, false
	}
	e := size - 1
	if b != "" {
		e, err = strconv.ParseInt(b, 10, 64)
		if err != nil || e < s {
			return 0, 0, false, false
		}
		e = min(e, size-1)
	}
	return s, e - s + 1, true, true
}

// deleteBlob unlinks a blob from a repository; its bytes stay until garbage
// collection finds no repository using them.
func (r *Registry) deleteBlob(c *gin.Context, name, ref string) {
	ctx := c.Request.Context()
	d, err := parseDigest(ref)
	if err != nil {
		r.fail(c, err)
		return
	}
	if err := r.meta.unlinkBlob(ctx, name, d); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			err = blobUnknown(ref)
		}
		r.fail(c, err)
		return
	}
	c.Status(http.StatusAccepted)
}

// blobLocation is where a committed blob can be read.
func (r *Registry) blobLocation(name string, d digest.Digest) string {
	return r.opts.PublicURL + "/v2/" + name + "/blobs/" + d.String()
}
