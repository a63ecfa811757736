// Package admintest is an in-memory promotion service with the rules of
// the real one's contract, for tests of the admin pages (handler tests in
// admin, browser tests in integration) that must not wait for a registry.
package admintest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gate"
	"github.com/slipway/slipway/promote"
)

// Fake is an in-memory promotion service with the contract's
// rules: admins and the accounts in promoters may promote and roll back,
// admins and the accounts in Deleters may delete tags outside immutable
// stages, everyone signed in may read.
type Fake struct {
	stages    []config.Stage
	Promoters map[string]bool
	Deleters  map[string]bool
	now       func() time.Time

	mu     sync.Mutex
	repos  map[string][]promote.TagInfo // repo -> tags
	ledger []promote.Record             // oldest first
	// FailTags makes Tags fail with this error (storage outage tests).
	FailTags error

	// Gates: the verdicts and evidence of repo@digest (SetGates,
	// SetEvidence); Promote and CreateRelease refuse what a verdict fails.
	gates     map[string][]promote.StageGateStatus
	evidence  map[string][]gate.Proof
	gateCalls map[string]int
	// FailGates makes GateStatus and Evidence fail with this error.
	FailGates error
	// GateWait, when set, runs at the start of every GateStatus (a slow
	// verifier); it gets the call's context.
	GateWait func(ctx context.Context)
	releases []promote.Release // oldest first
}

func New(now func() time.Time) *Fake {
	return &Fake{stages: config.Default().Stages, Promoters: map[string]bool{}, Deleters: map[string]bool{}, now: now, repos: map[string][]promote.TagInfo{},
		gates: map[string][]promote.StageGateStatus{}, evidence: map[string][]gate.Proof{}, gateCalls: map[string]int{}}
}

func Digest(s string) digest.Digest { return digest.FromString(s) }

// Push adds a tag as a push would.
func (f *Fake) Push(repo, tag string, d digest.Digest, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setTag(repo, tag, d, at, nil)
}

func (f *Fake) setTag(repo, tag string, d digest.Digest, at time.Time, rec *promote.Record) {
	tags := f.repos[repo]
	ti := promote.TagInfo{Tag: tag, Digest: d, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 12345678,
		Platforms: []string{"linux/amd64"}, UpdatedAt: at, Promoted: rec}
	for i := range tags {
		if tags[i].Tag == tag {
			tags[i] = ti
			return
		}
	}
	f.repos[repo] = append(tags, ti)
}

func (f *Fake) Stages() []config.Stage { return f.stages }

func (f *Fake) may(ctx context.Context) bool {
	p, ok := auth.PrincipalFrom(ctx)
	return ok && (p.Admin || f.Promoters[p.Name])
}

func (f *Fake) CanPromote(ctx context.Context, sourceRepo, toStage string) bool {
	return f.may(ctx) && strings.HasPrefix(sourceRepo, "staging/") && toStage == "production"
}

func (f *Fake) CanRollback(ctx context.Context, rec promote.Record) bool {
	// The real service's rules: a promotion that moved an existing,
	// non-fixed tag (production's fixed tags are v*).
	return f.may(ctx) && rec.Outcome == promote.OutcomePromoted && rec.PreviousDigest != "" && !strings.HasPrefix(rec.Tag, "v")
}

func perr(status int, code, msg string) error {
	return &promote.Error{Status: status, Code: code, Message: msg}
}

