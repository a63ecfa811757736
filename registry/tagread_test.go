package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

func wantTagStates(t *testing.T, md *Metadata, repo string, want map[string]digest.Digest) {
	t.Helper()
	got, err := md.TagStates(context.Background(), repo)
	if err != nil {
		t.Fatalf("TagStates(%s): %v", repo, err)
	}
	if len(got) != len(want) {
		t.Fatalf("TagStates(%s) = %v, want %v", repo, got, want)
	}
	for tag, d := range want {
		if got[tag].Digest != d || got[tag].ETag == "" || got[tag].ModTime.IsZero() {
			t.Fatalf("TagStates(%s)[%s] = %+v, want %s", repo, tag, got[tag], d)
		}
	}
}

// twoTags pushes two images to e's repository "app", tagged "1" and "2".
func twoTags(e *env) (m1, m2 []byte, d1, d2 digest.Digest) {
	e.t.Helper()
	m1, m2 = e.image("app", "one"), e.image("app", "two")
	wantStatus(e.t, e.putManifest("app", "1", v1.MediaTypeImageManifest, m1), http.StatusCreated)
	wantStatus(e.t, e.putManifest("app", "2", v1.MediaTypeImageManifest, m2), http.StatusCreated)
	return m1, m2, digest.FromBytes(m1), digest.FromBytes(m2)
}

// A tag moved, deleted or set through another replica on the same store
// is read at once by a replica that has read (and cached) the tag index,
// and the journal is folded into the index as it is read.
func TestTagStatesSeeMovesAtOnce(t *testing.T) {
	a := newEnv(t)
	b := newEnvOn(t, a.dir)
	_, m2, d1, d2 := twoTags(a)
	md := a.reg.Metadata()
	a.reg.Wait() // the done marks
	wantTagStates(t, md, "app", map[string]digest.Digest{"1": d1, "2": d2})
	wantTagStates(t, md, "app", map[string]digest.Digest{"1": d1, "2": d2})
	wantNoKeysUnder(t, a.store, journalPrefix("app"))

	// Read at once: whether or not b has marked its records done yet.

	wantStatus(t, b.putManifest("app", "1", v1.MediaTypeImageManifest, m2), http.StatusCreated)
	wantTagStates(t, md, "app", map[string]digest.Digest{"1": d2, "2": d2})
	wantStatus(t, b.do(http.MethodDelete, "/v2/app/manifests/2", nil), http.StatusAccepted)
	wantTagStates(t, md, "app", map[string]digest.Digest{"1": d2})
	ctx := context.Background()
	st, err := b.reg.Metadata().Tag(ctx, "app", "1")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.reg.Metadata().SetTag(ctx, "app", "1", d1, "7", st.ETag); err != nil {
		t.Fatal(err)
	}
	got, err := md.TagStates(ctx, "app")
	if err != nil || got["1"].Digest != d1 || got["1"].Stamp != "7" || len(got) != 1 {
		t.Fatalf("TagStates after SetTag = %v %v", got, err)
	}
	// Deleting the manifest untags it everywhere.
	wantStatus(t, b.do(http.MethodDelete, "/v2/app/manifests/"+d1.String(), nil), http.StatusAccepted)
	wantTagStates(t, md, "app", map[string]digest.Digest{})
	b.reg.Wait()
	wantTagStates(t, md, "app", map[string]digest.Digest{})
	wantNoKeysUnder(t, a.store, journalPrefix("app"))
}

