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
	"sync/atomic"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

// s3Like is a filesystem store that demands a minimum part size, as S3
// does, and counts parts, so the multipart path of writeSegment runs.
type s3Like struct {
	*fs.Store
	parts atomic.Int64
}

func (s *s3Like) MinPartSize() int64 { return 100 }

func (s *s3Like) PutPart(ctx context.Context, key, id string, n int, r io.Reader, size int64) (storage.Part, error) {
	s.parts.Add(1)
	return s.Store.PutPart(ctx, key, id, n, r, size)
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

func TestLargeBodiesUseMultipartOnStoresWithMinimumPartSize(t *testing.T) {
	base, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &s3Like{Store: base}
	eng := gin.New()
	New(store, Options{PartSize: 1000, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).Register(eng)
	srv := httptest.NewServer(eng)
	defer srv.Close()

	for _, tc := range []struct {
		name      string
		size      int
		chunked   bool
		wantParts int64
	}{
		{"fits one part", 1000, false, 0},
		{"three and a half parts", 3500, false, 4},
		{"streamed, unknown length", 2500, true, 3},
		{"streamed, exactly one part", 1000, true, 0},
		{"streamed, one part and a byte", 1001, true, 2},
		{"streamed, exactly two parts", 2000, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store.parts.Store(0)
			blob := randomBytes(t, tc.size)
			d := digest.FromBytes(blob)
			var body io.Reader = bytes.NewReader(blob)
			if tc.chunked {
				body = io.MultiReader(bytes.NewReader(blob)) // hides the length: chunked transfer
			}
			req, _ := http.NewRequest("POST", srv.URL+"/v2/mp/blobs/uploads/?digest="+d.String(), body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("POST: %s", resp.Status)
			}
			if n := store.parts.Load(); n != tc.wantParts {
				t.Errorf("%d parts written, want %d", n, tc.wantParts)
			}
			get, err := http.Get(srv.URL + "/v2/mp/blobs/" + d.String())
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(get.Body)
			get.Body.Close()
			if !bytes.Equal(b, blob) {
				t.Fatal("blob reads back differently")
			}
		})
	}
	problems, err := Verify(context.Background(), store)
	if err != nil || len(problems) > 0 {
		t.Fatalf("store does not verify: %v %q", err, problems)
	}
}
