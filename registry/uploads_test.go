package registry

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage/storagetest"
)

func TestMonolithicUpload(t *testing.T) {
	e := newEnv(t)
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			e := e.in(t)
			data := []byte("monolithic " + string(alg))
			d := alg.FromBytes(data)
			r := e.do("POST", "/v2/mono/blobs/uploads/?digest="+d.String(), data)
			wantStatus(t, r, http.StatusCreated)
			wantHeader(t, r, "Docker-Content-Digest", d.String())
			wantHeader(t, r, "Location", "/v2/mono/blobs/"+d.String())
			r = e.do("GET", r.Header.Get("Location"), nil)
			wantStatus(t, r, http.StatusOK)
			if !bytes.Equal(r.body, data) {
				t.Errorf("GET returned %q, want %q", r.body, data)
			}
		})
	}
}

func TestChunkedUpload(t *testing.T) {
	e := newEnv(t)
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			e := e.in(t)
			chunks := []string{"first chunk|", "second|", "third and last"}
			all := []byte(strings.Join(chunks, ""))
			loc := e.startUpload("chunked")
			off := 0
			for _, c := range chunks {
				r := e.do("PATCH", loc, []byte(c), "Content-Type", "application/octet-stream",
					"Content-Range", fmt.Sprintf("%d-%d", off, off+len(c)-1))
				wantStatus(t, r, http.StatusAccepted)
				off += len(c)
				wantHeader(t, r, "Range", fmt.Sprintf("0-%d", off-1))
				loc = r.Header.Get("Location")
			}
			d := alg.FromBytes(all)
			r := e.do("PUT", withQuery(loc, "digest="+d.String()), nil)
			wantStatus(t, r, http.StatusCreated)
			wantHeader(t, r, "Docker-Content-Digest", d.String())
			r = e.do("GET", "/v2/chunked/blobs/"+d.String(), nil)
			wantStatus(t, r, http.StatusOK)
			if !bytes.Equal(r.body, all) {
				t.Errorf("GET returned %q, want %q", r.body, all)
			}
			e.reg.Wait() // the session is deleted after the response
			wantNoKeysUnder(t, e.store, "uploads/")
		})
	}
}

// A session opened for sha512 (?digest-algorithm=) and a last chunk sent
// with the PUT.
func TestChunkedUploadSHA512SessionWithFinalChunk(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", "/v2/r/blobs/uploads/?digest-algorithm=sha512", nil)
	wantStatus(t, r, http.StatusAccepted)
	loc := r.Header.Get("Location")
	wantStatus(t, e.do("PATCH", loc, []byte("abc")), http.StatusAccepted)
	d := digest.SHA512.FromString("abcdef")
	wantStatus(t, e.do("PUT", withQuery(loc, "digest="+d.String()), []byte("def")), http.StatusCreated)
	r = e.do("GET", "/v2/r/blobs/"+d.String(), nil)
	if r.StatusCode != http.StatusOK || string(r.body) != "abcdef" {
		t.Errorf("GET: %s", r)
	}
}

