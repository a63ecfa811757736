package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

// writes is a filesystem store that records the body writes it gets.
type writes struct {
	*fs.Store
	mu  sync.Mutex
	got []string // "Put <size>" or "PutIfAbsent <key> <size>"
}

func (w *writes) note(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, fmt.Sprintf(format, args...))
}

func (w *writes) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	got := w.got
	w.got = nil
	return got
}

func (w *writes) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if strings.HasPrefix(key, "data/") {
		w.note("Put %d", size)
	}
	return w.Store.Put(ctx, key, r, size)
}

func (w *writes) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if strings.HasPrefix(key, "data/") {
		w.note("PutIfAbsent %s %d", key, size)
	}
	return w.Store.PutIfAbsent(ctx, key, r, size)
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestChunksBecomeSegmentsReadInOrder(t *testing.T) {
	e := newEnv(t)
	blob := randomBytes(t, 3000)
	loc := e.startUpload("seg")
	for i := 0; i < 3; i++ {
		part := blob[i*1000 : (i+1)*1000]
		wantStatus(t, e.do("PATCH", loc, part, "Content-Range", fmt.Sprintf("%d-%d", i*1000, (i+1)*1000-1)), http.StatusAccepted)
	}
	d := digest.FromBytes(blob)
	wantStatus(t, e.do("PUT", withQuery(loc, "digest="+d.String()), nil), http.StatusCreated)

	raw, _, err := e.store.Get(context.Background(), blobKey(d), storage.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var bd blobDesc
	if err := json.NewDecoder(raw).Decode(&bd); err != nil {
		t.Fatal(err)
	}
	if len(bd.segments()) != 3 || bd.Size != 3000 {
		t.Fatalf("descriptor %+v, want 3 segments of 3000 bytes", bd)
	}
	got := e.do("GET", "/v2/seg/blobs/"+d.String(), nil)
	wantStatus(t, got, http.StatusOK)
	if !bytes.Equal(got.body, blob) {
		t.Fatal("segmented blob reads back differently")
	}
	// A range across both segment boundaries.
	got = e.do("GET", "/v2/seg/blobs/"+d.String(), nil, "Range", "bytes=900-2100")
	wantStatus(t, got, http.StatusPartialContent)
	if !bytes.Equal(got.body, blob[900:2101]) {
		t.Fatal("range across segments reads back differently")
	}
}

// Every body, of any size, known or not, is one write of the store as
// the client sent it: the registry neither buffers nor cuts it. A
// session's first chunk goes put-if-absent to its implicit first segment,
// however large.
func TestBodiesAreOneStoreWrite(t *testing.T) {
	base, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &writes{Store: base}
	eng := gin.New()
	New(store, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Register(eng)
	srv := httptest.NewServer(eng)
	defer srv.Close()

	do := func(method, url string, body []byte, chunked bool) *http.Response {
		t.Helper()
		var r io.Reader = bytes.NewReader(body)
		if chunked {
			r = io.MultiReader(r) // hides the length: chunked transfer
		}
		req, _ := http.NewRequest(method, url, r)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool
	}{
		{"small", 1000, false},
		{"large", 3<<20 + 5, false},
		{"small, unknown length", 1000, true},
		{"large, unknown length", 3<<20 + 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blob := randomBytes(t, tc.size)
			d := digest.FromBytes(blob)
			size := fmt.Sprint(tc.size)
			if tc.chunked {
				size = "-1"
			}
			// Monolithic: POST ?digest= with the body.
			if resp := do("POST", srv.URL+"/v2/mp/blobs/uploads/?digest="+d.String(), blob, tc.chunked); resp.StatusCode != http.StatusCreated {
				t.Fatalf("POST: %s", resp.Status)
			}
			if got := store.take(); len(got) != 1 || got[0] != "Put "+size {
				t.Errorf("monolithic upload wrote %q, want [Put %s]", got, size)
			}
			// docker's POST, PATCH, PUT (the digest comes only with the
			// PUT, so the PATCH writes the bytes again).
			resp := do("POST", srv.URL+"/v2/docker/blobs/uploads/", nil, false)
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("POST: %s", resp.Status)
			}
			loc := srv.URL + resp.Header.Get("Location")
			if resp := do("PATCH", loc, blob, tc.chunked); resp.StatusCode != http.StatusAccepted {
				t.Fatalf("PATCH: %s", resp.Status)
			}
			want := "PutIfAbsent " + firstSegmentKey(uploadID(loc)) + " " + size
			if got := store.take(); len(got) != 1 || got[0] != want {
				t.Errorf("PATCH wrote %q, want [%s]", got, want)
			}
			if resp := do("PUT", withQuery(loc, "digest="+d.String()), nil, false); resp.StatusCode != http.StatusCreated {
				t.Fatalf("PUT: %s", resp.Status)
			}
			for _, repo := range []string{"mp", "docker"} {
				get, err := http.Get(srv.URL + "/v2/" + repo + "/blobs/" + d.String())
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(get.Body)
				get.Body.Close()
				if !bytes.Equal(b, blob) {
					t.Fatalf("%s: blob reads back differently", repo)
				}
			}
			store.take()
		})
	}
	problems, err := Verify(context.Background(), store)
	if err != nil || len(problems) > 0 {
		t.Fatalf("store does not verify: %v %q", err, problems)
	}
}
