package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gc"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/retention"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
	"github.com/slipway/slipway/storage/pause"
)

// fakeGC stands for package gc: each run reports its id through
// Progress, then waits for release (if set), and returns report.
type fakeGC struct {
	mu      sync.Mutex
	report  gc.Report
	err     error
	release chan struct{}
	opts    []gc.Options
	reports []gc.Report
	// quiet: Run calls Progress only at the end, and stores its
	// unfinished report first, as the collector does when it begins.
	quiet    bool
	active   atomic.Int32
	maxAlive atomic.Int32
	runs     atomic.Int32
}

type fakeRun struct {
	f    *fakeGC
	opts gc.Options
}

func (f *fakeGC) backend() gcBackend {
	return gcBackend{
		collector: func(opts gc.Options) collectorRun {
			f.mu.Lock()
			f.opts = append(f.opts, opts)
			f.mu.Unlock()
			return fakeRun{f, opts}
		},
		reports: func(_ context.Context, n int) ([]gc.Report, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return append([]gc.Report(nil), f.reports[:min(n, len(f.reports))]...), f.err
		},
	}
}

func (r fakeRun) Run(ctx context.Context) (gc.Report, error) {
	f := r.f
	n := f.active.Add(1)
	defer f.active.Add(-1)
	for m := f.maxAlive.Load(); n > m && !f.maxAlive.CompareAndSwap(m, n); m = f.maxAlive.Load() {
	}
	f.runs.Add(1)
	f.mu.Lock()
	rep, release := f.report, f.release
	f.mu.Unlock()
	rep.DryRun = r.opts.DryRun
	if f.quiet {
		f.mu.Lock()
		f.reports = append([]gc.Report{{Run: rep.Run}}, f.reports...)
		f.mu.Unlock()
	} else {
		r.opts.Progress(gc.Report{Run: rep.Run, Pending: 3})
	}
	if release != nil {
		select {
		case <-release:
		case <-ctx.Done():
			return rep, ctx.Err()
		}
	}
	return rep, nil
}

func gcTestServer(t *testing.T) (*Server, *fakeGC, *logBuffer) {
	t.Helper()
	s, logs := newTestServer(t, nil)
	f := &fakeGC{report: gc.Report{Run: "run-1", Freed: gc.Counts{Objects: 7, Bytes: 4096}}}
	s.gc.backend = f.backend()
	return s, f, logs
}

func TestGCAPIAuth(t *testing.T) {
	s, f, _ := gcTestServer(t)
	h := s.Handler()
	for _, tc := range []struct {
		method string
		hdr    []string
		status int
		code   string
	}{
		{http.MethodGet, nil, 401, "unauthorized"},
		{http.MethodPost, nil, 401, "unauthorized"},
		{http.MethodGet, basic(ciUser, ciPass), 403, "forbidden"},
		{http.MethodPost, basic(ciUser, ciPass), 403, "forbidden"},
	} {
		rec := send(h, tc.method, "/api/v1/gc/runs", "", tc.hdr...)
		if rec.Code != tc.status || apiCode(t, rec.Body.Bytes()) != tc.code {
			t.Errorf("%s %v: %d %s, want %d %s", tc.method, tc.hdr, rec.Code, rec.Body, tc.status, tc.code)
		}
	}
	if n := f.runs.Load(); n != 0 {
		t.Fatalf("%d runs started by refused requests", n)
	}
}

func TestGCAPIListRuns(t *testing.T) {
	s, f, _ := gcTestServer(t)
	h := s.Handler()
	admin := basic(adminUser, adminPass)
	runs := func(q string) (int, []gc.Report) {
		rec := send(h, http.MethodGet, "/api/v1/gc/runs"+q, "", admin...)
		var body struct{ Runs []gc.Report }
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body.Runs
	}
	if code, got := runs(""); code != 200 || got == nil || len(got) != 0 {
		t.Fatalf("no runs yet: %d %v, want 200 and []", code, got)
	}
	for _, id := range []string{"c", "b", "a"} { // the backend lists newest first
		f.reports = append(f.reports, gc.Report{Run: id, Deleted: []string{"data/ab/" + id}})
	}
	if code, got := runs("?limit=2"); code != 200 || len(got) != 2 || got[0].Run != "c" || got[1].Run != "b" || got[0].Deleted != nil {
		t.Fatalf("limit=2: %d %+v, want c and b without their keys", code, got)
	}
	if code, got := runs("?keys=true"); code != 200 || len(got) != 3 || len(got[0].Deleted) != 1 || got[0].Deleted[0] != "data/ab/c" {
		t.Fatalf("keys=true: %d %+v, want the keys", code, got)
	}
	for _, q := range []string{"?limit=0", "?limit=51", "?limit=x"} {
		if code, _ := runs(q); code != 400 {
			t.Fatalf("%s: %d, want 400", q, code)
		}
	}
	f.err = fmt.Errorf("reading gc/runs/0001: %w", storage.ErrUnavailable)
	if rec := send(h, http.MethodGet, "/api/v1/gc/runs", "", admin...); rec.Code != 503 || strings.Contains(rec.Body.String(), "gc/runs") {
		t.Fatalf("store down: %d %s, want 503 without internals", rec.Code, rec.Body)
	}
}

