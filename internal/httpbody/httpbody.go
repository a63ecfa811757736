// Package httpbody reads request bodies alike on every endpoint that takes
// one: a body over the endpoint's limit is 413, one that does not arrive
// before the server's body deadline is 408, and JSON must be exactly one
// value without duplicate names or trailing data, so that what Slipway acts
// on is what any other parser of the same bytes would see.
package httpbody

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/go-json-experiment/json"
)

// Error is a body refused, with the status and the /api/ code to answer.
// DecodeJSON and ParseForm return it as *Error, not as error, so that
// callers build their own envelope from it without a type assertion; test
// it against nil before storing it in an error variable.
type Error struct {
	Status  int    // 400, 408 or 413
	Code    string // one of the Code* constants
	Message string
}

func (e *Error) Error() string { return e.Message }

// Codes of Error, snake case like the rest of /api/.
const (
	CodeBadRequest = "bad_request"
	CodeTooLarge   = "request_too_large"
	CodeTimeout    = "request_timeout"
)

// DecodeJSON reads r's body, at most limit bytes, into v: one JSON value
// and nothing after it but whitespace. Duplicate names in an object and
// names v has no field for are refused. w lets an oversized body close the
// connection instead of being read on (http.MaxBytesReader).
//
// Names match fields case-sensitively (encoding/json/v2's rule): with
// unknown names refused, "Name" for "name" is an error, not a silent
// second spelling of the same field.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) *Error {
	body := &counter{r: http.MaxBytesReader(w, r.Body, limit)}
	err := json.UnmarshalRead(body, v, json.RejectUnknownMembers(true))
	if err == nil {
		return nil
	}
	if e := readError(err, limit); e != nil {
		return e
	}
	if body.n == 0 {
		return &Error{http.StatusBadRequest, CodeBadRequest, "request body is empty: a JSON object is expected"}
	}
	return &Error{http.StatusBadRequest, CodeBadRequest, "request body is not valid JSON for this request: " + err.Error()}
}

// ParseForm parses r's form (r.ParseForm), reading at most limit bytes of
// body.
func ParseForm(w http.ResponseWriter, r *http.Request, limit int64) *Error {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	err := r.ParseForm()
	if err == nil {
		return nil
	}
	if e := readError(err, limit); e != nil {
		return e
	}
	return &Error{http.StatusBadRequest, CodeBadRequest, "form could not be read: " + err.Error()}
}

// readError is the answer to a body that could not be read (nil when err
// is about its content instead).
func readError(err error, limit int64) *Error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &Error{http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("request body is larger than %s", size(limit))}
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The server's body deadline (http.body_timeout) passed.
		return &Error{http.StatusRequestTimeout, CodeTimeout, "request body did not arrive in time"}
	}
	return nil
}

// size writes a limit the way people write it ("64 KiB").
func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// counter counts the bytes read, to tell an empty body from a broken one.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
