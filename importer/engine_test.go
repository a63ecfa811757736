package importer_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/importer"
	"github.com/slipway/slipway/importer/stocklayout/stocktest"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

// counting is Slipway's store in these tests: it counts the writes that
// succeed (and can call a hook before each write), and forwards the
// filesystem's Copier so hard links stay possible.
type counting struct {
	storage.Store
	mu      sync.Mutex
	written []string
	// before, when set, runs before each write; its error fails it.
	before func(key string) error
}

func (c *counting) note(key string, err error) error {
	if err == nil {
		c.mu.Lock()
		c.written = append(c.written, key)
		c.mu.Unlock()
	}
	return err
}

func (c *counting) hook(key string) error {
	if c.before == nil {
		return nil
	}
	return c.before(key)
}

func (c *counting) writes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.written)
}

func (c *counting) reset() {
	c.mu.Lock()
	c.written = nil
	c.mu.Unlock()
}

func (c *counting) Put(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if err := c.hook(key); err != nil {
		return storage.Info{}, err
	}
	info, err := c.Store.Put(ctx, key, r, size)
	return info, c.note(key, err)
}

func (c *counting) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (storage.Info, error) {
	if err := c.hook(key); err != nil {
		return storage.Info{}, err
	}
	info, err := c.Store.PutIfAbsent(ctx, key, r, size)
	return info, c.note(key, err)
}

func (c *counting) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (storage.Info, error) {
	if err := c.hook(key); err != nil {
		return storage.Info{}, err
	}
	info, err := c.Store.PutIfMatch(ctx, key, r, size, etag)
	return info, c.note(key, err)
}

func (c *counting) Delete(ctx context.Context, key string) error {
	if err := c.hook(key); err != nil {
		return err
	}
	return c.note(key, c.Store.Delete(ctx, key))
}

func (c *counting) CopyFrom(ctx context.Context, key string, src storage.Location, size int64) (storage.Info, error) {
	if err := c.hook(key); err != nil {
		return storage.Info{}, err
	}
	info, err := c.Store.(storage.Copier).CopyFrom(ctx, key, src, size)
	return info, c.note(key, err)
}

// fixture is a stock registry with two repositories sharing layers: app
// (two images, an index over them, a referrer of the index; tags 1.0 →
// index, amd → an image) and tools (one image sharing app's layer; tag
// latest).
type fixture struct {
	st                *stocktest.Layout
	idx, amd, ref, tl digest.Digest
	layers            map[string]digest.Digest
}

func newFixture(t *testing.T) *fixture {
	st := stocktest.New(t)
	f := &fixture{st: st, layers: map[string]digest.Digest{}}
	amd := image(st, "app", "amd64", "shared layer", "amd layer")
	arm := image(st, "app", "arm64", "shared layer", "arm layer")
	f.amd = st.Manifest("app", amd)
	arms := st.Manifest("app", arm)
	idxRaw := index(map[digest.Digest]int{f.amd: len(amd), arms: len(arm)})
	f.idx = st.Manifest("app", idxRaw)
	sbom, empty := st.Blob("sbom"), st.Blob("{}")
	st.Layer("app", sbom)
	st.Layer("app", empty)
	f.ref = st.Manifest("app", `{"schemaVersion":2,"mediaType":"`+v1.MediaTypeImageManifest+`","artifactType":"application/spdx+json","config":`+
		desc(v1.DescriptorEmptyJSON.MediaType, empty, 2)+`,"layers":[`+desc("application/spdx+json", sbom, 4)+
		`],"subject":`+desc(v1.MediaTypeImageIndex, f.idx, len(idxRaw))+`}`)
	st.Tag("app", "1.0", f.idx)
	st.Tag("app", "amd", f.amd)
	f.tl = st.Manifest("tools", image(st, "tools", "tools", "shared layer", "tools layer"))
	st.Tag("tools", "latest", f.tl)
	for _, l := range []string{"shared layer", "amd layer", "arm layer", "tools layer"} {
		f.layers[l] = digest.FromString(l)
	}
	return f
}

