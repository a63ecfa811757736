package registry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

// countingStore records the store calls the registry makes ("Put uploads/").
type countingStore struct {
	storage.Store
	mu    sync.Mutex
	calls []string
}

func (s *countingStore) note(op, key string) {
	prefix, _, _ := strings.Cut(key, "/")
	s.mu.Lock()
	s.calls = append(s.calls, op+" "+prefix+"/")
	s.mu.Unlock()
}

func (s *countingStore) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	sort.Strings(c)
	return c
}

func (s *countingStore) Get(ctx context.Context, key string, o storage.GetOptions) (io.ReadCloser, storage.Info, error) {
	s.note("Get", key)
	return s.Store.Get(ctx, key, o)
}
func (s *countingStore) Stat(ctx context.Context, key string) (storage.Info, error) {
	s.note("Stat", key)
	return s.Store.Stat(ctx, key)
}
func (s *countingStore) Put(ctx context.Context, key string, r io.Reader, n int64) (storage.Info, error) {
	s.note("Put", key)
	return s.Store.Put(ctx, key, r, n)
}
func (s *countingStore) PutIfAbsent(ctx context.Context, key string, r io.Reader, n int64) (storage.Info, error) {
	s.note("PutIfAbsent", key)
	return s.Store.PutIfAbsent(ctx, key, r, n)
}
func (s *countingStore) PutIfMatch(ctx context.Context, key string, r io.Reader, n int64, etag string) (storage.Info, error) {
	s.note("PutIfMatch", key)
	return s.Store.PutIfMatch(ctx, key, r, n, etag)
}
func (s *countingStore) Delete(ctx context.Context, key string) error {
	s.note("Delete", key)
	return s.Store.Delete(ctx, key)
}

// countingEnv is a registry on a counting filesystem store (no env
// helpers: it checks store calls, not responses in depth).
func countingEnv(t *testing.T) (*countingStore, *Registry, string) {
	return countingEnvOn(t, t.TempDir(), Options{})
}

// countingEnvOn is countingEnv on an existing store directory (another
// replica) with registry options (the logger is set here).
func countingEnvOn(t *testing.T, dir string, opts Options) (*countingStore, *Registry, string) {
	t.Helper()
	st, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: st}
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := New(cs, opts)
	e := gin.New()
	reg.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return cs, reg, srv.URL
}

func send(t *testing.T, method, url string, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body == "" {
		req.Body = nil
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func wantCalls(t *testing.T, step string, got []string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("%s: store calls\n  %s\nwant\n  %s", step, strings.Join(got, ", "), strings.Join(want, ", "))
	}
}

// The store requests of a docker-style push (POST, PATCH, PUT) and pull on
// one replica: BENCHMARKS.md counts them on S3, and issue #3 bounds
// push + pull at 12.
func TestUploadStoreRequests(t *testing.T) {
	cs, reg, base := countingEnv(t)
	data := "layer bytes"
	d := digest.FromString(data)

	r := send(t, "POST", base+"/v2/app/blobs/uploads/", "")
	if r.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %d", r.StatusCode)
	}
	loc := base + r.Header.Get("Location")
	wantCalls(t, "POST", cs.take())

	if r = send(t, "PATCH", loc, data); r.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH: %d", r.StatusCode)
	}
	// The chunk is the session's implicit first segment: no session object.
	wantCalls(t, "PATCH", cs.take(), "PutIfAbsent data/")

	if r = send(t, "PUT", loc+"?digest="+d.String(), ""); r.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d", r.StatusCode)
	}
	reg.Wait()
	// Nothing to close or delete: the descriptor, the link, the catalog.
	wantCalls(t, "PUT", cs.take(), "PutIfAbsent blobs/", "Put repositories/", "PutIfAbsent catalog/")

	// The pull answers from what the push remembered: only the data read.
	if r = send(t, "GET", base+"/v2/app/blobs/"+d.String(), ""); r.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d", r.StatusCode)
	}
	wantCalls(t, "GET", cs.take(), "Get data/")

	// POST then PUT with the whole body: no session object at all.
	r = send(t, "POST", base+"/v2/app/blobs/uploads/", "")
	loc = base + r.Header.Get("Location")
	d2 := digest.FromString("config")
	if r = send(t, "PUT", loc+"?digest="+d2.String(), "config"); r.StatusCode != http.StatusCreated {
		t.Fatalf("POST+PUT: %d", r.StatusCode)
	}
	reg.Wait()
	wantCalls(t, "POST+PUT", cs.take(), "Put data/", "PutIfAbsent blobs/", "Put repositories/")
}

