package promote

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

func init() { gin.SetMode(gin.TestMode) }

var testStages = []config.Stage{
	{Name: "staging", Prefix: "staging/"},
	{Name: "qa", Prefix: "qa/", PromoteFrom: []string{"staging"}},
	{Name: "production", Prefix: "production/", PromoteFrom: []string{"staging", "qa"}, Immutable: true, FixedTags: []string{"v*", "[0-9]*"}},
}

// counting wraps a store and counts what is written, by key prefix.
type counting struct {
	storage.Store
	mu      sync.Mutex
	writes  map[string]int64 // key -> bytes
	enabled atomic.Bool
}

func (c *counting) note(key string, size int64) {
	if !c.enabled.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes[key] += size
}

func (c *counting) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	info, err := c.Store.Put(ctx, key, r, size)
	c.note(key, info.Size)
	return info, err
}

func (c *counting) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	info, err := c.Store.PutIfAbsent(ctx, key, r, size)
	c.note(key, info.Size)
	return info, err
}

func (c *counting) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (storage.Info, error) {
	info, err := c.Store.PutIfMatch(ctx, key, r, size, etag)
	c.note(key, info.Size)
	return info, err
}

// env is a registry on a filesystem store, served over HTTP for pushes,
// with a promotion service on its metadata.
type env struct {
	t     *testing.T
	dir   string
	store *counting
	reg   *registry.Registry
	host  string
	svc   *Service
	// grants, when set, is what every caller may do per repository.
	grants func(repo string) []string
}

func newEnv(t *testing.T) *env { return newEnvOn(t, t.TempDir()) }

// newEnvOn starts another process-like instance (own caches, own locks)
// on an existing store directory.
func newEnvOn(t *testing.T, dir string) *env {
	t.Helper()
	st, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, store: &counting{Store: st, writes: map[string]int64{}}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.reg = registry.New(e.store, registry.Options{Logger: quiet})
	g := gin.New()
	e.reg.Register(g)
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	e.host = strings.TrimPrefix(srv.URL, "http://")
	e.svc = New(e.store, e.reg.Metadata(), Options{
		Stages: testStages,
		Allowed: func(ctx context.Context) (func(string) []string, error) {
			return func(repo string) []string {
				if e.grants != nil {
					return e.grants(repo)
				}
				return []string{"pull", "push", "delete", "promote"}
			}, nil
		},
		Actor:  func(ctx context.Context) string { return "tester" },
		Logger: quiet,
	})
	t.Cleanup(func() {
		// The registry's work after responses (journal records marked
		// done) writes into the folder: let it end before the folder is
		// checked and removed.
		e.reg.Wait()
		problems, err := registry.Verify(context.Background(), st)
		if err != nil || len(problems) > 0 {
			t.Errorf("store does not verify: %v %q", err, problems)
		}
	})
	return e
}

func (e *env) ref(s string) name.Reference {
	e.t.Helper()
	r, err := name.ParseReference(e.host+"/"+s, name.Insecure)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// pushImage pushes a random image with n layers of size bytes.
func (e *env) pushImage(ref string, size int64, n int) ggcr.Image {
	e.t.Helper()
	img, err := random.Image(size, int64(n))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := remote.Write(e.ref(ref), img); err != nil {
		e.t.Fatalf("push %s: %v", ref, err)
	}
	return img
}

func (e *env) pushIndex(ref string) ggcr.ImageIndex {
	e.t.Helper()
	var adds []mutate.IndexAddendum
	for _, p := range []ggcr.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
		img, err := random.Image(1024, 2)
		if err != nil {
			e.t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: ggcr.Descriptor{Platform: &p}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	if err := remote.WriteIndex(e.ref(ref), idx); err != nil {
		e.t.Fatalf("push index %s: %v", ref, err)
	}
	return idx
}

func (e *env) digestOf(ref string) string {
	e.t.Helper()
	desc, err := remote.Head(e.ref(ref))
	if err != nil {
		e.t.Fatalf("HEAD %s: %v", ref, err)
	}
	return desc.Digest.String()
}

func (e *env) promote(req Request) (Record, bool) {
	e.t.Helper()
	rec, created, err := e.svc.Promote(context.Background(), req)
	if err != nil {
		e.t.Fatalf("Promote(%+v): %v", req, err)
	}
	return rec, created
}

// refusal asserts that err is an *Error with the status and code, and
// that its message contains want.
func refusal(t *testing.T, err error, status int, code, want string) {
	t.Helper()
	pe, ok := err.(*Error)
	if !ok {
		t.Fatalf("error = %v (%T), want *Error %d %s", err, err, status, code)
	}
	if pe.Status != status || pe.Code != code || !strings.Contains(pe.Message, want) {
		t.Fatalf("error = %d %s %q, want %d %s containing %q", pe.Status, pe.Code, pe.Message, status, code, want)
	}
}