// A writer that died after its tag write landed and before it marked its
// journal record done (or whose write failed in a way that may still
// land) leaves the record open: every reader reads that tag itself, the
// index is never trusted for it, and the record stays.
func TestTagStatesReadOpenRecords(t *testing.T) {
	a := newEnv(t)
	m1, _, d1, d2 := twoTags(a)
	md := a.reg.Metadata()
	a.reg.Wait()
	wantTagStates(t, md, "app", map[string]digest.Digest{"1": d1, "2": d2})

	// The dead writer's steps, on the raw store: record, then tag write.
	ctx := context.Background()
	rec := journalKey("app", "1", "dead")
	if _, err := a.store.PutIfAbsent(ctx, rec, strings.NewReader(""), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.Put(ctx, tagKey("app", "1"), strings.NewReader(d2.String()), int64(len(d2.String()))); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		wantTagStates(t, md, "app", map[string]digest.Digest{"1": d2, "2": d2})
		wantKeysUnder(t, a.store, journalPrefix("app"), rec)
	}
	// A later, completed write of the same tag is read too.
	wantStatus(t, a.putManifest("app", "1", v1.MediaTypeImageManifest, m1), http.StatusCreated)
	wantTagStates(t, md, "app", map[string]digest.Digest{"1": d1, "2": d2})
	a.reg.Wait()
	wantTagStates(t, md, "app", map[string]digest.Digest{"1": d1, "2": d2})
	wantKeysUnder(t, a.store, journalPrefix("app"), rec)
	// Another replica, with nothing cached, reads the same.
	wantTagStates(t, newEnvOn(t, a.dir).reg.Metadata(), "app", map[string]digest.Digest{"1": d1, "2": d2})
}

// opCounter counts every store request by operation.
type opCounter struct {
	storage.Store
	mu  sync.Mutex
	ops map[string]int
}

func (s *opCounter) note(op string) {
	s.mu.Lock()
	s.ops[op]++
	s.mu.Unlock()
}

func (s *opCounter) take() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ops := s.ops
	s.ops = map[string]int{}
	return ops
}

func (s *opCounter) Get(ctx context.Context, key string, o storage.GetOptions) (io.ReadCloser, storage.Info, error) {
	s.note("Get")
	return s.Store.Get(ctx, key, o)
}
func (s *opCounter) Stat(ctx context.Context, key string) (storage.Info, error) {
	s.note("Stat")
	return s.Store.Stat(ctx, key)
}
func (s *opCounter) Put(ctx context.Context, key string, r io.Reader, n int64) (storage.Info, error) {
	s.note("Put")
	return s.Store.Put(ctx, key, r, n)
}
func (s *opCounter) PutIfAbsent(ctx context.Context, key string, r io.Reader, n int64) (storage.Info, error) {
	s.note("PutIfAbsent")
	return s.Store.PutIfAbsent(ctx, key, r, n)
}
func (s *opCounter) PutIfMatch(ctx context.Context, key string, r io.Reader, n int64, etag string) (storage.Info, error) {
	s.note("PutIfMatch")
	return s.Store.PutIfMatch(ctx, key, r, n, etag)
}
func (s *opCounter) Delete(ctx context.Context, key string) error {
	s.note("Delete")
	return s.Store.Delete(ctx, key)
}
func (s *opCounter) List(ctx context.Context, o storage.ListOptions) (storage.ListPage, error) {
	s.note("List")
	return s.Store.List(ctx, o)
}

// Reading N tags costs a few requests whatever N, once the index exists;
// the first read costs a read per tag and a listing page per 1,000; a
// tag write costs two small journal writes.
// countedRegistry is a registry on a filesystem store (st) whose store
// requests cs counts. Its garbage-collection guard asks whether a sweep is
// in progress once per CacheFor: once per test.
func countedRegistry(t *testing.T) (st storage.Store, cs *opCounter, reg *Registry, md *Metadata) {
	t.Helper()
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cs = &opCounter{Store: st, ops: map[string]int{}}
	reg = New(cs, Options{})
	md = reg.Metadata()
	md.Guard().CacheFor = time.Hour
	return st, cs, reg, md
}

