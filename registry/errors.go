package registry

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gin-gonic/gin"

	"github.com/slipway/slipway/storage"
)

// apiError is an OCI error with the HTTP status to answer it with. The
// status usually is the code's own, but the spec sometimes wants another
// (416 for an out-of-order chunk, 413 for an oversized manifest).
type apiError struct {
	status int
	err    errcode.Error
}

func (e *apiError) Error() string { return e.err.Error() }

// oci builds an error with the code's registered status.
func oci(code errcode.ErrorCode, message string, detail any) *apiError {
	e := code.WithMessage(message)
	if detail != nil {
		e = e.WithDetail(detail)
	}
	return &apiError{status: code.Descriptor().HTTPStatusCode, err: e}
}

// withStatus overrides the status of an error.
func (e *apiError) withStatus(status int) *apiError {
	e.status = status
	return e
}

// fail answers an error in the OCI envelope. Storage errors that reach here
// become UNAVAILABLE (503) or UNKNOWN (500); their text is logged, not sent.
func (r *Registry) fail(c *gin.Context, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		if errors.Is(err, storage.ErrUnavailable) {
			ae = oci(errcode.ErrorCodeUnavailable, "storage is unavailable, try again later", nil)
		} else {
			ae = oci(errcode.ErrorCodeUnknown, "internal error", nil)
		}
		r.opts.Logger.ErrorContext(c.Request.Context(), "request failed",
			"method", c.Request.Method, "path", c.Request.URL.Path, "error", err.Error())
	}
	h := c.Writer.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length") // a handler may have announced an empty body
	c.Status(ae.status)
	if c.Request.Method == http.MethodHead {
		return
	}
	body, _ := json.Marshal(errcode.Errors{ae.err})
	_, _ = c.Writer.Write(body)
}

// withMessage replaces the human message of an error.
func (e *apiError) withMessage(msg string) *apiError {
	e.err.Message = msg
	return e
}