// slipway is Slipway's storage: a folder on the same filesystem as the
// stock one, behind the counting store.
func newSlipway(t *testing.T) *counting {
	s, err := fs.New(filepath.Join(t.TempDir(), "slipway"))
	if err != nil {
		t.Fatal(err)
	}
	return &counting{Store: s}
}

var quiet = slog.New(slog.DiscardHandler)

// options are a run's options on a fresh registry (a fresh process: no
// cache carried over).
func options(t *testing.T, f *fixture, dst storage.Store) importer.Options {
	src, err := fs.NewReadOnly(f.st.Dir)
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(dst, registry.Options{Logger: quiet})
	stages := config.Default().Stages
	return importer.Options{
		Source: src, SourceName: "/stock", Registry: reg, Store: dst, Stages: stages,
		Tagger: promote.New(dst, reg.Metadata(), promote.Options{Stages: stages, Logger: quiet}), Actor: "tester",
	}
}

func run(t *testing.T, opts importer.Options) importer.Summary {
	t.Helper()
	sum, err := importer.Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("import: %v (summary %+v)", err, sum)
	}
	return sum
}

// serves checks that Slipway serves every stock tag with its digest, the
// referrer, and that Verify finds the store consistent.
func (f *fixture) serves(t *testing.T, dst storage.Store, prefix string) {
	t.Helper()
	ctx := context.Background()
	meta := registry.New(dst, registry.Options{Logger: quiet}).Metadata()
	for ref, want := range map[string]digest.Digest{"app:1.0": f.idx, "app:amd": f.amd, "tools:latest": f.tl} {
		repo, tag, _ := strings.Cut(ref, ":")
		m, err := meta.Resolve(ctx, prefix+repo, tag)
		if err != nil || m.Digest != want {
			t.Fatalf("%s%s: %v %v, want %s", prefix, ref, m.Digest, err, want)
		}
	}
	refs, err := meta.Referrers(ctx, prefix+"app", f.idx)
	if err != nil || len(refs) != 1 || refs[0].Digest != f.ref {
		t.Fatalf("referrers of the index: %v %v, want %s", refs, err, f.ref)
	}
	for name, d := range f.layers {
		repo := prefix + "app"
		if name == "tools layer" {
			repo = prefix + "tools"
		}
		b, err := meta.ReadBlob(ctx, d, 1<<20)
		if err != nil || string(b) != name {
			t.Fatalf("blob %s in %s: %q %v", d, repo, b, err)
		}
	}
	if problems, err := registry.Verify(ctx, dst); err != nil || len(problems) != 0 {
		t.Fatalf("verify: %v %v", problems, err)
	}
}

func TestImportServesEverythingAndASecondRunWritesNothing(t *testing.T) {
	f := newFixture(t)
	dst := newSlipway(t)
	sum := run(t, options(t, f, dst))
	// Per repository: app's 2 configs, 3 layers, sbom and empty config;
	// tools' config and layer imported, the shared layer found present.
	want := importer.Counts{Imported: 9, Present: 1}
	if sum.Blobs != want || sum.Manifests.Imported != 4 || sum.Referrers.Imported != 1 || sum.Tags.Imported != 3 || sum.Repositories.Imported != 2 {
		t.Fatalf("first run: %+v", sum)
	}
	if sum.ProblemsTotal != 0 || len(sum.Conflicts) != 0 {
		t.Fatalf("problems %v conflicts %v", sum.Problems, sum.Conflicts)
	}
	if sum.Bytes[importer.CopiedByStore] == 0 || sum.Bytes[importer.Streamed] != 0 {
		t.Fatalf("bytes per way %v: want hard links only (one filesystem)", sum.Bytes)
	}
	f.serves(t, dst, "")

	dst.reset()
	again := run(t, options(t, f, dst))
	if w := dst.writes(); len(w) != 0 || again.Written() != 0 {
		t.Fatalf("second run wrote %v (summary %+v)", w, again)
	}
	if again.Blobs.Present != 10 || again.Tags.Present != 3 || again.Manifests.Present != 4 || again.Referrers.Present != 1 {
		t.Fatalf("second run: %+v", again)
	}
}

