package retention_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/retention"
	"github.com/slipway/slipway/storage/fs"
)

var stages = []config.Stage{
	{Name: "staging", Prefix: "staging/"},
	{Name: "qa", Prefix: "qa/", PromoteFrom: []string{"staging"}},
	{Name: "production", Prefix: "production/", PromoteFrom: []string{"staging", "qa"}, Immutable: true},
}

// fixture is a registry whose staging/app has 50 tags t00..t49, each its
// own image, tag tNN pushed NN days and an hour ago (t00 newest).
type fixture struct {
	t       *testing.T
	dir     string
	store   *fs.Store
	meta    *registry.Metadata
	svc     *promote.Service
	digests map[string]digest.Digest // staging/app tag -> digest
}

const tagCount = 50

func newFixture(t *testing.T) *fixture {
	t.Helper()
	gin.SetMode(gin.TestMode)
	dir := t.TempDir()
	store, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := registry.New(store, registry.Options{Logger: quiet})
	g := gin.New()
	reg.Register(g)
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	f := &fixture{t: t, dir: dir, store: store, meta: reg.Metadata(), digests: map[string]digest.Digest{},
		svc: promote.New(store, reg.Metadata(), promote.Options{Stages: stages, Logger: quiet})}
	host := strings.TrimPrefix(srv.URL, "http://")
	for i := range tagCount {
		tag := fmt.Sprintf("t%02d", i)
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, _ := name.ParseReference(host+"/staging/app:"+tag, name.Insecure)
		if err := remote.Write(ref, img); err != nil {
			t.Fatalf("push %s: %v", tag, err)
		}
		d, _ := img.Digest()
		f.digests[tag] = digest.Digest(d.String())
		f.age("staging/app", tag, time.Duration(i)*24*time.Hour+time.Hour)
	}
	return f
}

// age makes repo:tag look written that long ago (its file's time is what
// the store reports as the tag's ModTime).
func (f *fixture) age(repo, tag string, ago time.Duration) {
	f.t.Helper()
	at := time.Now().Add(-ago)
	if err := os.Chtimes(filepath.Join(f.dir, "repositories", repo, "_tags", tag), at, at); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) promote(source, to, tag string) {
	f.t.Helper()
	if _, _, err := f.svc.Promote(context.Background(), promote.Request{Source: source, To: to, Tag: tag}); err != nil {
		f.t.Fatalf("promote %s to %s: %v", source, to, err)
	}
}

func (f *fixture) apply(o retention.ApplyOptions, rules ...config.RetentionRule) retention.Report {
	f.t.Helper()
	cfg := config.Default()
	cfg.Stages, cfg.Retention.Rules = stages, rules
	if err := cfg.Validate(); err != nil {
		f.t.Fatalf("rules do not validate: %v", err)
	}
	r := retention.New(f.store, f.meta, retention.Options{Rules: rules, Stages: stages, Ledger: f.svc})
	rep, err := r.Apply(context.Background(), o)
	if err != nil || len(rep.Errors) > 0 {
		f.t.Fatalf("Apply: %v %q", err, rep.Errors)
	}
	return rep
}

// tags are the tags of repo now, sorted.
func (f *fixture) tags(repo string) []string {
	f.t.Helper()
	states, err := f.meta.TagStates(context.Background(), repo)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for tag := range states {
		out = append(out, tag)
	}
	slices.Sort(out)
	return out
}

// deleted lists "repo:tag" of a report's deletions, sorted.
func deleted(rep retention.Report) []string {
	var out []string
	for _, d := range rep.Deleted {
		out = append(out, d.Repository+":"+d.Tag)
	}
	slices.Sort(out)
	return out
}

// staging lists staging/app:tNN for NN in [from, to).
func staging(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("staging/app:t%02d", i))
	}
	return out
}

func tagsOf(refs []string) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r[strings.LastIndexByte(r, ':')+1:]
	}
	return out
}