func TestTagStatesRequests(t *testing.T) {
	const n = 1200
	_, cs, reg, md := countedRegistry(t)
	ctx := context.Background()
	d := digest.FromString("m")
	for i := range n {
		if err := md.SetTag(ctx, "app", fmt.Sprintf("t%05d", i), d, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	want := func(step string, ops map[string]int) {
		t.Helper()
		reg.Wait()
		got := cs.take()
		if fmt.Sprint(got) != fmt.Sprint(ops) {
			t.Errorf("%s: store requests %v, want %v", step, got, ops)
		}
	}
	want("tag writes", map[string]int{"List": 1, "PutIfAbsent": 2 * n, "Put": n})

	states, err := md.TagStates(ctx, "app")
	if err != nil || len(states) != n {
		t.Fatalf("TagStates = %d tags, %v", len(states), err)
	}
	// journal (2 pages) + tags (2 pages), the index's Stat, each tag, the
	// index written and the n done records deleted.
	want("first read", map[string]int{"List": 4, "Stat": 1, "Get": n, "PutIfAbsent": 1, "Delete": n})

	for range 3 {
		if states, err = md.TagStates(ctx, "app"); err != nil || len(states) != n {
			t.Fatalf("TagStates = %d tags, %v", len(states), err)
		}
		want("read", map[string]int{"List": 1, "Stat": 1})
	}

	// Another replica reads the index once, then only checks it.
	other := New(cs, Options{}).Metadata()
	for _, ops := range []map[string]int{{"List": 1, "Stat": 1, "Get": 1}, {"List": 1, "Stat": 1}} {
		if states, err = other.TagStates(ctx, "app"); err != nil || len(states) != n {
			t.Fatalf("TagStates = %d tags, %v", len(states), err)
		}
		want("other replica", ops)
	}

	// Moving 3 tags: their reads, and one fold.
	for i := range 3 {
		if err := md.SetTag(ctx, "app", fmt.Sprintf("t%05d", i), digest.FromString("n"), "1", states[fmt.Sprintf("t%05d", i)].ETag); err != nil {
			t.Fatal(err)
		}
	}
	reg.Wait()
	cs.take()
	if states, err = md.TagStates(ctx, "app"); err != nil || states["t00002"].Digest != digest.FromString("n") {
		t.Fatalf("TagStates after a move = %+v, %v", states["t00002"], err)
	}
	want("read after 3 moves", map[string]int{"List": 1, "Stat": 1, "Get": 3, "PutIfMatch": 1, "Delete": 3})
}

// TagStatesListed reads the same tags as TagStates from the caller's
// listing of the repository: no list and no Stat of its own.
func TestTagStatesListed(t *testing.T) {
	const n = 20
	st, cs, reg, md := countedRegistry(t)
	ctx := context.Background()
	for i := range n {
		if err := md.SetTag(ctx, "app", fmt.Sprintf("t%02d", i), digest.FromString(fmt.Sprint(i)), "", ""); err != nil {
			t.Fatal(err)
		}
	}
	listing := func() []storage.Info {
		t.Helper()
		objs, err := listAll(ctx, st, repoKey("app")+"_") // not counted
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	read := func(step string, md *Metadata, ops map[string]int) map[string]TagState {
		t.Helper()
		reg.Wait()
		cs.take()
		got, err := md.TagStatesListed(ctx, "app", listing())
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		reg.Wait()
		if c := cs.take(); fmt.Sprint(c) != fmt.Sprint(ops) {
			t.Errorf("%s: store requests %v, want %v", step, c, ops)
		}
		want, err := New(st, Options{}).Metadata().TagStates(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d tags, TagStates reads %d", step, len(got), len(want))
		}
		for tag, s := range want {
			if got[tag].Digest != s.Digest || got[tag].ETag != s.ETag {
				t.Errorf("%s: tag %s = %+v, TagStates reads %+v", step, tag, got[tag], s)
			}
		}
		return got
	}
	// No index yet: each listed tag read, the index written, the done
	// records deleted.
	read("first read", md, map[string]int{"Get": n, "PutIfAbsent": 1, "Delete": n})
	// The listing shows the index this process wrote: nothing to send.
	read("read again", md, map[string]int{})
	// Another process reads the index once.
	read("other process", New(cs, Options{}).Metadata(), map[string]int{"Get": 1})
	// A moved tag: its journal record in the listing, its read, one fold.
	states, err := md.TagStates(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if err := md.SetTag(ctx, "app", "t03", digest.FromString("moved"), "", states["t03"].ETag); err != nil {
		t.Fatal(err)
	}
	got := read("after a move", md, map[string]int{"Get": 1, "PutIfMatch": 1, "Delete": 1})
	if got["t03"].Digest != digest.FromString("moved") {
		t.Errorf("moved tag reads %s", got["t03"].Digest)
	}
}
