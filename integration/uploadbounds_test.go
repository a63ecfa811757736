package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/integration/internal/harness"
)

// Issue 10, finding 8, black-box through the real binary.

// absLocation is an upload Location made absolute on reg.
func absLocation(reg *harness.Registry, r response) string {
	loc := r.Header.Get("Location")
	if strings.HasPrefix(loc, "/") {
		return reg.URL() + loc
	}
	return loc
}

// TestUploadSessionBounds: past uploads.max_open_per_account sessions
// holding data, an account's next first chunk gets 429 TOOMANYREQUESTS
// until one ends; past its session burst, its next POST does until the
// bucket refills. Another account is not affected.
func TestUploadSessionBounds(t *testing.T) {
	reg := fsBackend.startOpts(t, harness.Options{ExtraConfig: `uploads:
  max_open_per_account: 2
  session_rate_per_account: 1
  session_burst_per_account: 4
`})
	ci, admin := harness.NewClient(reg.User()), harness.NewClient(reg.Admin())
	uploads := reg.URL() + "/v2/it/bounds/blobs/uploads/"
	open := func(c *http.Client, data string, want int) (string, response) {
		loc := absLocation(reg, do(t, c, http.MethodPost, uploads, nil, nil, http.StatusAccepted))
		return loc, do(t, c, http.MethodPatch, loc, []byte(data), nil, want)
	}
	first, _ := open(ci, "one", http.StatusAccepted)
	open(ci, "two", http.StatusAccepted)
	third, r := open(ci, "three", http.StatusTooManyRequests)
	if code, _ := firstOCIError(t, r); code != "TOOMANYREQUESTS" || r.Header.Get("Retry-After") == "" {
		t.Errorf("over the cap: %s, Retry-After %q", code, r.Header.Get("Retry-After"))
	}
	open(admin, "another account", http.StatusAccepted)

	// Committing one frees a slot.
	do(t, ci, http.MethodPut, first+"?digest="+digest.FromString("one").String(), nil, nil, http.StatusCreated)
	do(t, ci, http.MethodPatch, third, []byte("three"), nil, http.StatusAccepted)

	// ci has used 3 of its burst of 4 POSTs.
	do(t, ci, http.MethodPost, uploads, nil, nil, http.StatusAccepted)
	r = do(t, ci, http.MethodPost, uploads, nil, nil, http.StatusTooManyRequests)
	if code, _ := firstOCIError(t, r); code != "TOOMANYREQUESTS" || r.Header.Get("Retry-After") == "" {
		t.Errorf("over the rate: %s, Retry-After %q", code, r.Header.Get("Retry-After"))
	}
	do(t, admin, http.MethodPost, uploads, nil, nil, http.StatusAccepted)
	time.Sleep(1100 * time.Millisecond) // one session a second
	do(t, ci, http.MethodPost, uploads, nil, nil, http.StatusAccepted)
}