func TestMonolithicUploadWrongDigest(t *testing.T) {
	e := newEnv(t)
	before := storagetest.Keys(t, e.store, "")
	data := []byte("some bytes")
	for _, d := range []digest.Digest{digest.FromString("other"), digest.SHA512.FromString("other")} {
		r := e.do("POST", "/v2/repo/blobs/uploads/?digest="+d.String(), data)
		wantError(t, r, http.StatusBadRequest, "DIGEST_INVALID")
		wantError(t, e.do("GET", "/v2/repo/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
	}
	wantError(t, e.do("GET", "/v2/repo/blobs/"+digest.FromBytes(data).String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
	wantNoNewKeys(t, e.store, before)
}

func TestChunkedUploadWrongDigest(t *testing.T) {
	e := newEnv(t)
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			e := e.in(t)
			before := storagetest.Keys(t, e.store, "")
			loc := e.startUpload("repo")
			r := e.do("PATCH", loc, []byte("chunk"), "Content-Range", "0-4")
			wantStatus(t, r, http.StatusAccepted)
			wrong := alg.FromString("not the chunk")
			r = e.do("PUT", withQuery(r.Header.Get("Location"), "digest="+wrong.String()), nil)
			wantError(t, r, http.StatusBadRequest, "DIGEST_INVALID")
			wantError(t, e.do("GET", "/v2/repo/blobs/"+wrong.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
			wantError(t, e.do("GET", "/v2/repo/blobs/"+alg.FromString("chunk").String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
			// The chunk is the session's implicit first segment: a PUT
			// elsewhere might still commit it as its own digest, so it
			// stays, listed in the cancelled session, until purge.
			wantError(t, e.do("PATCH", loc, []byte("x")), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
			if _, _, err := e.reg.PurgeUploads(context.Background(), time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			wantNoNewKeys(t, e.store, before)
		})
	}
}

func TestUnusableDigests(t *testing.T) {
	e := newEnv(t)
	data := []byte("payload")
	m := md5.Sum(data)
	s := sha1.Sum(data)
	bad := []string{
		"md5:" + hex.EncodeToString(m[:]),
		"sha1:" + hex.EncodeToString(s[:]),
		"sha256:" + strings.Repeat("a", 63), // too short
		"sha256:" + strings.Repeat("a", 65), // too long
		"sha512:" + strings.Repeat("a", 64), // sha256 length
		"sha256:" + strings.Repeat("A", 64), // upper case
		"sha256" + strings.Repeat("a", 64),  // no colon
	}
	loc := e.startUpload("repo")
	wantStatus(t, e.do("PATCH", loc, data), http.StatusAccepted)
	before := storagetest.Keys(t, e.store, "")
	for _, d := range bad {
		t.Run(d[:8], func(t *testing.T) {
			e := e.in(t)
			wantError(t, e.do("POST", "/v2/repo/blobs/uploads/?digest="+d, data), http.StatusBadRequest, "DIGEST_INVALID")
			wantError(t, e.do("PUT", withQuery(loc, "digest="+d), nil), http.StatusBadRequest, "DIGEST_INVALID")
			if strings.Contains(d, ":") {
				wantError(t, e.do("GET", "/v2/repo/blobs/"+d, nil), http.StatusBadRequest, "DIGEST_INVALID")
			}
		})
	}
	wantNoNewKeys(t, e.store, before)
	// The session survives bad PUTs and still finishes.
	wantStatus(t, e.do("PUT", withQuery(loc, "digest="+digest.FromBytes(data).String()), nil), http.StatusCreated)
}

// A monolithic POST whose body ends before its Content-Length.
func TestMonolithicUploadTruncatedBody(t *testing.T) {
	e := newEnv(t)
	before := storagetest.Keys(t, e.store, "")
	data := []byte(strings.Repeat("x", 1000))
	d := digest.FromBytes(data)
	r := e.raw("POST", "/v2/repo/blobs/uploads/?digest="+d.String(), len(data), data[:400],
		"Content-Type", "application/octet-stream")
	wantError(t, r, http.StatusBadRequest, "BLOB_UPLOAD_INVALID")
	wantError(t, e.do("GET", "/v2/repo/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
	wantNoNewKeys(t, e.store, before)
	// The whole body then goes through.
	e.pushBlob("repo", data)
}

// A PATCH whose body ends before its Content-Length leaves the session as
// it was; the client resends the chunk and finishes.
func TestPatchTruncatedBodyThenResume(t *testing.T) {
	for _, first := range []bool{true, false} {
		t.Run(fmt.Sprintf("first-chunk=%v", first), func(t *testing.T) {
			e := newEnv(t)
			loc := e.startUpload("repo")
			var sent []byte
			if !first {
				wantStatus(t, e.do("PATCH", loc, []byte("head|"), "Content-Range", "0-4"), http.StatusAccepted)
				sent = []byte("head|")
			}
			before := storagetest.Keys(t, e.store, "")
			chunk := []byte(strings.Repeat("y", 500))
			rng := fmt.Sprintf("%d-%d", len(sent), len(sent)+len(chunk)-1)
			r := e.raw("PATCH", loc, len(chunk), chunk[:123], "Content-Range", rng)
			wantError(t, r, http.StatusBadRequest, "BLOB_UPLOAD_INVALID")
			wantNoNewKeys(t, e.store, before)
			r = e.do("GET", loc, nil)
			wantStatus(t, r, http.StatusNoContent)
			wantHeader(t, r, "Range", fmt.Sprintf("0-%d", max(len(sent)-1, 0)))

			wantStatus(t, e.do("PATCH", loc, chunk, "Content-Range", rng), http.StatusAccepted)
			all := append(sent, chunk...)
			d := digest.FromBytes(all)
			wantStatus(t, e.do("PUT", withQuery(loc, "digest="+d.String()), nil), http.StatusCreated)
			r = e.do("GET", "/v2/repo/blobs/"+d.String(), nil)
			if r.StatusCode != http.StatusOK || !bytes.Equal(r.body, all) {
				t.Errorf("GET after resume: %d, %d bytes", r.StatusCode, len(r.body))
			}
		})
	}
}

func TestOutOfOrderChunk(t *testing.T) {
	e := newEnv(t)
	loc := e.startUpload("repo")
	wantStatus(t, e.do("PATCH", loc, []byte("0123456789"), "Content-Range", "0-9"), http.StatusAccepted)
	before := storagetest.Keys(t, e.store, "")
	for _, rng := range []string{"5-14", "11-20", "0-9", "10-12" /* 3 bytes announced, 10 sent */, "junk"} {
		t.Run(rng, func(t *testing.T) {
			e := e.in(t)
			r := e.do("PATCH", loc, []byte("abcdefghij"), "Content-Range", rng)
			wantError(t, r, http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID")
			wantHeader(t, r, "Range", "0-9")
			if r.Header.Get("Location") == "" {
				t.Errorf("416 without Location")
			}
		})
	}
	// PUT with a Content-Range that does not continue the session, too.
	d := digest.FromString("0123456789abcdefghij")
	r := e.do("PUT", withQuery(loc, "digest="+d.String()), []byte("abcdefghij"), "Content-Range", "12-21")
	wantError(t, r, http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID")
	wantHeader(t, r, "Range", "0-9")
	wantNoNewKeys(t, e.store, before)
	r = e.do("GET", loc, nil)
	wantStatus(t, r, http.StatusNoContent)
	wantHeader(t, r, "Range", "0-9")
	// The session goes on from where it was.
	wantStatus(t, e.do("PATCH", loc, []byte("abcdefghij"), "Content-Range", "10-19"), http.StatusAccepted)
	wantStatus(t, e.do("PUT", withQuery(loc, "digest="+d.String()), nil), http.StatusCreated)
}

func TestUploadStatusAndCancel(t *testing.T) {
	e := newEnv(t)
	loc := e.startUpload("repo")
	r := e.do("GET", loc, nil)
	wantStatus(t, r, http.StatusNoContent)
	wantHeader(t, r, "Range", "0-0")
	wantHeader(t, r, "Location", loc)
	wantStatus(t, e.do("PATCH", loc, []byte("abc")), http.StatusAccepted)
	r = e.do("GET", loc, nil)
	wantStatus(t, r, http.StatusNoContent)
	wantHeader(t, r, "Range", "0-2")
	if r.Header.Get("Docker-Upload-UUID") == "" {
		t.Error("no Docker-Upload-UUID")
	}
	// Another repository cannot see the session.
	other := strings.Replace(loc, "/v2/repo/", "/v2/other/", 1)
	wantError(t, e.do("GET", other, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")

	wantStatus(t, e.do("DELETE", loc, nil), http.StatusNoContent)
	wantError(t, e.do("GET", loc, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	wantError(t, e.do("PATCH", loc, []byte("x")), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	wantError(t, e.do("PUT", withQuery(loc, "digest="+digest.FromString("abc").String()), nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	wantError(t, e.do("DELETE", loc, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	wantNoKeysUnder(t, e.store, "blobs/")
	// The chunk was the session's implicit first segment (segments.go):
	// it stays, listed in the cancelled session, until purge.
	wantKeysUnder(t, e.store, "data/", firstSegmentKey(uploadID(loc)))
	// The cancelled session stays stored (that is what answers 404 above:
	// a missing object for a young id is a new, empty session) until
	// purge removes it like any untouched session.
	for _, k := range storagetest.Keys(t, e.store, "") {
		if strings.HasPrefix(k, "uploads/") {
			if b := readKey(t, e.store, k); !strings.Contains(string(b), `"closed":"cancelled"`) {
				t.Errorf("%s after cancel: %s", k, b)
			}
		}
	}
	if _, _, err := e.reg.PurgeUploads(context.Background(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	wantNoKeysUnder(t, e.store, "uploads/", "data/")
	wantError(t, e.do("GET", "/v2/repo/blobs/uploads/not-an-id", nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
}

func TestEmptyBlobUpload(t *testing.T) {
	e := newEnv(t)
	loc := e.startUpload("repo")
	d := digest.FromBytes(nil)
	wantStatus(t, e.do("PUT", withQuery(loc, "digest="+d.String()), nil), http.StatusCreated)
	r := e.do("GET", "/v2/repo/blobs/"+d.String(), nil)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Content-Length", "0")
}

func TestCrossRepositoryMount(t *testing.T) {
	e := newEnv(t)
	d := e.pushBlob("src", []byte("shared layer"))
	r := e.do("POST", "/v2/dst/blobs/uploads/?mount="+d.String()+"&from=src", nil)
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "Location", "/v2/dst/blobs/"+d.String())
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	r = e.do("GET", "/v2/dst/blobs/"+d.String(), nil)
	if r.StatusCode != http.StatusOK || string(r.body) != "shared layer" {
		t.Errorf("GET mounted blob: %s", r)
	}

	// Source lacks the blob, or no source named: an ordinary session (202).
	before := storagetest.Keys(t, e.store, "")
	missing := digest.FromString("nowhere")
	for _, q := range []string{"mount=" + missing.String() + "&from=src", "mount=" + d.String() + "&from=empty", "mount=" + d.String()} {
		r = e.do("POST", "/v2/other/blobs/uploads/?"+q, nil)
		wantStatus(t, r, http.StatusAccepted)
		if !strings.HasPrefix(r.Header.Get("Location"), "/v2/other/blobs/uploads/") {
			t.Errorf("fallback Location %q", r.Header.Get("Location"))
		}
	}
	wantError(t, e.do("GET", "/v2/other/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
	for _, k := range storagetest.Keys(t, e.store, "") {
		if !strings.HasPrefix(k, "uploads/") && !slices.Contains(before, k) {
			t.Errorf("mount fallback left %s", k)
		}
	}
}
