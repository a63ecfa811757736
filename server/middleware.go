package server

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/internal/origin"
	"github.com/slipway/slipway/registry"
)

// RequestIDHeader carries the request id in and out.
const RequestIDHeader = "X-Request-Id"

type requestIDKey struct{}

// RequestID returns the id of the request whose context ctx is ("" if none).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// saneRequestID accepts an incoming id only if it is short and plain, so a
// client cannot inject odd bytes or megabytes into every log line.
func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			return false
		}
	}
	return true
}

// quietRoutes are probed every few seconds; their access lines go to debug.
var quietRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// observe is the outermost middleware: it assigns the request id, parses
// the /v2/ route, counts bytes, and after the request (even one aborted by
// a panic) writes the access log line and the metrics. The line holds the
// path without its query string and no headers: both may carry credentials.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	id := c.GetHeader(RequestIDHeader)
	if !saneRequestID(id) {
		id = rand.Text()
	}
	c.Header(RequestIDHeader, id)
	// The request's /v2/ route is parsed here, once, for everything after:
	// the body guard, authorization, the registry and this access line
	// read it (registry.RouteOf).
	// So is its origin (client address, scheme, host; forwarding headers
	// only from http.trusted_proxies): every reader calls
	// origin.FromRequest.
	from := s.origins.Resolve(c.Request)
	ctx := origin.NewContext(context.WithValue(c.Request.Context(), requestIDKey{}, id), from)
	c.Request = c.Request.WithContext(registry.WithRoute(ctx, c.Request.URL.Path))
	body := &countingBody{ReadCloser: c.Request.Body}
	if c.Request.Body != nil {
		c.Request.Body = body
	}
	client := !quietRoutes[c.Request.URL.Path]
	if client {
		s.activity.begin()
	}

	defer func() {
		d := time.Since(start)
		if client {
			s.activity.end(start.Add(d))
		}
		route := routeLabel(c)
		status := c.Writer.Status()
		out := int64(max(c.Writer.Size(), 0))
		in := body.n.Load()
		s.metrics.observe(route, c.Request.Method, status, d, in, out)

		level := slog.LevelInfo
		switch {
		case quietRoutes[route]:
			level = slog.LevelDebug // probes: a failing one shows in the prober
		case status >= 500:
			level = slog.LevelError
		}
		// The connection's host:port, or the client's address that a
		// trusted proxy forwarded (its port unknown; the proxy is logged
		// as the peer).
		remote := from.Peer
		if from.Forwarded {
			remote = from.ClientIP
		}
		attrs := []slog.Attr{
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Int64("bytes_in", in),
			slog.Int64("bytes_out", out),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000),
			slog.String("remote", remote),
			slog.String("user_agent", c.Request.UserAgent()),
		}
		if from.Forwarded {
			attrs = append(attrs, slog.String("peer", from.Peer))
		}
		// Who made the request (a login name, never a credential), once
		// the auth middleware or the token endpoint has established it.
		if p, ok := auth.PrincipalFrom(c.Request.Context()); ok && p.Name != "" {
			attrs = append(attrs, slog.String("account", p.Name))
		}
		s.log.LogAttrs(c.Request.Context(), level, "request", attrs...)
	}()
	c.Next()
}

// recover turns a handler panic into a logged error and a bare 500: the
// stack goes to the log, never to the client.
func (s *Server) recover(c *gin.Context) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
			panic(v) // net/http's own "drop this connection" signal
		}
		s.log.ErrorContext(c.Request.Context(), "panic serving request",
			"method", c.Request.Method, "path", c.Request.URL.Path,
			"panic", v, "stack", string(debug.Stack()))
		if c.Writer.Written() {
			// Part of a response is out: a 500 can no longer be sent, and
			// finishing normally would hand the client a truncated body
			// that looks complete. Drop the connection instead.
			c.Abort()
			panic(http.ErrAbortHandler)
		}
		if strings.HasPrefix(c.Request.URL.Path, "/v2") {
			// The OCI error envelope, so registry clients show a message.
			c.AbortWithStatusJSON(http.StatusInternalServerError,
				gin.H{"errors": []gin.H{{"code": "UNKNOWN", "message": "internal server error"}}})
			return
		}
		c.AbortWithStatusJSON(http.StatusInternalServerError,
			gin.H{"status": "error", "reason": "internal server error"})
	}()
	c.Next()
}

// countingBody counts request body bytes as the handler reads them. The
// count is atomic because a handler may hand the body to another goroutine.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// requestIDHandler adds the request id to every record logged with a
// request's context, so handlers' own log lines join their access line.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// NewLogger is the JSON logger Slipway writes to w at level.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