// TestRepositoriesSelectsByGlob: --repositories tools* imports tools
// (its tag, its blobs) and nothing of app; a second run with app* then
// brings app as a full run would (the layer tools shares found present).
func TestRepositoriesSelectsByGlob(t *testing.T) {
	f := newFixture(t)
	dst := newSlipway(t)
	opts := options(t, f, dst)
	opts.Repositories = "tools*"
	sum := run(t, opts)
	if sum.Repositories.Imported != 1 || sum.Tags.Imported != 1 || sum.Blobs.Imported != 3 || sum.Manifests.Imported != 1 || sum.Referrers.Imported != 0 {
		t.Fatalf("tools* imported %+v", sum)
	}
	for _, k := range dst.writes() {
		if strings.Contains(k, "repositories/app/") {
			t.Fatalf("tools* wrote %s", k)
		}
	}
	meta := registry.New(dst, registry.Options{Logger: quiet}).Metadata()
	if m, err := meta.Resolve(context.Background(), "tools", "latest"); err != nil || m.Digest != f.tl {
		t.Fatalf("tools:latest = %v %v, want %s", m.Digest, err, f.tl)
	}
	if _, err := meta.Resolve(context.Background(), "app", "1.0"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("app:1.0 after tools* = %v, want not found", err)
	}

	opts = options(t, f, dst)
	opts.Repositories = "app*"
	sum = run(t, opts)
	if sum.Repositories.Imported != 1 || sum.Tags.Imported != 2 || sum.Referrers.Imported != 1 || sum.Blobs.Present != 1 {
		t.Fatalf("app* imported %+v", sum)
	}
	f.serves(t, dst, "")
}

func TestDryRunWritesNothing(t *testing.T) {
	f := newFixture(t)
	dst := newSlipway(t)
	opts := options(t, f, dst)
	opts.DryRun = true
	sum := run(t, opts)
	if w := dst.writes(); len(w) != 0 {
		t.Fatalf("dry run wrote %v", w)
	}
	if sum.Blobs.Imported != 10 || sum.Tags.Imported != 3 || sum.Referrers.Imported != 1 || sum.Bytes[importer.Copy] == 0 {
		t.Fatalf("dry run reports %+v", sum)
	}
}

func TestConflictIsSkippedUnlessOverwriteMutable(t *testing.T) {
	f := newFixture(t)
	dst := newSlipway(t)
	run(t, options(t, f, dst))
	// Slipway's app:amd now names another manifest of app (a push).
	meta := registry.New(dst, registry.Options{Logger: quiet}).Metadata()
	if err := meta.SetTag(context.Background(), "app", "amd", f.idx, "", ""); err == nil {
		t.Fatal("put-if-absent over an existing tag succeeded")
	}
	st, _ := meta.Tag(context.Background(), "app", "amd")
	if err := meta.SetTag(context.Background(), "app", "amd", f.idx, "", st.ETag); err != nil {
		t.Fatal(err)
	}
	sum := run(t, options(t, f, dst))
	if len(sum.Conflicts) != 1 || sum.Conflicts[0].Overwritten || sum.Conflicts[0].Slipway != f.idx || sum.Tags.Skipped != 1 {
		t.Fatalf("conflict: %+v", sum)
	}
	if got, _ := meta.Tag(context.Background(), "app", "amd"); got.Digest != f.idx {
		t.Fatalf("conflicting tag changed without --overwrite-mutable: %s", got.Digest)
	}
	opts := options(t, f, dst)
	opts.OverwriteMutable = true
	sum = run(t, opts)
	if len(sum.Conflicts) != 1 || !sum.Conflicts[0].Overwritten || sum.Tags.Imported != 1 {
		t.Fatalf("overwrite: %+v", sum)
	}
	f.serves(t, dst, "")
}

