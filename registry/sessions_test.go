package registry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

// An upload begun on one replica is continued and finished on another that
// shares the store (or on the same one after a restart).
func TestUploadAcrossInstances(t *testing.T) {
	a := newEnv(t)
	b := newEnvOn(t, a.dir)
	loc := a.startUpload("repo")
	wantStatus(t, a.do("PATCH", loc, []byte("from A|"), "Content-Range", "0-6"), http.StatusAccepted)
	r := b.do("GET", loc, nil)
	wantStatus(t, r, http.StatusNoContent)
	wantHeader(t, r, "Range", "0-6")
	wantStatus(t, b.do("PATCH", loc, []byte("from B|"), "Content-Range", "7-13"), http.StatusAccepted)
	wantStatus(t, a.do("PATCH", loc, []byte("A again"), "Content-Range", "14-20"), http.StatusAccepted)
	d := digest.FromString("from A|from B|A again")
	wantStatus(t, b.do("PUT", withQuery(loc, "digest="+d.String()), nil), http.StatusCreated)
	for _, e := range []*env{a, b} {
		r := e.do("GET", "/v2/repo/blobs/"+d.String(), nil)
		if r.StatusCode != http.StatusOK || string(r.body) != "from A|from B|A again" {
			t.Errorf("GET: %s", r)
		}
	}
}

// Two PATCHes racing for the same position of a session: the one that
// loses the compare-and-set must not damage what the winner stored.
func TestRacingPatchesKeepSessionUsable(t *testing.T) {
	e := newEnv(t)
	loc := e.startUpload("repo")
	wantStatus(t, e.do("PATCH", loc, []byte("head"), "Content-Range", "0-3"), http.StatusAccepted)

	// A loads the session and starts storing its chunk, then stalls.
	body := &stallingReader{first: "AAAA", rest: "AAAA", started: make(chan struct{}), resume: make(chan struct{})}
	reqA := httptest.NewRequest("PATCH", loc, body)
	reqA.ContentLength = 8
	reqA.Header.Set("Content-Range", "4-11")
	recA := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { defer close(done); e.srv.Config.Handler.ServeHTTP(recA, reqA) }()
	<-body.started

	// B sends the same position meanwhile.
	rB := e.do("PATCH", loc, []byte("BBBBBBBB"), "Content-Range", "4-11")
	close(body.resume)
	<-done

	// Exactly one of them may win; the other must be told it lost.
	winner := ""
	switch {
	case rB.StatusCode == http.StatusAccepted && recA.Code >= 400 && recA.Code <= 499:
		winner = "BBBBBBBB"
	case recA.Code == http.StatusAccepted && rB.StatusCode >= 400 && rB.StatusCode <= 499:
		winner = "AAAAAAAA"
	default:
		t.Fatalf("want one 202 and one 4xx, got A %d %q, B %s", recA.Code, recA.Body, rB)
	}

	// The session holds the winner's chunk and finishes with it.
	d := digest.FromString("head" + winner)
	r := e.do("PUT", withQuery(loc, "digest="+d.String()), nil)
	wantStatus(t, r, http.StatusCreated)
	r = e.do("GET", "/v2/repo/blobs/"+d.String(), nil)
	if r.StatusCode != http.StatusOK || string(r.body) != "head"+winner {
		t.Errorf("GET: %s", r)
	}
}

// stallingReader returns first, signals started, and returns rest only
// once resume is closed.
type stallingReader struct {
	first, rest     string
	started, resume chan struct{}
	once            sync.Once
	stage           int
}

func (s *stallingReader) Read(p []byte) (int, error) {
	switch s.stage {
	case 0:
		s.stage++
		s.once.Do(func() { close(s.started) })
		return copy(p, s.first), nil
	case 1:
		<-s.resume
		s.stage++
		return copy(p, s.rest), nil
	}
	return 0, io.EOF
}

// A first chunk cut short must not leave its partial write behind (on the
// filesystem a temp file, on S3 a multipart upload: storagetest's
// LargeCancelledWrite): the session never recorded it, so nothing would
// ever complete or drop it.
func TestTruncatedFirstPatchLeavesNoPartialWrite(t *testing.T) {
	e := newEnv(t)
	tmp := filepath.Join(e.dir, ".slipway#", "tmp")
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("filesystem store layout changed, update this test: %v", err)
	}
	loc := e.startUpload("repo")
	chunk := strings.Repeat("z", 300)
	wantError(t, e.raw("PATCH", loc, len(chunk), []byte(chunk[:100])), http.StatusBadRequest, "BLOB_UPLOAD_INVALID")
	wantStatus(t, e.do("PATCH", loc, []byte(chunk)), http.StatusAccepted)
	wantStatus(t, e.do("PUT", withQuery(loc, "digest="+digest.FromString(chunk).String()), nil), http.StatusCreated)
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("%d partial write(s) left behind after the upload finished", len(ents))
	}
	page, err := e.store.List(context.Background(), storage.ListOptions{Prefix: "data/"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Objects) != 1 {
		t.Errorf("%d data objects after one finished upload and one truncated chunk, want 1: %v", len(page.Objects), page.Objects)
	}
}