func wantEqual(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

var real = func() *bool { b := false; return &b }()

func TestKeepLast(t *testing.T) {
	f := newFixture(t)
	// A signature of a tag that goes, and of one that stays (cosign's tag
	// scheme): the first goes with its subject.
	ctx := context.Background()
	// A signature whose subject no tag ever named (pushed by digest)
	// stays too: retention only removes what goes with a tag it deletes.
	gone, stays, untagged := f.digests["t49"], f.digests["t00"], digest.FromString("pushed by digest")
	for _, d := range []digest.Digest{gone, stays, untagged} {
		if err := f.meta.SetTag(ctx, "staging/app", "sha256-"+d.Encoded()+".sig", d, "", ""); err != nil {
			t.Fatal(err)
		}
		f.age("staging/app", "sha256-"+d.Encoded()+".sig", 100*24*time.Hour)
	}
	rep := f.apply(retention.ApplyOptions{}, config.RetentionRule{Repositories: "staging/*", KeepLast: 10, DryRun: real})
	want := append(staging(10, 50), "staging/app:sha256-"+gone.Encoded()+".sig")
	slices.Sort(want)
	wantEqual(t, "deleted", deleted(rep), want)
	left := append([]string{"sha256-" + stays.Encoded() + ".sig", "sha256-" + untagged.Encoded() + ".sig"}, tagsOf(staging(0, 10))...)
	slices.Sort(left)
	wantEqual(t, "tags left", f.tags("staging/app"), left)
	stored, err := retention.Reports(ctx, f.store, 10)
	if err != nil || len(stored) != 1 || stored[0].ID != rep.ID || len(stored[0].Deleted) != len(rep.Deleted) || stored[0].Finished.Before(stored[0].Started) {
		t.Fatalf("stored reports %+v (%v), want the pass's %s", stored, err, rep.ID)
	}
}

func TestKeepWithinAndKeepTags(t *testing.T) {
	f := newFixture(t)
	// t29 was pushed 29 days and an hour ago, t30 30 days and an hour.
	rep := f.apply(retention.ApplyOptions{}, config.RetentionRule{Repositories: "staging/*", KeepWithin: 720 * time.Hour, KeepTags: []string{"t4*"}, DryRun: real})
	wantEqual(t, "deleted", deleted(rep), staging(30, 40))
	wantEqual(t, "tags left", f.tags("staging/app"), append(tagsOf(staging(0, 30)), tagsOf(staging(40, 50))...))
}

// A new rule (no dry_run) only reports; what it reports is exactly what
// the same rule deletes with dry_run: false. ApplyOptions.DryRun makes
// any rule report only.
func TestDryRunReportsWhatTheRunDeletes(t *testing.T) {
	f := newFixture(t)
	rule := config.RetentionRule{Repositories: "staging/*", KeepLast: 5, KeepWithin: 480 * time.Hour, KeepTags: []string{"t3?"}}
	dry := f.apply(retention.ApplyOptions{}, rule)
	all := tagsOf(staging(0, 50))
	wantEqual(t, "tags after a dry run", f.tags("staging/app"), all)
	for _, d := range dry.Deleted {
		if !d.DryRun || d.Reason == "" || d.Digest != f.digests[d.Tag] {
			t.Fatalf("dry-run entry %+v", d)
		}
	}
	rule.DryRun = real
	forced := f.apply(retention.ApplyOptions{DryRun: true}, rule)
	wantEqual(t, "tags after a forced dry run", f.tags("staging/app"), all)
	wantEqual(t, "forced dry run", deleted(forced), deleted(dry))
	done := f.apply(retention.ApplyOptions{}, rule)
	want := append(staging(20, 30), staging(40, 50)...)
	wantEqual(t, "dry run", deleted(dry), want)
	wantEqual(t, "real run", deleted(done), want)
	for _, d := range done.Deleted {
		if d.DryRun {
			t.Fatalf("a real run's entry says dry run: %+v", d)
		}
	}
	wantEqual(t, "tags left", f.tags("staging/app"), append(tagsOf(staging(0, 20)), tagsOf(staging(30, 40))...))
}

// Immutable stages are skipped whatever the rule's glob, and tags a
// promotion wrote stay even where everything else older goes.
func TestProductionAndPromotedTagsUntouched(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.promote("staging/app:t45", "production", "")
	f.promote("staging/app:t46", "qa", "")
	d := f.digests["t46"]
	// Plain writes (as a /v2/ push would make), older than everything.
	for _, w := range []struct{ repo, tag string }{{"production/app", "pushed1"}, {"production/app", "pushed2"}, {"qa/app", "old1"}, {"qa/app", "old2"}} {
		dd := d
		if w.repo == "production/app" {
			dd = f.digests["t45"]
		}
		if err := f.meta.SetTag(ctx, w.repo, w.tag, dd, "", ""); err != nil {
			t.Fatal(err)
		}
		f.age(w.repo, w.tag, 200*24*time.Hour)
	}
	f.age("qa/app", "t46", 300*24*time.Hour)
	f.age("production/app", "t45", 300*24*time.Hour)
	rep := f.apply(retention.ApplyOptions{}, config.RetentionRule{Repositories: "*", KeepLast: 1, DryRun: real})
	for _, ref := range deleted(rep) {
		if strings.HasPrefix(ref, "production/") || ref == "qa/app:t46" {
			t.Fatalf("retention deleted %s", ref)
		}
	}
	wantEqual(t, "production tags", f.tags("production/app"), []string{"pushed1", "pushed2", "t45"})
	wantEqual(t, "qa tags", f.tags("qa/app"), []string{"old2", "t46"}) // old2: the newest of the plain ones
	wantEqual(t, "staging tags", f.tags("staging/app"), []string{"t00"})
}

// keep_promotions N keeps the tags naming the digests of the newest N
// records of each promoted tag, in its target and source repositories.
func TestKeepPromotions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, src := range []string{"t40", "t41", "t42"} {
		f.promote("staging/app:"+src, "qa", "stable") // qa/app:stable moves 40 -> 41 -> 42
	}
	// Plain qa tags naming each digest, all old.
	for _, src := range []string{"t40", "t41", "t42"} {
		if err := f.meta.SetTag(ctx, "qa/app", "copy-"+src, f.digests[src], "", ""); err != nil {
			t.Fatal(err)
		}
		f.age("qa/app", "copy-"+src, 100*24*time.Hour)
	}
	rep := f.apply(retention.ApplyOptions{}, config.RetentionRule{Repositories: "*", Stages: []string{"staging", "qa"}, KeepLast: 1, KeepPromotions: 2, DryRun: real})
	want := append(staging(1, 41), staging(43, 50)...)
	want = append(want, "qa/app:copy-t40")
	slices.Sort(want)
	wantEqual(t, "deleted", deleted(rep), want)
	wantEqual(t, "qa tags", f.tags("qa/app"), []string{"copy-t41", "copy-t42", "stable"})
}