func (f *Fake) Promote(ctx context.Context, req promote.Request) (promote.Record, bool, error) {
	repo, _, _ := strings.Cut(req.Source, ":")
	if !f.CanPromote(ctx, repo, req.To) {
		return promote.Record{}, false, perr(http.StatusForbidden, promote.CodeDenied, "you may not promote "+repo+" to "+req.To)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.plan(req)
	if err != nil {
		return promote.Record{}, false, err
	}
	rec := f.apply(ctx, p, "")
	return rec, rec.Outcome != promote.OutcomeNoop, nil
}

// planned is a promotion checked and not yet done.
type planned struct {
	req       promote.Request
	repo, tag string // the source
	app       string
	target    string
	digest    digest.Digest
	prev      digest.Digest
}

// plan checks a promotion with the real service's refusals (source,
// guards, fixed tags, gates); f.mu is held.
func (f *Fake) plan(req promote.Request) (planned, error) {
	repo, tag, _ := strings.Cut(req.Source, ":")
	var src *promote.TagInfo
	for i, t := range f.repos[repo] {
		if t.Tag == tag {
			src = &f.repos[repo][i]
		}
	}
	if src == nil {
		return planned{}, perr(http.StatusNotFound, promote.CodeNotFound, req.Source+" does not exist")
	}
	if req.ExpectDigest != "" && req.ExpectDigest != src.Digest {
		return planned{}, perr(http.StatusConflict, promote.CodeGuardFailed, req.Source+" no longer names "+string(req.ExpectDigest))
	}
	if req.Tag == "" {
		req.Tag = tag
	}
	app := strings.TrimPrefix(repo, "staging/")
	target := "production/" + app
	var prev digest.Digest
	for _, t := range f.repos[target] {
		if t.Tag == req.Tag {
			prev = t.Digest
		}
	}
	if req.ExpectPrevious == "none" && prev != "" || req.ExpectPrevious != "" && req.ExpectPrevious != "none" && req.ExpectPrevious != string(prev) {
		return planned{}, perr(http.StatusConflict, promote.CodeGuardFailed, target+":"+req.Tag+" changed since you looked")
	}
	if prev != "" && prev != src.Digest && strings.HasPrefix(req.Tag, "v") {
		return planned{}, perr(http.StatusConflict, promote.CodeFixedTag, req.Tag+" is a fixed tag in production and already names another image")
	}
	for _, st := range f.gates[gateKey(repo, src.Digest)] {
		if st.Stage == req.To && !st.Passed() {
			e := &promote.Error{Status: http.StatusConflict, Code: promote.CodeGateFailed}
			var msgs []string
			for _, fl := range st.Failures {
				e.Failures = append(e.Failures, promote.GateFailure{Source: req.Source, Failure: fl})
				msgs = append(msgs, req.Source+": "+fl.Message)
			}
			e.Message = "refused by the gates of " + req.To + ": " + strings.Join(msgs, "; ")
			return planned{}, e
		}
	}
	return planned{req: req, repo: repo, tag: tag, app: app, target: target, digest: src.Digest, prev: prev}, nil
}

// apply does a planned promotion as a member of release ("" for none);
// f.mu is held.
func (f *Fake) apply(ctx context.Context, p planned, release string) promote.Record {
	who, _ := auth.PrincipalFrom(ctx)
	rec := promote.Record{ID: strconv.Itoa(len(f.ledger) + 1), Source: p.req.Source, Digest: p.digest, Target: p.target + ":" + p.req.Tag,
		Repository: p.target, Tag: p.req.Tag, Stage: "production", App: p.app, PreviousDigest: p.prev, Actor: who.Name,
		At: f.now(), Reason: p.req.Reason, Outcome: promote.OutcomePromoted, Release: release}
	for _, st := range f.gates[gateKey(p.repo, p.digest)] {
		if st.Stage == p.req.To {
			rec.Evidence = st.Evidence
		}
	}
	created := p.prev != p.digest
	if !created {
		rec.Outcome = promote.OutcomeNoop
	}
	f.ledger = append(f.ledger, rec)
	if created {
		f.setTag(p.target, p.req.Tag, p.digest, rec.At, &rec)
		f.markStages(p.app, p.digest)
	}
	return rec
}

// MarkStages recomputes TagInfo.Stages for an app's digest.
func (f *Fake) MarkStages(app string, d digest.Digest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.markStages(app, d)
}

func (f *Fake) markStages(app string, d digest.Digest) {
	var holders []string
	for _, s := range f.stages {
		for _, t := range f.repos[s.Prefix+app] {
			if t.Digest == d {
				holders = append(holders, s.Name)
				break
			}
		}
	}
	for _, s := range f.stages {
		for i := range f.repos[s.Prefix+app] {
			if f.repos[s.Prefix+app][i].Digest == d {
				f.repos[s.Prefix+app][i].Stages = holders
			}
		}
	}
}

func (f *Fake) Rollback(ctx context.Context, id, reason string) (promote.Record, error) {
	rec, err := f.Get(ctx, id)
	if err != nil {
		return promote.Record{}, err
	}
	if !f.CanRollback(ctx, rec) {
		return promote.Record{}, perr(http.StatusForbidden, promote.CodeDenied, "you may not roll back "+rec.Target)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, _ := auth.PrincipalFrom(ctx)
	back := promote.Record{ID: strconv.Itoa(len(f.ledger) + 1), Source: rec.Target, Digest: rec.PreviousDigest, Target: rec.Target,
		Repository: rec.Repository, Tag: rec.Tag, Stage: rec.Stage, App: rec.App, PreviousDigest: rec.Digest, Actor: p.Name,
		At: f.now(), Reason: reason, Outcome: promote.OutcomeRolledBack, RollbackOf: rec.ID}
	f.ledger = append(f.ledger, back)
	if rec.PreviousDigest == "" {
		tags := f.repos[rec.Repository]
		f.repos[rec.Repository] = slices.DeleteFunc(tags, func(t promote.TagInfo) bool { return t.Tag == rec.Tag })
	} else {
		f.setTag(rec.Repository, rec.Tag, rec.PreviousDigest, back.At, &back)
	}
	f.markStages(rec.App, rec.Digest)
	return back, nil
}

func (f *Fake) History(_ context.Context, q promote.Query) (promote.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []promote.Record
	for i := len(f.ledger) - 1; i >= 0; i-- {
		r := f.ledger[i]
		if q.Repository != "" && r.App != q.Repository && r.Repository != q.Repository {
			continue
		}
		if q.Tag != "" && r.Tag != q.Tag {
			continue
		}
		out = append(out, r)
	}
	start, _ := strconv.Atoi(q.Cursor)
	limit := cmpOr(q.Limit, 50)
	if start > len(out) {
		start = len(out)
	}
	page := promote.Page{Records: out[start:min(start+limit, len(out))]}
	if start+limit < len(out) {
		page.NextCursor = strconv.Itoa(start + limit)
	}
	return page, nil
}

func cmpOr(a, b int) int {
	if a > 0 {
		return a
	}
	return b
}

func (f *Fake) Get(_ context.Context, id string) (promote.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.ledger {
		if r.ID == id {
			return r, nil
		}
	}
	return promote.Record{}, perr(http.StatusNotFound, promote.CodeNotFound, "no ledger record "+id)
}

func (f *Fake) Repositories(_ context.Context, q promote.RepositoryQuery) (promote.RepositoryPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, 0, len(f.repos))
	for n := range f.repos {
		if q.Search != "" && !strings.Contains(n, q.Search) {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	limit := cmpOr(q.Limit, 100)
	var page promote.RepositoryPage
	for _, n := range names {
		if q.Cursor != "" && n <= q.Cursor {
			continue
		}
		s, _ := config.StageOf(f.stages, n)
		if q.Stage != "" && s.Name != q.Stage {
			continue
		}
		if len(page.Repositories) == limit {
			page.NextCursor = page.Repositories[limit-1].Name
			break
		}
		page.Repositories = append(page.Repositories, promote.RepositoryInfo{Name: n, Stage: s.Name, App: strings.TrimPrefix(n, s.Prefix)})
	}
	return page, nil
}

func (f *Fake) Tags(_ context.Context, repo string) ([]promote.TagInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.FailTags != nil {
		return nil, f.FailTags
	}
	tags, ok := f.repos[repo]
	if !ok {
		return nil, perr(http.StatusNotFound, promote.CodeNotFound, fmt.Sprintf("no repository %q", repo))
	}
	return slices.Clone(tags), nil
}

// TagDigest is what repo:tag names in the fake.
func (f *Fake) TagDigest(_ context.Context, repo, tag string) (digest.Digest, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.repos[repo] {
		if t.Tag == tag {
			return t.Digest, true, nil
		}
	}
	return "", false, nil
}

// AppTags is Tags of the app's repository in each stage.
func (f *Fake) AppTags(ctx context.Context, app string) (map[string][]promote.TagInfo, error) {
	out := map[string][]promote.TagInfo{}
	for _, st := range f.stages {
		tags, err := f.Tags(ctx, st.Prefix+app)
		if err != nil {
			var pe *promote.Error
			if errors.As(err, &pe) && pe.Status == http.StatusNotFound {
				continue
			}
			return nil, err
		}
		out[st.Name] = tags
	}
	return out, nil
}

func (f *Fake) StageCounts(context.Context) (map[string]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	counts := map[string]int{}
	for n := range f.repos {
		if s, ok := config.StageOf(f.stages, n); ok {
			counts[s.Name]++
		}
	}
	return counts, nil
}

// Record is a promotion of staging/<app>:<tag> to production by ops.
func Record(id, app, tag string, at time.Time) promote.Record {
	return promote.Record{ID: id, Source: "staging/" + app + ":" + tag, Digest: Digest(app + "-" + tag),
		Target: "production/" + app + ":" + tag, Repository: "production/" + app, Tag: tag, Stage: "production", App: app,
		Actor: "ops", At: at, Outcome: promote.OutcomePromoted}
}

// AddRecord appends a ledger record as if a promotion had happened.
func (f *Fake) AddRecord(rec promote.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ledger = append(f.ledger, rec)
}

// Ledger returns the records, oldest first.
func (f *Fake) Ledger() []promote.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ledger)
}

// SeedApp gives staging/<app> v1, v2 and latest (= v2), and
// production/<app> v1.
func (f *Fake) SeedApp(app string, now time.Time) {
	v1, v2 := Digest(app+"-v1"), Digest(app+"-v2")
	f.Push("staging/"+app, "v1", v1, now.Add(-3*time.Hour))
	f.Push("staging/"+app, "v2", v2, now.Add(-time.Hour))
	f.Push("staging/"+app, "latest", v2, now.Add(-time.Hour))
	f.Push("production/"+app, "v1", v1, now.Add(-2*time.Hour))
	f.Push("production/"+app, "latest", v1, now.Add(-2*time.Hour))
	f.MarkStages(app, v1)
	f.MarkStages(app, v2)
}

// CanDeleteTag: admins and Deleters, outside immutable stages.
func (f *Fake) CanDeleteTag(ctx context.Context, repo string) bool {
	if st, ok := config.StageOf(f.stages, repo); ok && st.Immutable {
		return false
	}
	p, ok := auth.PrincipalFrom(ctx)
	return ok && (p.Admin || f.Deleters[p.Name])
}

// DeleteTag removes repo:tag with the real service's refusals: 403 where
// CanDeleteTag says no, 404 for a missing tag, 409 when it no longer
// names expect.
func (f *Fake) DeleteTag(ctx context.Context, repo, tag string, expect digest.Digest) error {
	if !f.CanDeleteTag(ctx, repo) {
		return perr(http.StatusForbidden, promote.CodeDenied, "you may not delete tags of "+repo)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	tags := f.repos[repo]
	i := slices.IndexFunc(tags, func(t promote.TagInfo) bool { return t.Tag == tag })
	switch {
	case i < 0:
		return perr(http.StatusNotFound, promote.CodeNotFound, repo+":"+tag+" does not exist (any more)")
	case expect != "" && tags[i].Digest != expect:
		return perr(http.StatusConflict, promote.CodeGuardFailed, repo+":"+tag+" changed since you looked: it now names "+tags[i].Digest.String())
	}
	f.repos[repo] = slices.Delete(tags, i, i+1)
	return nil
}
