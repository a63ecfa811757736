package gc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
	"github.com/slipway/slipway/tombstone"
)

// cutStore is a collector process killed after its first `after` writes:
// every later write (put, conditional put, delete) fails and does
// nothing. writes counts the writes attempted.
type cutStore struct {
	storage.Store
	after  int64
	writes atomic.Int64
}

var errCut = errors.New("killed")

func (c *cutStore) cut() bool { return c.writes.Add(1) > c.after }

func (c *cutStore) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if c.cut() {
		return storage.Info{}, errCut
	}
	return c.Store.Put(ctx, key, r, size)
}

func (c *cutStore) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if c.cut() {
		return storage.Info{}, errCut
	}
	return c.Store.PutIfAbsent(ctx, key, r, size)
}

func (c *cutStore) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (storage.Info, error) {
	if c.cut() {
		return storage.Info{}, errCut
	}
	return c.Store.PutIfMatch(ctx, key, r, size, etag)
}

func (c *cutStore) Delete(ctx context.Context, key string) error {
	if c.cut() {
		return errCut
	}
	return c.Store.Delete(ctx, key)
}

// runOn runs a collector on store (its own registry metadata, as another
// process's) and returns the report and error.
func runOn(store storage.Store) (Report, error) {
	reg := registry.New(store, registry.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	c := New(store, reg.Metadata(), promote.NewLedgerDigests(store), Options{Fence: -1})
	return c.Run(context.Background())
}

// crashContent pushes images sharing a base layer in two repositories:
// tagged ones, untagged ones, an untagged index, a referrer of an
// untagged subject, and orphan data.
func crashContent(e *env) {
	e.image("a", "v1", "a1", nil, "base", "a1")
	e.image("a", "", "a2", nil, "base", "a2")
	sub := e.image("a", "", "a3", nil, "base", "a3")
	e.image("a", "", "sig", &sub, "sig")
	e.index("a", "", e.image("a", "", "c1", nil, "base", "c1"))
	e.image("b", "v1", "b1", nil, "base", "b1")
	e.image("b", "", "b2", nil, "base", "b2", "a2")
	e.putData("data/00/orphan")
	e.reg.Wait()
}

// ageForNextRun makes what the next run needs old: every data object
// (orphan data is collected after purge_after + grace + 1 h) and, with
// sweeps, every sweep entry (deadSweep without heartbeat) and clock
// object of a killed run.
func ageForNextRun(e *env, sweeps bool) {
	e.t.Helper()
	e.age(2*time.Hour, e.keys(registry.DataPrefix)...)
	if sweeps {
		e.age(deadSweep+time.Minute, append(e.keys(tombstone.SweepPrefix), e.keys(clockPrefix)...)...)
	}
}

// A collector killed after any number of writes leaves a store that
// verifies clean (no manifest link naming a missing link, no link
// naming a missing descriptor or data); so does a full run right after,
// which takes the killed run's sweep for a live one and leaves its
// tombstones alone; and once the killed run's sweep entry is old, a full
// run frees everything a run never killed frees.
func TestKilledAtEveryWrite(t *testing.T) {
	tmpl := newEnv(t)
	crashContent(tmpl)
	want, total := func() ([]string, int64) {
		e := copyEnv(t, tmpl.dir)
		ageForNextRun(e, false)
		cs := &cutStore{Store: e.store, after: 1 << 40}
		if _, err := runOn(cs); err != nil {
			t.Fatal(err)
		}
		e.verify()
		return e.registryKeys(), cs.writes.Load()
	}()
	if len(want) >= len(tmpl.registryKeys()) {
		t.Fatalf("the uncut run freed nothing")
	}
	t.Logf("%d writes", total)
	for n := int64(0); n < total; n++ {
		e := copyEnv(t, tmpl.dir)
		ageForNextRun(e, false)
		if _, err := runOn(&cutStore{Store: e.store, after: n}); !errors.Is(err, errCut) {
			t.Fatalf("cut after %d of %d writes: %v, want killed", n, total, err)
		}
		if p := e.verifyProblems(); len(p) > 0 {
			t.Fatalf("cut after %d writes: %q", n, p)
		}
		if _, err := runOn(e.store); err != nil {
			t.Fatalf("cut after %d writes, next run: %v", n, err)
		}
		if p := e.verifyProblems(); len(p) > 0 {
			t.Fatalf("cut after %d writes, after the next run (killed one live): %q", n, p)
		}
		ageForNextRun(e, true)
		if _, err := runOn(e.store); err != nil {
			t.Fatalf("cut after %d writes, last run: %v", n, err)
		}
		e.verify()
		if got := e.registryKeys(); !slices.Equal(got, want) {
			t.Fatalf("cut after %d writes: left %q, want %q", n, got, want)
		}
	}
}

// copyEnv is an env on a copy of the store in dir, in memory (tmpfs)
// where the machine has one: the fs store fsyncs every write, and the
// cut loop makes thousands.
func copyEnv(t *testing.T, dir string) *env {
	t.Helper()
	tmp := t.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if tmp, err = os.MkdirTemp("/dev/shm", "gc-crash-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(tmp) })
	}
	to := filepath.Join(tmp, "store")
	if err := os.CopyFS(to, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	store, err := fs.New(to)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, dir: to, store: store}
}
