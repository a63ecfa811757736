package stocklayout_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/importer/stocklayout"
	"github.com/slipway/slipway/importer/stocklayout/stocktest"
	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

const root = stocklayout.Root

func linkPath(d digest.Digest) string { return stocktest.LinkPath(d) }

// open opens the layout through a store that refuses writes.
func open(st *stocktest.Layout) *stocklayout.Layout {
	st.T.Helper()
	l, err := stocklayout.Open(context.Background(), readOnly{st.Store, st.T})
	if err != nil {
		st.T.Fatal(err)
	}
	return l
}

// readOnly fails the test on any write: the layout is the stock
// registry's, and the reader must never change it. Its listings come in
// pages of two entries, so every listing of the tests is paged.
type readOnly struct {
	storage.Store
	t testing.TB
}

func (r readOnly) List(ctx context.Context, opts storage.ListOptions) (storage.ListPage, error) {
	opts.MaxKeys = 2
	return r.Store.List(ctx, opts)
}

func (r readOnly) Put(ctx context.Context, key string, _ io.Reader, _ int64) (storage.Info, error) {
	r.t.Errorf("Put %s on the stock registry's storage", key)
	return storage.Info{}, errors.New("read only")
}

func (r readOnly) PutIfAbsent(ctx context.Context, key string, b io.Reader, n int64) (storage.Info, error) {
	return r.Put(ctx, key, b, n)
}

func (r readOnly) PutIfMatch(ctx context.Context, key string, b io.Reader, n int64, _ string) (storage.Info, error) {
	return r.Put(ctx, key, b, n)
}

func (r readOnly) Delete(_ context.Context, key string) error {
	r.t.Errorf("Delete %s on the stock registry's storage", key)
	return errors.New("read only")
}

// corruptKey asserts err is a *CorruptError naming key.
func corruptKey(t *testing.T, err error, key string) {
	t.Helper()
	var ce *stocklayout.CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, stocklayout.ErrCorrupt) {
		t.Fatalf("want a CorruptError for %s, got %v", key, err)
	}
	if ce.Key != key || !strings.Contains(err.Error(), key) {
		t.Fatalf("CorruptError names %q (%v), want %s", ce.Key, err, key)
	}
}

func TestOpenRefusesWhatIsNotALayout(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		setup func(st *stocktest.Layout) string // returns the directory to open
		hint  string
	}{
		{"empty", func(st *stocktest.Layout) string { return st.Dir }, "it is empty"},
		{"one level too deep", func(st *stocktest.Layout) string {
			st.Blob("x")
			return filepath.Join(st.Dir, "docker")
		}, "it holds registry/v2/"},
		{"a Slipway store", func(st *stocktest.Layout) string {
			st.Put("blobs/sha256/ab/abcd", []byte("{}"))
			st.Put("catalog/6170", nil)
			return st.Dir
		}, "its top level holds blobs/, catalog/"},
		{"docker/registry/v2 without blobs or repositories", func(st *stocktest.Layout) string {
			st.Put(root+"other/x", nil)
			return st.Dir
		}, "its top level holds docker/"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := stocktest.New(t)
			s, err := fs.New(c.setup(st))
			if err != nil {
				t.Fatal(err)
			}
			_, err = stocklayout.Open(ctx, s)
			if !errors.Is(err, stocklayout.ErrNotLayout) || !strings.Contains(err.Error(), c.hint) {
				t.Fatalf("want ErrNotLayout with %q, got %v", c.hint, err)
			}
		})
	}
	st := stocktest.New(t)
	st.Layer("app", digest.FromString("x"))
	if _, err := stocklayout.Open(ctx, st.Store); err != nil {
		t.Fatalf("repositories/ alone is a layout: %v", err)
	}
}

