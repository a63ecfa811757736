package registry

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// putRecord stores an upload session record as JSON text, the format every
// replica (of any version) reads and writes, with one segment holding
// chunk. closed is "", a digest or "cancelled".
func putRecord(t *testing.T, e *env, loc string, chunk []byte, closed string) {
	t.Helper()
	ctx := context.Background()
	id := uploadID(loc)
	key := dataKey(newObjectID())
	if _, err := e.store.Put(ctx, key, strings.NewReader(string(chunk)), int64(len(chunk))); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	h.Write(chunk)
	hs, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	closedField := ""
	if closed != "" {
		closedField = fmt.Sprintf(`,"closed":%q`, closed)
	}
	rec := fmt.Sprintf(`{"id":%q,"repo":"repo","segments":[{"key":%q,"size":%d}],"offset":%d,"algorithm":"sha256","hash_state":%q,"started":%q%s}`,
		id, key, len(chunk), len(chunk), base64.StdEncoding.EncodeToString(hs), time.Now().UTC().Format(time.RFC3339), closedField)
	if _, err := e.store.Put(ctx, uploadKey(id), strings.NewReader(rec), int64(len(rec))); err != nil {
		t.Fatal(err)
	}
}

// Session records keep their JSON field names and values, so a session
// stored by another replica (or an earlier version) is continued: open, it
// takes chunks and commits; "closed":"<digest>" commits again only as that
// digest; "closed":"cancelled" is unknown.
func TestSessionRecordFormat(t *testing.T) {
	e := newEnv(t)
	b := newEnvOn(t, e.dir)
	// Ids come from a third replica: e and b know the sessions only from
	// the store.
	issuer := newEnvOn(t, e.dir)

	open := issuer.startUpload("repo")
	putRecord(t, e, open, []byte("stored "), "")
	r := b.do("GET", open, nil)
	wantStatus(t, r, http.StatusNoContent)
	wantHeader(t, r, "Range", "0-6")
	wantStatus(t, b.do("PATCH", open, []byte("record"), "Content-Range", "7-12"), http.StatusAccepted)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(readKey(t, e.store, uploadKey(uploadID(open))), &fields); err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range fields {
		names = append(names, k)
	}
	slices.Sort(names)
	if got := strings.Join(names, " "); got != "algorithm hash_state id offset repo segments started" {
		t.Errorf("stored session fields: %s", got)
	}
	d := digest.FromString("stored record")
	wantStatus(t, e.do("PUT", withQuery(open, "digest="+d.String()), nil), http.StatusCreated)
	if r := b.do("GET", "/v2/repo/blobs/"+d.String(), nil); r.StatusCode != http.StatusOK || string(r.body) != "stored record" {
		t.Errorf("GET: %s", r)
	}

	closed := issuer.startUpload("repo")
	d = digest.FromString("closed bytes")
	putRecord(t, e, closed, []byte("closed bytes"), d.String())
	for _, x := range []*env{e, b} {
		wantError(t, x.do("PATCH", closed, []byte("more")), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		wantError(t, x.do("PUT", withQuery(closed, "digest="+digest.FromString("other").String()), nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	}
	wantStatus(t, b.do("PUT", withQuery(closed, "digest="+d.String()), nil), http.StatusCreated)
	if r := e.do("GET", "/v2/repo/blobs/"+d.String(), nil); r.StatusCode != http.StatusOK || string(r.body) != "closed bytes" {
		t.Errorf("GET: %s", r)
	}

	cancelled := issuer.startUpload("repo")
	putRecord(t, e, cancelled, []byte("cancelled"), closedCancelled)
	for _, x := range []*env{e, b} {
		wantError(t, x.do("GET", cancelled, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		wantError(t, x.do("PATCH", cancelled, []byte("more")), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		wantError(t, x.do("PUT", withQuery(cancelled, "digest="+digest.FromString("cancelled").String()), nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		wantError(t, x.do("DELETE", cancelled, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	}
}