// keep_promotions is per rule: a rule without it keeps no ledger target,
// whatever another rule's keep_promotions.
func TestKeepPromotionsPerRule(t *testing.T) {
	f := newFixture(t)
	for _, src := range []string{"t40", "t41", "t42"} {
		f.promote("staging/app:"+src, "qa", "stable")
	}
	rep := f.apply(retention.ApplyOptions{},
		config.RetentionRule{Repositories: "qa/*", KeepLast: 1, KeepPromotions: 5, DryRun: real},
		config.RetentionRule{Repositories: "staging/*", KeepLast: 1, DryRun: real})
	wantEqual(t, "deleted", deleted(rep), staging(1, 50))
	wantEqual(t, "qa tags", f.tags("qa/app"), []string{"stable"})
}

func TestUntaggedAfter(t *testing.T) {
	r := retention.New(nil, nil, retention.Options{Stages: stages, Rules: []config.RetentionRule{
		{Repositories: "staging/special", UntaggedAfter: 72 * time.Hour},
		{Repositories: "*", KeepLast: 3, UntaggedAfter: 48 * time.Hour},
	}})
	for repo, want := range map[string]time.Duration{"staging/special": 72 * time.Hour, "staging/app": 48 * time.Hour, "production/app": 0} {
		if got := r.UntaggedAfter(repo); got != want {
			t.Errorf("UntaggedAfter(%s) = %s, want %s", repo, got, want)
		}
	}
}

// A pass keeps the newest KeptReports reports, its own first.
func TestPassPrunesOldReports(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i := 0; i < retention.KeptReports+3; i++ {
		// Names that sort after any report made now (inverted time): older.
		key := fmt.Sprintf("%sffffffffffff%04d-old", retention.ReportsPrefix, i)
		if _, err := f.store.Put(ctx, key, strings.NewReader(`{"id":"old"}`), 12); err != nil {
			t.Fatal(err)
		}
	}
	rep := f.apply(retention.ApplyOptions{}, config.RetentionRule{Repositories: "staging/*", KeepLast: 100})
	reps, err := retention.Reports(ctx, f.store, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != retention.KeptReports || reps[0].ID != rep.ID {
		t.Fatalf("%d reports left, newest %q; want %d, %q", len(reps), reps[0].ID, retention.KeptReports, rep.ID)
	}
}