func TestImmutableStageGetsLedgerRecords(t *testing.T) {
	f := newFixture(t)
	dst := newSlipway(t)
	opts := options(t, f, dst)
	var err error
	if opts.StageMap, err = importer.ParseStageMap([]string{"=production/"}); err != nil {
		t.Fatal(err)
	}
	outbox := &events{}
	opts.Tagger = promote.New(dst, opts.Registry.Metadata(), promote.Options{Stages: opts.Stages, Logger: quiet, Outbox: outbox})
	sum := run(t, opts)
	if sum.Tags.Imported != 3 || sum.ProblemsTotal != 0 {
		t.Fatalf("import into production: %+v", sum)
	}
	if outbox.n.Load() != 0 {
		t.Fatalf("an import queued %d webhook events; a migration is not a deployment", outbox.n.Load())
	}
	f.serves(t, dst, "production/")
	ledger := promote.New(dst, registry.New(dst, registry.Options{Logger: quiet}).Metadata(), promote.Options{Stages: config.Default().Stages, Logger: quiet})
	page, err := ledger.History(context.Background(), promote.Query{Limit: 10})
	if err != nil || len(page.Records) != 3 {
		t.Fatalf("ledger: %v %v, want 3 records", page.Records, err)
	}
	for _, r := range page.Records {
		if r.Outcome != promote.OutcomeImported || r.Actor != "tester" || r.Stage != "production" ||
			r.Source != "import:/stock/"+strings.TrimPrefix(r.Repository, "production/")+":"+r.Tag {
			t.Fatalf("record %+v", r)
		}
	}
	// A rerun finds every tag at its digest: no record, no write; a
	// conflicting tag is never re-pointed, even with --overwrite-mutable.
	dst.reset()
	opts = options(t, f, dst)
	opts.StageMap, opts.OverwriteMutable = importer.StageMap{}, true
	opts.StageMap, _ = importer.ParseStageMap([]string{"=production/"})
	if sum := run(t, opts); len(dst.writes()) != 0 || sum.Tags.Present != 3 {
		t.Fatalf("rerun wrote %v: %+v", dst.writes(), sum)
	}
}

// events counts the webhook events queued.
type events struct{ n atomic.Int64 }

func (o *events) EnqueueOnce(context.Context, string, time.Time, string, any) error {
	o.n.Add(1)
	return nil
}

func TestStopAtFirstProblem(t *testing.T) {
	f := newFixture(t)
	f.st.Put(stocktest.RepoKey("app")+"_manifests/tags/bad/current/link", []byte("not a digest"))
	for _, stop := range []bool{false, true} {
		dst := newSlipway(t)
		opts := options(t, f, dst)
		opts.StopAtFirstProblem = stop
		sum, err := importer.Run(context.Background(), opts)
		if err != nil || sum.ProblemsTotal != 1 {
			t.Fatalf("stop %v: %v %+v", stop, err, sum)
		}
		// The problem is app's (planned first): stopping imports nothing
		// after it; going on imports everything else.
		if got, want := sum.Tags.Imported, map[bool]int64{false: 3, true: 0}[stop]; got != want {
			t.Fatalf("stop at the first problem %v: %d tags imported, want %d (%+v)", stop, got, want, sum)
		}
	}
}

func TestVerifyReportsACorruptBlobAndWhatNeedsIt(t *testing.T) {
	f := newFixture(t)
	// Same size, other bytes: a hard link would import it as it is.
	f.st.Put("docker/registry/v2/blobs/sha256/"+f.layers["arm layer"].Encoded()[:2]+"/"+f.layers["arm layer"].Encoded()+"/data", []byte("ARM LAYER"))
	dst := newSlipway(t)
	opts := options(t, f, dst)
	opts.Verify = true
	sum, err := importer.Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	// The arm layer, the arm image, the index, the index's referrer
	// (imported: a subject need not exist) and tag 1.0.
	if sum.Blobs.Skipped != 1 || sum.Manifests.Skipped != 2 || sum.Tags.Skipped != 1 || sum.Tags.Imported != 2 {
		t.Fatalf("verify: %+v", sum)
	}
	if !strings.Contains(sum.Problems[0].Message, "do not hash") && !strings.Contains(sum.Problems[0].Key, f.layers["arm layer"].Encoded()) {
		t.Fatalf("problems %+v: want the arm layer named first", sum.Problems)
	}
	meta := registry.New(dst, registry.Options{Logger: quiet}).Metadata()
	if ok, _ := meta.HasBlob(context.Background(), f.layers["arm layer"]); ok {
		t.Fatal("the corrupt blob was imported")
	}
	if _, err := meta.Resolve(context.Background(), "app", "1.0"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("app:1.0 needs the corrupt blob: %v", err)
	}
}