func TestRepositoriesNestedAndSkipped(t *testing.T) {
	st := stocktest.New(t)
	m := st.Blob("manifest")
	for _, repo := range []string{"team/app", "app", "team/app/sub", "a.b_c-d/x__y", "z"} {
		st.Revision(repo, m)
	}
	st.Layer("team/other", m) // layers but no _manifests: not a repository (as in the stock catalog)
	st.Put(root+"repositories/team/_uploads/u1/startedat", []byte("x"))
	st.Revision("Upper", m)
	repos, problems, err := open(st).Repositories(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a.b_c-d/x__y", "app", "team/app", "team/app/sub", "z"}
	if !slices.Equal(repos, want) {
		t.Fatalf("repositories %q, want %q", repos, want)
	}
	if len(problems) != 1 {
		t.Fatalf("want one problem (the invalid name), got %v", problems)
	}
	corruptKey(t, problems[0], root+"repositories/Upper/_manifests/")
}

func TestTagsWithTheirDigests(t *testing.T) {
	st := stocktest.New(t)
	a, b := st.Blob("a"), st.Blob("b")
	st.Tag("app", "latest", a)
	st.Tag("app", "v1.2.3", b)
	st.Tag("app", "1.0_rc-1", a)
	st.Tag("app", ".hidden", a) // a valid key component, not a valid tag
	st.Put(root+"repositories/app/_manifests/tags/broken/current/link", []byte(string(a)+"\n"))
	st.Put(root+"repositories/app/_manifests/tags/half/index/"+linkPath(a), []byte(a))
	st.Tag("other", "latest", b)

	tags, problems, err := open(st).Tags(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	want := []stocklayout.Tag{{Name: "1.0_rc-1", Digest: a}, {Name: "latest", Digest: a}, {Name: "v1.2.3", Digest: b}}
	if !slices.Equal(tags, want) {
		t.Fatalf("tags %v, want %v", tags, want)
	}
	if len(problems) != 3 {
		t.Fatalf("want 3 problems, got %v", problems)
	}
	tp := root + "repositories/app/_manifests/tags/"
	corruptKey(t, problems[0], tp+".hidden/")
	corruptKey(t, problems[1], tp+"broken/current/link")
	if !strings.Contains(problems[1].Error(), "not a digest like sha256:<64 hex>") {
		t.Fatalf("the error should say what a link must hold: %v", problems[1])
	}
	corruptKey(t, problems[2], tp+"half/current/link")
}

func TestManifestsAndLayers(t *testing.T) {
	st := stocktest.New(t)
	m1, m2, l1, l2 := st.Blob("m1"), st.Blob("m2"), st.Blob("l1"), st.Blob("l2")
	st.Revision("app", m1)
	st.Revision("app", m2)
	st.Layer("app", l1)
	st.Layer("app", l2)
	st.Layer("app/nested", st.Blob("nested only"))
	bad, empty := digest.FromString("bad"), digest.FromString("e")
	// The same four odd objects among the revisions and the layers.
	oddities := func(prefix string) {
		st.Put(prefix+linkPath(bad), []byte(l1))            // names another digest than its key
		st.Put(prefix+"sha256/"+bad.Encoded()+"/data", nil) // not a link
		st.Put(prefix+"sha256/nothex/link", []byte(l1))     // key names no digest
		st.Put(prefix+linkPath(empty), nil)                 // empty link
	}
	mp, lp := root+"repositories/app/_manifests/revisions/", root+"repositories/app/_layers/"
	oddities(mp)
	oddities(lp)
	l := open(st)
	ctx := context.Background()

	wantProblems := func(what string, problems []error, n int, prefix string) {
		t.Helper()
		if len(problems) != n {
			t.Fatalf("%s: want %d problems, got %v", what, n, problems)
		}
		for _, p := range problems {
			if !errors.Is(p, stocklayout.ErrCorrupt) || !strings.Contains(p.Error(), prefix) {
				t.Fatalf("%s: problem %v should be a CorruptError naming its key", what, p)
			}
		}
	}
	// Revisions are read: a link must hold the digest its key names.
	ms, problems, err := l.Manifests(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if want := sorted(m1, m2); !slices.Equal(ms, want) {
		t.Fatalf("manifests %v, want %v", ms, want)
	}
	wantProblems("revisions", problems, 4, mp)
	// Layer links are listed, not read: what their keys name is the
	// answer, and only keys that are not links are problems.
	ls, problems, err := l.Layers(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if want := sorted(l1, l2, bad, empty); !slices.Equal(ls, want) {
		t.Fatalf("layers %v, want %v (nested repositories are not this one's)", ls, want)
	}
	wantProblems("layers", problems, 2, lp)
	if ls, problems, err := l.Layers(ctx, "none"); err != nil || len(ls)+len(problems) != 0 {
		t.Fatalf("a repository without layers: %v %v %v", ls, problems, err)
	}
}

func sorted(ds ...digest.Digest) []digest.Digest {
	slices.Sort(ds)
	return ds
}

func TestBlobAndManifestBytes(t *testing.T) {
	st := stocktest.New(t)
	ctx := context.Background()
	d := st.Blob(`{"schemaVersion":2}`)
	l := open(st)

	b, err := l.Blob(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if b.Digest != d || b.Size != 19 || b.Key != root+"blobs/sha256/"+d.Encoded()[:2]+"/"+d.Encoded()+"/data" {
		t.Fatalf("blob %+v", b)
	}
	if _, err := os.Stat(filepath.Join(st.Dir, filepath.FromSlash(b.Key))); err != nil {
		t.Fatalf("the key is the stock registry's file: %v", err)
	}
	got, err := l.ReadManifest(ctx, d)
	if err != nil || string(got) != `{"schemaVersion":2}` {
		t.Fatalf("manifest %q, %v", got, err)
	}

	missing := digest.FromString("gone")
	_, err = l.Blob(ctx, missing)
	if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), stocklayout.BlobKey(missing)) {
		t.Fatalf("a blob without data: want ErrNotFound naming its key, got %v", err)
	}
	if _, err := l.ReadManifest(ctx, missing); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a manifest without data: %v", err)
	}

	st.Put(stocklayout.BlobKey(d), []byte(`{"schemaVersion":3}`))
	_, err = l.ReadManifest(ctx, d)
	corruptKey(t, err, stocklayout.BlobKey(d))

	big := digest.FromString("big")
	st.Put(stocklayout.BlobKey(big), make([]byte, stocklayout.ManifestLimit+1))
	_, err = l.ReadManifest(ctx, big)
	corruptKey(t, err, stocklayout.BlobKey(big))
}

// TestStockKeysAreValidKeys: the longest names the stock registry takes
// make keys Slipway's stores accept.
func TestStockKeysAreValidKeys(t *testing.T) {
	d := digest.FromString("x")
	repo := strings.Repeat("a", 127) + "/" + strings.Repeat("b-c.d__e", 15) + "9"
	tag := "_" + strings.Repeat("A.b-", 31) + "Zzz"
	if !names.ValidRepository(repo) || len(repo) < 240 || !names.ValidTag(tag) || len(tag) != 128 {
		t.Fatalf("test names: %d %d", len(repo), len(tag))
	}
	keys := []string{
		stocklayout.BlobKey(d),
		root + "repositories/" + repo + "/_layers/" + linkPath(d),
		root + "repositories/" + repo + "/_manifests/revisions/" + linkPath(d),
		root + "repositories/" + repo + "/_manifests/tags/" + tag + "/current/link",
		root + "repositories/" + repo + "/_manifests/tags/" + tag + "/index/" + linkPath(d),
		root + "repositories/" + repo + "/_uploads/0c0b8c5e-7d41-4c4f-9a57-1c3bb8e7f2a1/hashstates/sha256/1048576",
	}
	for _, k := range keys {
		if !storage.ValidKey(k) {
			t.Errorf("stock key %s is not a valid key", k)
		}
	}
}
