package admin

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage/fs"
)

// The benchmarks in scale_test.go measure the pages on the in-memory
// fake; these measure them on the real promotion service, on a registry
// on a folder, as the server runs them.

type realEnv struct {
	host string
	svc  *promote.Service
	md   *registry.Metadata
	ctx  context.Context // an admin
}

// realService builds the real service and seeds it; the returned edit
// puts it in the admin's options.
func realService(b *testing.B, seed func(b *testing.B, r realEnv)) func(*Options) {
	store, err := fs.New(filepath.Join(b.TempDir(), "registry"))
	if err != nil {
		b.Fatal(err)
	}
	reg := registry.New(store, registry.Options{Logger: quiet})
	g := gin.New()
	reg.Register(g)
	srv := httptest.NewServer(g)
	b.Cleanup(srv.Close)
	svc := promote.New(store, reg.Metadata(), promote.Options{
		Stages: config.Default().Stages, Logger: quiet,
		Actor: func(ctx context.Context) string { p, _ := auth.PrincipalFrom(ctx); return p.Name },
	})
	seed(b, realEnv{host: strings.TrimPrefix(srv.URL, "http://"), svc: svc, md: reg.Metadata(),
		ctx: auth.WithPrincipal(context.Background(), auth.Principal{Name: "ops", Admin: true})})
	return func(o *Options) { o.Promote = svc }
}

func (r realEnv) push(b *testing.B, ref string, img v1.Image) {
	nr, err := name.ParseReference(r.host+"/"+ref, name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.Write(nr, img); err != nil {
		b.Fatal(err)
	}
}

// seedBigApp gives staging/big 2,000 tags, each its own manifest (same
// layers, another annotation), half of them promoted to production.
func seedBigApp(b *testing.B, r realEnv) {
	img, err := random.Image(1024, 3)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 2000 {
		tag := fmt.Sprintf("1.%d.%d", i/100, i%100)
		r.push(b, "staging/big:"+tag, mutate.Annotations(img, map[string]string{"build": tag}).(v1.Image))
		if i%2 == 0 {
			if _, _, err := r.svc.Promote(r.ctx, promote.Request{Source: "staging/big:" + tag, To: "production"}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// seedManyRepos makes 5,000 repositories (two thirds in staging, a third
// in production), each with one tag, linked through the metadata layer.
func seedManyRepos(b *testing.B, r realEnv) {
	img, err := random.Image(1024, 1)
	if err != nil {
		b.Fatal(err)
	}
	r.push(b, "seed/image:v1", img)
	m, err := r.md.Resolve(context.Background(), "seed/image", "v1")
	if err != nil {
		b.Fatal(err)
	}
	refs, _ := m.References()
	for i := range 5000 {
		stage := "staging/"
		if i%3 == 0 {
			stage = "production/"
		}
		repo := fmt.Sprintf("%steam%02d/service-%04d", stage, i%40, i)
		for _, bl := range refs.Blobs {
			if err := r.md.LinkBlob(context.Background(), repo, bl.Digest); err != nil {
				b.Fatal(err)
			}
		}
		if err := r.md.LinkManifest(context.Background(), repo, m); err != nil {
			b.Fatal(err)
		}
		if err := r.md.SetTag(context.Background(), repo, "v1", m.Digest, "", ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRealRepositoryPage2000Tags(b *testing.B) {
	benchPageWith(b, realService(b, seedBigApp), "/admin/repositories/big")
}

func BenchmarkRealRepositories5000(b *testing.B) {
	benchPageWith(b, realService(b, seedManyRepos), "/admin/repositories?q=service")
}