// state is what Slipway's store holds, for comparing two imports: every
// key but the tag journal's (random ids), data objects' (random names;
// a kill may leave an unnamed copy, the collector's orphan) and ledger
// records' (ids of time and chance), with the content of links, tags and
// manifests.
func state(t *testing.T, s storage.Store) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for after := ""; ; {
		page, err := s.List(ctx, storage.ListOptions{StartAfter: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Objects {
			switch k := o.Key; {
			case strings.Contains(k, "/_tagjournal/") || strings.Contains(k, "/_tagindex/"),
				strings.HasPrefix(k, registry.DataPrefix), strings.HasPrefix(k, "ledger/"):
			case strings.HasPrefix(k, registry.BlobsPrefix):
				out[k] = "descriptor"
			default:
				out[k] = read(t, s, k)
			}
		}
		if !page.Truncated {
			break
		}
		after = page.Objects[len(page.Objects)-1].Key
	}
	return out
}

// A run killed at each of its writes in turn, then run again, leaves what
// one clean run leaves; a third run writes nothing. Into a mutable stage,
// and into an immutable one (tags through the ledger: a kill between the
// record's claim and the tag is rolled forward, never recorded twice).
func TestKilledRunThenRerunEqualsOneCleanRun(t *testing.T) {
	f := newFixture(t)
	for _, stage := range []string{"", "production/"} {
		withMap := func(dst storage.Store) importer.Options {
			opts := options(t, f, dst)
			if stage != "" {
				opts.StageMap, _ = importer.ParseStageMap([]string{"=" + stage})
			}
			return opts
		}
		clean := newSlipway(t)
		run(t, withMap(clean))
		want := state(t, clean)
		total := len(clean.writes())
		for n := 1; n <= total; n += max(1, total/25) {
			dst := newSlipway(t)
			ctx, cancel := context.WithCancel(context.Background())
			count := 0
			var mu sync.Mutex
			dst.before = func(string) error {
				mu.Lock()
				defer mu.Unlock()
				if count++; count >= n {
					cancel()
					return context.Canceled
				}
				return nil
			}
			// The error is the kill's, or none when the write killed was a
			// tag journal's mark after the last tag write (background work).
			_, _ = importer.Run(ctx, withMap(dst))
			if count < n {
				// Repositories are imported several at once, so a run's
				// write count varies a little with their interleaving (two
				// repositories sharing a blob race for its descriptor): near
				// the end, a run may finish before write n, unkilled.
				if n <= total-total/10 {
					t.Fatalf("the run made %d writes, not %d (a clean run made %d)", count, n, total)
				}
				t.Logf("%s: the run finished after %d writes, before the kill at write %d of %d", stage, count, n, total)
				cancel()
				continue
			}
			cancel()
			dst.before = nil
			if sum := run(t, withMap(dst)); sum.ProblemsTotal != 0 {
				t.Fatalf("%s: rerun after a kill at write %d: %+v", stage, n, sum.Problems)
			}
			got := state(t, dst)
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("%s: kill at write %d of %d, then rerun: %s is %q, a clean run has %q", stage, n, total, k, got[k], v)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Fatalf("%s: kill at write %d of %d, then rerun: %s, which a clean run does not write", stage, n, total, k)
				}
			}
			f.serves(t, dst, stage)
			if stage != "" {
				ledger := promote.New(dst, registry.New(dst, registry.Options{Logger: quiet}).Metadata(), promote.Options{Stages: config.Default().Stages, Logger: quiet})
				page, err := ledger.History(context.Background(), promote.Query{Limit: 10})
				if err != nil || len(page.Records) != 3 {
					t.Fatalf("%s: kill at write %d: ledger %v %v, want 3 records", stage, n, page.Records, err)
				}
			}
			dst.reset()
			if run(t, withMap(dst)); len(dst.writes()) != 0 {
				t.Fatalf("%s: third run after a kill at write %d wrote %v", stage, n, dst.writes())
			}
		}
	}
}