func TestGCAPIStartRun(t *testing.T) {
	s, f, logs := gcTestServer(t)
	h := s.Handler()
	admin := basic(adminUser, adminPass)
	f.release = make(chan struct{})
	rec := send(h, http.MethodPost, "/api/v1/gc/runs", "", admin...)
	var started struct {
		Run    string `json:"run"`
		DryRun bool   `json:"dry_run"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &started); err != nil || rec.Code != http.StatusAccepted || started.Run != "run-1" || started.DryRun {
		t.Fatalf("POST = %d %s, want 202 with the run id", rec.Code, rec.Body)
	}
	// While it runs: this replica refuses a second one.
	rec = send(h, http.MethodPost, "/api/v1/gc/runs", `{"dry_run":true}`, append(admin, "Content-Type", "application/json")...)
	if rec.Code != http.StatusConflict || apiCode(t, rec.Body.Bytes()) != codeGCRunning {
		t.Fatalf("second POST = %d %s, want 409 %s", rec.Code, rec.Body, codeGCRunning)
	}
	close(f.release)
	waitFor(t, func() bool { return !s.gc.running.Load() })

	// Another collector (a replica, `slipway gc`) holds the lease.
	other, err := gc.AcquireLease(context.Background(), s.store, "replica-b", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rec = send(h, http.MethodPost, "/api/v1/gc/runs", "", admin...)
	if rec.Code != http.StatusConflict || apiCode(t, rec.Body.Bytes()) != codeGCRunning || !strings.Contains(rec.Body.String(), "replica-b") {
		t.Fatalf("POST with the lease held = %d %s, want 409 naming the holder", rec.Code, rec.Body)
	}
	if err := other.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.release = nil
	rec = send(h, http.MethodPost, "/api/v1/gc/runs", `{"dry_run":true}`, append(admin, "Content-Type", "application/json")...)
	if rec.Code != http.StatusAccepted || !strings.Contains(rec.Body.String(), `"dry_run":true`) {
		t.Fatalf("dry-run POST = %d %s", rec.Code, rec.Body)
	}
	waitFor(t, func() bool { return !s.gc.running.Load() })
	if len(f.opts) != 2 || f.opts[0].DryRun || !f.opts[1].DryRun || f.opts[0].Grace != 24*time.Hour {
		t.Fatalf("collector options %+v", f.opts)
	}

	text := send(h, http.MethodGet, "/metrics", "").Body.String()
	for _, want := range []string{
		`slipway_gc_runs_total{outcome="success"} 2`,
		`slipway_gc_runs_total{outcome="lease_held"} 1`,
		`slipway_gc_runs_total{outcome="error"} 0`,
		"slipway_gc_bytes_freed_total 4096", // the dry run's freed bytes are not counted
		"slipway_gc_objects_freed_total 7",
		"slipway_gc_duration_seconds_count 2",
		"slipway_gc_pending_deletions 0",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(text, "slipway_gc_last_success_timestamp_seconds 0\n") {
		t.Error("last success not set after a successful run")
	}
	var summary map[string]any
	for _, l := range logs.lines(t) {
		if l["msg"] == "gc run finished" && l["dry_run"] == false {
			summary = l
		}
	}
	if summary == nil || summary["run"] != "run-1" || summary["freed_bytes"] != float64(4096) || summary["trigger"] != "api" {
		t.Fatalf("summary log line: %v", summary)
	}
}

// The run id comes from the report the collector stores as it begins
// when no progress report comes soon; an older unfinished report (a
// killed run's) is not taken for it.
func TestGCAPIRunIDFromStoredReport(t *testing.T) {
	s, f, _ := gcTestServer(t)
	f.quiet, f.release = true, make(chan struct{})
	f.reports = []gc.Report{{Run: "killed-long-ago"}, {Run: "done", Finished: time.Now()}}
	begun := time.Now()
	rec := send(s.Handler(), http.MethodPost, "/api/v1/gc/runs", "", basic(adminUser, adminPass)...)
	if rec.Code != http.StatusAccepted || !strings.Contains(rec.Body.String(), `"run":"run-1"`) {
		t.Fatalf("POST = %d %s, want 202 with run-1", rec.Code, rec.Body)
	}
	if took := time.Since(begun); took >= gcIDWait {
		t.Fatalf("took %s: the id was not found in the stored reports", took)
	}
	close(f.release)
	waitFor(t, func() bool { return !s.gc.running.Load() })
}

// Replicas on one store, each on its schedule: the lease keeps their runs
// apart, and they still collect.
func TestGCScheduleOneAtATime(t *testing.T) {
	store, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeGC{report: gc.Report{Run: "sched"}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 3 {
		s, _ := newTestServer(t, store)
		s.gc.cfg.Enabled, s.gc.cfg.Interval = true, 5*time.Millisecond
		s.gc.backend = f.backend()
		wg.Add(1)
		go func() { defer wg.Done(); s.gc.loop(ctx) }()
	}
	f.mu.Lock()
	f.release = make(chan struct{})
	f.mu.Unlock()
	go func() { // each run lasts about 10ms
		for ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
			select {
			case f.release <- struct{}{}:
			case <-ctx.Done():
			}
		}
	}()
	waitFor(t, func() bool { return f.runs.Load() >= 20 })
	cancel()
	wg.Wait()
	if m := f.maxAlive.Load(); m != 1 {
		t.Fatalf("%d collections at once, want 1", m)
	}
}

// The real collector behind the API: a run on a registry with one tagged
// image frees nothing and is listed, finished, with what it examined.
func TestGCAPIRealCollector(t *testing.T) {
	s, logs := newTestServer(t, nil)
	h := s.Handler()
	tok := token(t, h, adminUser, adminPass, "repository:staging/app:pull,push")
	if rec := pushImage(t, h, tok, "staging/app", "1.0"); rec.Code != http.StatusCreated {
		t.Fatalf("push = %d %s", rec.Code, rec.Body)
	}
	admin := basic(adminUser, adminPass)
	rec := send(h, http.MethodPost, "/api/v1/gc/runs", "", admin...)
	var started struct{ Run string }
	if err := json.Unmarshal(rec.Body.Bytes(), &started); err != nil || rec.Code != http.StatusAccepted || started.Run == "" {
		t.Fatalf("POST = %d %s", rec.Code, rec.Body)
	}
	waitFor(t, func() bool { return !s.gc.running.Load() })
	rec = send(h, http.MethodGet, "/api/v1/gc/runs", "", admin...)
	var body struct{ Runs []gc.Report }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Runs) != 1 {
		t.Fatalf("GET = %d %s, want one run", rec.Code, rec.Body)
	}
	r := body.Runs[0]
	if r.Run != started.Run || r.Finished.IsZero() || r.Error != "" || r.Examined.Objects == 0 || r.Freed.Objects != 0 {
		t.Fatalf("report %+v: want finished, no error, objects examined, nothing freed", r)
	}
	if !strings.Contains(logs.String(), `"msg":"gc run finished"`) {
		t.Fatal("no summary log line")
	}
	if rec := send(h, http.MethodGet, "/v2/staging/app/manifests/1.0", "", "Authorization", "Bearer "+tok); rec.Code != http.StatusOK {
		t.Fatalf("the tagged image after GC: %d", rec.Code)
	}
}

// A scheduled try skips when a run succeeded less than an interval ago
// (by the store's clock), so N replicas do not collect N times per
// interval; an on-demand run does not skip.
func TestGCScheduleSkipsRecentRun(t *testing.T) {
	s, f, _ := gcTestServer(t)
	s.gc.cfg.Interval = time.Hour
	ctx := context.Background()
	f.reports = []gc.Report{
		{Run: "running", Started: time.Now()},                                                       // unfinished: not counted
		{Run: "failed", Started: time.Now().Add(-time.Minute), Finished: time.Now(), Error: "boom"}, // failed: not counted
		{Run: "dry", Started: time.Now().Add(-5 * time.Minute), Finished: time.Now(), DryRun: true}, // dry: not counted
		{Run: "ok", Started: time.Now().Add(-10 * time.Minute), Finished: time.Now()},
	}
	if _, err := s.gc.start(ctx, "schedule", false); !errors.Is(err, errGCRecent) {
		t.Fatalf("scheduled try 10 minutes after a run: %v, want errGCRecent", err)
	}
	run, err := s.gc.start(ctx, "api", false)
	if err != nil {
		t.Fatalf("on demand: %v", err)
	}
	<-run.done
	f.reports[3].Started = time.Now().Add(-2 * time.Hour)
	if run, err = s.gc.start(ctx, "schedule", false); err != nil {
		t.Fatalf("scheduled try 2 hours after a run: %v", err)
	}
	<-run.done
	if n := f.runs.Load(); n != 2 {
		t.Fatalf("%d runs, want 2", n)
	}
	if text := send(s.Handler(), http.MethodGet, "/metrics", "").Body.String(); !strings.Contains(text, `slipway_gc_runs_total{outcome="recent"} 1`) {
		t.Fatal("the skipped try is not counted")
	}
}

// The server keeps one collector per set of options (what it read of
// immutable records serves the next run), each run reporting progress to
// its own caller.
func TestGCCollectorsKept(t *testing.T) {
	s, _ := newTestServer(t, nil)
	b := s.gc.backend
	opts := GCOptions(s.cfg)
	var got []string
	first := opts
	first.Progress = func(r gc.Report) { got = append(got, "first:"+r.Run) }
	second := opts
	second.Progress = func(r gc.Report) { got = append(got, "second:"+r.Run) }
	r1, r2 := b.collector(first).(keptRun), b.collector(second).(keptRun)
	if r1.c != r2.c {
		t.Fatal("a new collector for the same options")
	}
	dry := opts
	dry.DryRun = true
	if b.collector(dry).(keptRun).c == r1.c {
		t.Fatal("a dry run shares the real runs' collector")
	}
	rep1, err := r1.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rep2, err := r2.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range got {
		if want := "first:" + rep1.Run; strings.HasPrefix(g, "first:") && g != want {
			t.Fatalf("progress %q, want %q", g, want)
		}
		if want := "second:" + rep2.Run; strings.HasPrefix(g, "second:") && g != want {
			t.Fatalf("progress %q, want %q", g, want)
		}
	}
	if len(got) < 2 || !strings.HasPrefix(got[0], "first:") || !strings.HasPrefix(got[len(got)-1], "second:") {
		t.Fatalf("progress %q", got)
	}
}

// CollectOnce (`slipway gc`) reads and deletes through the store it is
// given to collect with (paced, for --gentle), and keeps the lease on the
// store itself: a paced lease renewal could come late.
func TestCollectOnceCollectsThroughCollect(t *testing.T) {
	dir := t.TempDir()
	store, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	orphan := "data/ab/ab" + strings.Repeat("1", 62)
	if _, err := store.Put(ctx, orphan, strings.NewReader("orphan"), 6); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-72 * time.Hour)
	if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(orphan)), old, old); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.GC.Grace = 0
	// Points released at once: they only record whether an operation
	// went through the collect store.
	collect := pause.New(store)
	seen := func(op, key string) *pause.Point {
		p := collect.Before(op, key)
		p.Release()
		return p
	}
	listed, deleted, leased := seen(pause.List, registry.DataPrefix), seen(pause.Delete, orphan), seen(pause.PutIfAbsent, "gc/lease")
	rep, err := CollectOnce(ctx, cfg, store, collect.Store(), GCOptions(cfg), func(err error) { t.Errorf("lease held: %v", err) }, func(retention.Report, error) {})
	if err != nil || rep.Freed.Objects != 1 {
		t.Fatalf("CollectOnce = %+v, %v; want the orphan freed", rep, err)
	}
	if _, err := store.Stat(ctx, orphan); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the orphan: %v, want it gone", err)
	}
	reached := func(p *pause.Point) bool {
		select {
		case <-p.Reached():
			return true
		default:
			return false
		}
	}
	if !reached(listed) || !reached(deleted) {
		t.Fatalf("through the collect store: listing %s %v, deleting the orphan %v; want both", registry.DataPrefix, reached(listed), reached(deleted))
	}
	if reached(leased) {
		t.Error("the lease went through the collect store")
	}
}

// GentleStore keeps gc.busy_concurrency requests in flight: with 1, a
// second request waits while the first is held.
func TestGentleStoreKeepsBusyConcurrency(t *testing.T) {
	inner, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	held := pause.New(inner)
	t.Cleanup(held.ReleaseAll)
	first := held.Before(pause.Stat, "a")
	s := GentleStore(config.GC{BusyConcurrency: 1, BusyShare: 1}, held.Store())
	ctx := context.Background()
	done := make(chan string, 2)
	stat := func(key string) {
		_, _ = s.Stat(ctx, key)
		done <- key
	}
	go stat("a")
	<-first.Reached()
	go stat("b")
	select {
	case k := <-done:
		t.Fatalf("%s finished while a held the only place", k)
	case <-time.After(200 * time.Millisecond):
	}
	first.Release()
	for range 2 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a request never finished after the first was released")
		}
	}
}
