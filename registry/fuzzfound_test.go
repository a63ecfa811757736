package registry

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage/storagetest"
)

// What the fuzz targets found, end to end over HTTP (the targets' own
// regression inputs are under testdata/fuzz/).

// A name longer than 255 characters in all was valid when its first
// component looked like a domain, and a 500 on the filesystem store.
func TestLongFirstComponentName(t *testing.T) {
	e := newEnv(t)
	before := storagetest.Keys(t, e.store, "")
	d := digest.FromString("x")
	for _, name := range []string{strings.Repeat("a", 300) + "/b", strings.Repeat("a", 200) + "/" + strings.Repeat("b", 56)} {
		wantError(t, e.do("POST", "/v2/"+name+"/blobs/uploads/?digest="+d.String(), []byte("x")), http.StatusBadRequest, "NAME_INVALID")
		wantError(t, e.do("GET", "/v2/"+name+"/tags/list", nil), http.StatusBadRequest, "NAME_INVALID")
	}
	wantNoNewKeys(t, e.store, before)
}

// Paths that parsed as a route they do not spell: a tag list without a
// repository, an upload id glued to "uploads".
func TestMalformedRoutes(t *testing.T) {
	e := newEnv(t)
	e.image("repo", "layer")
	wantError(t, e.do("GET", "/v2//tags/list", nil), http.StatusNotFound, "UNSUPPORTED")
	loc := e.startUpload("repo")
	glued := strings.Replace(loc, "/uploads/", "/uploads", 1)
	// ".../blobs/uploads<id>" is a blob reference, not the session.
	wantError(t, e.do("GET", glued, nil), http.StatusBadRequest, "DIGEST_INVALID")
	wantError(t, e.do("PATCH", glued, []byte("x")), http.StatusMethodNotAllowed, "UNSUPPORTED")
	wantHeader(t, e.do("GET", loc, nil), "Range", "0-0")
}

// A Content-Range ending at MaxInt64 made the chunk's size overflow to
// "unknown", so a chunked body of any length was taken for it.
func TestContentRangeSizeOverflow(t *testing.T) {
	e := newEnv(t)
	loc := e.startUpload("repo")
	r := e.doReader("PATCH", loc, bytes.NewReader([]byte("hello")), -1, "Content-Range", "0-9223372036854775807")
	wantError(t, r, http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID")
	wantHeader(t, e.do("GET", loc, nil), "Range", "0-0")
}
