package auth

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gin-gonic/gin"
)

// ociBody is the OCI error envelope, plus the OAuth2 error fields for
// token requests made with the OAuth2 form.
type ociBody struct {
	Errors      []errcode.Error `json:"errors"`
	OAuthError  string          `json:"error,omitempty"`
	Description string          `json:"error_description,omitempty"`
}

// ociFail answers an error in the OCI envelope ({"errors":[{"code",...}]}).
func ociFail(c *gin.Context, status int, code errcode.ErrorCode, msg string, detail any) {
	writeOCI(c, status, ociBody{Errors: []errcode.Error{{Code: code, Message: msg, Detail: detail}}})
}

func writeOCI(c *gin.Context, status int, body ociBody) {
	h := c.Writer.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	c.Status(status)
	c.Abort()
	if c.Request.Method == http.MethodHead {
		return
	}
	b, _ := json.Marshal(body)
	_, _ = c.Writer.Write(b)
}

// retryAfter sets Retry-After in whole seconds, rounded up.
func retryAfter(c *gin.Context, wait time.Duration) {
	c.Header("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
}

// APIError is the error body of /api/ endpoints.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Codes of APIError, one per status.
const (
	CodeBadRequest      = "bad_request"
	CodeUnauthorized    = "unauthorized"
	CodeForbidden       = "forbidden"
	CodeNotFound        = "not_found"
	CodeConflict        = "conflict"
	CodeTooManyRequests = "too_many_requests"
	CodeUnavailable     = "unavailable"
	CodeInternal        = "internal"
)

var apiCodes = map[int]string{
	http.StatusBadRequest:          CodeBadRequest,
	http.StatusUnauthorized:        CodeUnauthorized,
	http.StatusForbidden:           CodeForbidden,
	http.StatusNotFound:            CodeNotFound,
	http.StatusConflict:            CodeConflict,
	http.StatusTooManyRequests:     CodeTooManyRequests,
	http.StatusServiceUnavailable:  CodeUnavailable,
	http.StatusInternalServerError: CodeInternal,
}

// apiFail answers an /api/ error as {"code","message"}.
func apiFail(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, APIError{Code: apiCodes[status], Message: msg})
}
