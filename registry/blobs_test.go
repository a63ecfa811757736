package registry

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestBlobHeadAndGet(t *testing.T) {
	e := newEnv(t)
	data := []byte("0123456789abcdefghij")
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			e := e.in(t)
			d := alg.FromBytes(data)
			wantStatus(t, e.do("POST", "/v2/repo/blobs/uploads/?digest="+d.String(), data), http.StatusCreated)
			for _, m := range []string{"HEAD", "GET"} {
				r := e.do(m, "/v2/repo/blobs/"+d.String(), nil)
				wantStatus(t, r, http.StatusOK)
				wantHeader(t, r, "Docker-Content-Digest", d.String())
				wantHeader(t, r, "Content-Length", strconv.Itoa(len(data)))
				if m == "GET" && string(r.body) != string(data) {
					t.Errorf("GET body %q", r.body)
				}
				if m == "HEAD" && len(r.body) != 0 {
					t.Errorf("HEAD body %q", r.body)
				}
			}
		})
	}
	missing := digest.FromString("missing")
	wantError(t, e.do("GET", "/v2/repo/blobs/"+missing.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
	wantError(t, e.do("HEAD", "/v2/repo/blobs/"+missing.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
	// A blob of one repository is not in another.
	wantError(t, e.do("GET", "/v2/elsewhere/blobs/"+digest.FromBytes(data).String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
}

func TestBlobRange(t *testing.T) {
	e := newEnv(t)
	data := []byte("0123456789abcdefghij")
	d := e.pushBlob("repo", data)
	path := "/v2/repo/blobs/" + d.String()
	for _, tc := range []struct{ rng, body, contentRange string }{
		{"bytes=0-9", "0123456789", "bytes 0-9/20"},
		{"bytes=10-", "abcdefghij", "bytes 10-19/20"},
		{"bytes=15-100", "fghij", "bytes 15-19/20"},
		{"bytes=-3", "hij", "bytes 17-19/20"},
		{"bytes=5-5", "5", "bytes 5-5/20"},
	} {
		r := e.do("GET", path, nil, "Range", tc.rng)
		wantStatus(t, r, http.StatusPartialContent)
		wantHeader(t, r, "Content-Range", tc.contentRange)
		wantHeader(t, r, "Content-Length", strconv.Itoa(len(tc.body)))
		if string(r.body) != tc.body {
			t.Errorf("Range %s: body %q, want %q", tc.rng, r.body, tc.body)
		}
	}
	for _, rng := range []string{"bytes=20-", "bytes=30-40", "bytes=9-3"} {
		r := e.do("GET", path, nil, "Range", rng)
		wantError(t, r, http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID")
		wantHeader(t, r, "Content-Range", "bytes */20")
	}
}

// RFC 9110 §14.2: a server MUST ignore a Range header with a range unit it
// does not understand, and answer the whole representation.
func TestBlobRangeUnknownUnitIgnored(t *testing.T) {
	e := newEnv(t)
	d := e.pushBlob("repo", []byte("whole"))
	r := e.do("GET", "/v2/repo/blobs/"+d.String(), nil, "Range", "items=0-1")
	wantStatus(t, r, http.StatusOK)
	if string(r.body) != "whole" {
		t.Errorf("body %q", r.body)
	}
}

func TestDeleteBlob(t *testing.T) {
	e := newEnv(t)
	d := e.pushBlob("repo", []byte("to delete"))
	e.pushBlob("keep", []byte("to delete"))
	wantStatus(t, e.do("DELETE", "/v2/repo/blobs/"+d.String(), nil), http.StatusAccepted)
	wantError(t, e.do("HEAD", "/v2/repo/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
	wantError(t, e.do("GET", "/v2/repo/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
	wantError(t, e.do("DELETE", "/v2/repo/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
	// Only the link of that repository went.
	wantStatus(t, e.do("GET", "/v2/keep/blobs/"+d.String(), nil), http.StatusOK)
	// Pushing it again brings it back.
	e.pushBlob("repo", []byte("to delete"))
	wantStatus(t, e.do("GET", "/v2/repo/blobs/"+d.String(), nil), http.StatusOK)
}