// Upload ids are bound to their repository and signed: a made-up id, one
// of another repository, or one signed with another key is unknown.
func TestUploadIDsAreSigned(t *testing.T) {
	e := newEnv(t)
	loc := e.startUpload("repo")
	id := uploadID(loc)
	if len(id) != 64 {
		t.Fatalf("id %q", id)
	}
	other := newEnvWith(t, e.dir, Options{UploadKey: []byte("another key")})
	for _, c := range []struct {
		env  *env
		path string
	}{
		{e, "/v2/other/blobs/uploads/" + id},
		{e, "/v2/repo/blobs/uploads/" + strings.Repeat("0", 64)},
		{e, "/v2/repo/blobs/uploads/" + strings.Repeat("0", 32)},
		{other, loc},
	} {
		wantError(t, c.env.do("GET", c.path, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		wantError(t, c.env.do("PATCH", c.path, []byte("x")), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	}
	wantNoKeysUnder(t, e.store, "uploads/", "data/")
	// A replica with the same key continues it.
	b := newEnvOn(t, e.dir)
	r := b.do("GET", loc, nil)
	wantStatus(t, r, http.StatusNoContent)
	wantHeader(t, r, "Range", "0-0")
}

// Replicas behind a round-robin balancer: each request of one upload on
// another replica than the one before, with and without Content-Range, so
// every replica's memory of the session is stale when it is used.
func TestUploadRoundRobin(t *testing.T) {
	a := newEnv(t)
	b := newEnvOn(t, a.dir)
	c := newEnvOn(t, a.dir)
	for _, ranged := range []bool{false, true} {
		loc := a.startUpload("rr")
		chunks := []string{"one|", "two|", "three|", "four|"}
		envs := []*env{b, a, c, b}
		off := 0
		for i, ch := range chunks {
			var hdr []string
			if ranged {
				hdr = []string{"Content-Range", strings.Join([]string{itoa(off), itoa(off + len(ch) - 1)}, "-")}
			}
			r := envs[i].do("PATCH", loc, []byte(ch), hdr...)
			if !ranged && i == 1 {
				// a's memory predates the first chunk, which b stored as
				// the session's implicit first segment (segments.go): a
				// chunk without Content-Range cannot be rebased on it (its
				// body is spent), so 409, and the retry continues from the
				// store.
				wantError(t, r, http.StatusConflict, "BLOB_UPLOAD_INVALID")
				r = envs[i].do("PATCH", loc, []byte(ch), hdr...)
			}
			wantStatus(t, r, http.StatusAccepted)
			off += len(ch)
			wantHeader(t, r, "Range", "0-"+itoa(off-1))
		}
		// a remembers the state after "two|"; the PUT (with a last chunk)
		// must find the real one.
		d := digest.FromString(strings.Join(chunks, "") + "last")
		var hdr []string
		if ranged {
			hdr = []string{"Content-Range", itoa(off) + "-" + itoa(off+3)}
		}
		wantStatus(t, a.do("PUT", withQuery(loc, "digest="+d.String()), []byte("last"), hdr...), http.StatusCreated)
		r := c.do("GET", "/v2/rr/blobs/"+d.String(), nil)
		if r.StatusCode != http.StatusOK || string(r.body) != strings.Join(chunks, "")+"last" {
			t.Errorf("GET: %s", r)
		}
	}
	// POST on a, PATCH on b, PUT without body on a (a remembers an empty,
	// never stored session).
	loc := a.startUpload("rr")
	wantStatus(t, b.do("PATCH", loc, []byte("only chunk")), http.StatusAccepted)
	d := digest.FromString("only chunk")
	wantStatus(t, a.do("PUT", withQuery(loc, "digest="+d.String()), nil), http.StatusCreated)
	a.reg.Wait()
	wantNoKeysUnder(t, a.store, "uploads/")
}

func itoa(n int) string { return strconv.Itoa(n) }

// A PUT that closed its session but died before committing (or whose
// session delete never happened): the session takes no more data, a cancel
// cannot drop the bytes, and a PUT with the same digest commits.
func TestClosedSessionIsSafe(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	loc := e.startUpload("repo")
	id := uploadID(loc)
	// Two chunks: a session of one chunk is not stored, nothing to close.
	wantStatus(t, e.do("PATCH", loc, []byte("closed ")), http.StatusAccepted)
	wantStatus(t, e.do("PATCH", loc, []byte("bytes")), http.StatusAccepted)
	d := digest.FromString("closed bytes")
	st, err := e.reg.sessions.load(ctx, "repo", id, "", fromStore)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.sessions.close(ctx, st, nil, d); err != nil {
		t.Fatal(err)
	}
	// Another replica (no memory of the session).
	b := newEnvOn(t, e.dir)
	for _, x := range []*env{e, b} {
		wantError(t, x.do("PATCH", loc, []byte("more")), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		wantError(t, x.do("GET", loc, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		wantError(t, x.do("DELETE", loc, nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		wantError(t, x.do("PUT", withQuery(loc, "digest="+digest.FromString("other").String()), nil), http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
	}
	wantStatus(t, b.do("PUT", withQuery(loc, "digest="+d.String()), nil), http.StatusCreated)
	r := e.do("GET", "/v2/repo/blobs/"+d.String(), nil)
	if r.StatusCode != http.StatusOK || string(r.body) != "closed bytes" {
		t.Errorf("GET: %s", r)
	}
	b.reg.Wait()
	wantNoKeysUnder(t, e.store, "uploads/")
}

// A replica remembers that a repository has a blob for a bounded time:
// its own delete is seen at once, another replica's within BlobLinkTTL.
func TestBlobLinkMemory(t *testing.T) {
	a := newEnvWith(t, t.TempDir(), Options{BlobLinkTTL: time.Second})
	b := newEnvOn(t, a.dir)
	d := a.pushBlob("repo", []byte("remembered"))
	wantStatus(t, a.do("GET", "/v2/repo/blobs/"+d.String(), nil), http.StatusOK)
	wantStatus(t, b.do("DELETE", "/v2/repo/blobs/"+d.String(), nil), http.StatusAccepted)
	// Within the bound a still answers GETs from memory (the bytes are
	// there); HEAD, which pushes use to decide what to upload, asks the
	// store.
	wantStatus(t, a.do("GET", "/v2/repo/blobs/"+d.String(), nil), http.StatusOK)
	wantStatus(t, a.do("HEAD", "/v2/repo/blobs/"+d.String(), nil), http.StatusNotFound)
	time.Sleep(1100 * time.Millisecond)
	wantError(t, a.do("GET", "/v2/repo/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")

	// Its own delete: at once.
	d = a.pushBlob("repo", []byte("deleted here"))
	wantStatus(t, a.do("HEAD", "/v2/repo/blobs/"+d.String(), nil), http.StatusOK)
	wantStatus(t, a.do("DELETE", "/v2/repo/blobs/"+d.String(), nil), http.StatusAccepted)
	wantError(t, a.do("GET", "/v2/repo/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
}
