package server

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slipway/slipway/registry"
)

// uploadStallBytes is how much of a blob upload body must arrive for every
// http.upload_stall_timeout the server spends waiting for it. A byte per
// read would not do: a client trickling one byte every few seconds would
// keep the connection forever.
const uploadStallBytes = 4 << 10

// guardBody bounds the time a request body may hold its connection. The
// server has no ReadTimeout, because blob uploads may take minutes; so
//
//   - every other request with a body gets a read deadline of
//     http.body_timeout from now (tokens, /api/v1, admin forms, manifests);
//   - blob upload bodies (POST, PATCH, PUT on /v2/<name>/blobs/uploads/…)
//     have no overall bound, but are cut off once the server has waited
//     http.upload_stall_timeout in all without uploadStallBytes arriving;
//   - an error answered before the body has been read to its end (a
//     refused token, a body over its limit) closes the connection at once,
//     instead of net/http reading the rest of the body first: a client
//     trickling its body gets its 401 now, not when the body is done.
//
// Requests without a body get no deadline: the background read net/http
// does to notice a client going away must not time out during a long
// download (it would cancel the request's context).
func (s *Server) guardBody(c *gin.Context) {
	if c.Request.ContentLength == 0 {
		c.Next()
		return
	}
	upload := blobUpload(c) // before r: it may give c a request carrying the route
	r := c.Request
	b := &guardedBody{ReadCloser: r.Body, rc: http.NewResponseController(c.Writer)}
	if upload {
		b.stall = s.cfg.HTTP.UploadStallTimeout
		b.setDeadline(time.Now().Add(b.stall))
	} else {
		b.setDeadline(time.Now().Add(s.cfg.HTTP.BodyTimeout))
	}
	r.Body = b
	w := &guardedWriter{ResponseWriter: c.Writer, body: b}
	c.Writer = w
	c.Next()
	// gin writes the header of a response without a body after the
	// handlers, past this writer.
	w.answering()
}

// blobUpload reports whether c's request may carry a blob's bytes.
func blobUpload(c *gin.Context) bool {
	switch c.Request.Method {
	case http.MethodPost, http.MethodPatch, http.MethodPut:
	default:
		return false
	}
	rt, ok := registry.RouteOf(c)
	return ok && rt.Kind == registry.KindUpload
}

// deadliner sets a connection's read deadline (http.ResponseController).
type deadliner interface {
	SetReadDeadline(time.Time) error
}

// guardedBody is a request body under guardBody's deadlines.
type guardedBody struct {
	io.ReadCloser
	rc  deadliner
	eof atomic.Bool // read to its end; the writer may look from another goroutine

	// For blob uploads (stall > 0): the time spent waiting in Read, and
	// the bytes received, since uploadStallBytes last arrived. Only the
	// reading goroutine touches them.
	stall  time.Duration
	waited time.Duration
	got    int
}

func (b *guardedBody) Read(p []byte) (int, error) {
	if b.stall == 0 {
		n, err := b.ReadCloser.Read(p)
		b.done(err)
		return n, err
	}
	// Only time spent waiting for the client counts: the handler may
	// take long to store what it read, and that is not the client's doing.
	start := time.Now()
	b.setDeadline(start.Add(b.stall - b.waited))
	n, err := b.ReadCloser.Read(p)
	b.waited += time.Since(start)
	if b.got += n; b.got >= uploadStallBytes {
		b.got, b.waited = 0, 0
	}
	b.done(err)
	return n, err
}

// done lifts the deadline once the body is read: net/http then starts its
// background read, which must not time out while the handler works on.
func (b *guardedBody) done(err error) {
	if err == io.EOF {
		b.eof.Store(true)
		b.setDeadline(time.Time{})
	}
}

// setDeadline sets the connection's read deadline; a ResponseWriter that
// has none (httptest's recorder) is fine without.
func (b *guardedBody) setDeadline(t time.Time) {
	_ = b.rc.SetReadDeadline(t)
}

// guardedWriter closes the connection when an error goes out before the
// request body has been read to its end (see guardBody).
type guardedWriter struct {
	gin.ResponseWriter
	body    *guardedBody
	decided bool
}

// answering runs before the response header goes out. Connection: close
// makes net/http skip reading the rest of the body before it answers, and
// the past read deadline makes its read after the handler fail at once,
// so the connection closes as soon as the answer is out.
func (w *guardedWriter) answering() {
	if w.decided || w.ResponseWriter.Written() {
		return
	}
	w.decided = true
	if w.ResponseWriter.Status() < http.StatusBadRequest || w.body.eof.Load() {
		return
	}
	w.Header().Set("Connection", "close")
	w.body.setDeadline(time.Now())
}

func (w *guardedWriter) WriteHeaderNow() {
	w.answering()
	w.ResponseWriter.WriteHeaderNow()
}

func (w *guardedWriter) Write(p []byte) (int, error) {
	w.answering()
	return w.ResponseWriter.Write(p)
}

func (w *guardedWriter) WriteString(s string) (int, error) {
	w.answering()
	return w.ResponseWriter.WriteString(s)
}

func (w *guardedWriter) Flush() {
	w.answering()
	w.ResponseWriter.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *guardedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
