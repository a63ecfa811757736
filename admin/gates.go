package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gate"
	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/storage"
)

// The repository page's cost of gate badges is bounded: only the rows of
// the page shown are checked, each repository and digest once, a few at
// a time, and the page waits at most gateBudget for them (rows not
// checked by then say so). The service caches verdicts briefly too.
const (
	gateParallel = 4
	gateBudget   = 5 * time.Second
)

// gateBadge is one gated stage's verdict on a row's digest.
type gateBadge struct {
	Stage  string
	Passed bool
	// Gates are the gates that failed (signed_by, attestations,
	// referrers), each once; Messages say why, one per failure.
	Gates    []string
	Messages []string
	// Proofs says what passed them ("signature by ci-2026").
	Proofs string
}

// gateSource is where a row's gate verdict is read: a repository holding
// the digest, of a stage that promotes into a gated stage.
type gateSource struct {
	repo   string
	digest digest.Digest
}

// addGates puts on each row its evidence link and a badge per gated stage
// its digest may be promoted into. The digest is checked in the first
// stage (in configuration order) whose tag names it and that feeds a
// gated stage: the evidence travels with a promotion, so that is where
// the next promotion would read it.
func (a *Admin) addGates(ctx context.Context, stages []config.Stage, cols []stageCol, rows []tagRow) {
	if a.opts.Gates == nil {
		return
	}
	feeds := make([]bool, len(stages))
	for i, from := range stages {
		for _, to := range stages {
			feeds[i] = feeds[i] || to.Gates.Any() && slices.Contains(to.PromoteFrom, from.Name)
		}
	}
	sources := make([]*gateSource, len(rows))
	var todo []gateSource
	seen := map[gateSource]bool{}
	for n := range rows {
		row := &rows[n]
		for i, c := range row.Cells {
			if !c.Present {
				continue
			}
			if row.Evidence == "" {
				row.Evidence = evidencePath(cols[i].Repo, row.Digest)
			}
			if feeds[i] {
				src := gateSource{repo: cols[i].Repo, digest: row.Digest}
				sources[n] = &src
				if !seen[src] {
					seen[src] = true
					todo = append(todo, src)
				}
				break
			}
		}
	}
	if len(todo) == 0 {
		return
	}
	verdicts := a.gateVerdicts(ctx, todo)
	for n := range rows {
		src := sources[n]
		if src == nil {
			continue
		}
		v := verdicts[*src]
		if v.err != nil {
			rows[n].GateNote = "gates not checked: " + gateErrorWords(v.err)
			continue
		}
		for _, st := range v.stages {
			rows[n].Gates = append(rows[n].Gates, badgeOf(st))
		}
	}
}

type verdict struct {
	stages []promote.StageGateStatus
	err    error
}

// gateVerdicts asks the service for each source's verdicts, gateParallel
// at a time, within gateBudget. An error is kept per source (logged
// once): a page with badges missing is better than no page.
func (a *Admin) gateVerdicts(ctx context.Context, todo []gateSource) map[gateSource]verdict {
	ctx, cancel := context.WithTimeout(ctx, a.gateBudget)
	defer cancel()
	out := make(map[gateSource]verdict, len(todo))
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(gateParallel)
	for _, src := range todo {
		g.Go(func() error {
			var v verdict
			if ctx.Err() != nil {
				v.err = ctx.Err() // out of time: do not even start
			} else {
				v.stages, v.err = a.opts.Gates.GateStatus(ctx, src.repo, src.digest)
			}
			mu.Lock()
			out[src] = v
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait() // the goroutines return nil: errors are per source
	var failed int
	var first error
	for _, v := range out {
		if v.err != nil {
			failed++
			if first == nil {
				first = v.err
			}
		}
	}
	if failed > 0 {
		a.log.WarnContext(ctx, "admin repository page: gate status not checked", "digests", failed, "error", first.Error())
	}
	return out
}

// gateErrorWords says why a verdict is missing without internals.
func gateErrorWords(err error) string {
	var pe *promote.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "verification took too long; reload to try again"
	case errors.Is(err, storage.ErrUnavailable):
		return "storage is unavailable"
	case errors.As(err, &pe):
		return pe.Message
	}
	return "the server log says why"
}

// badgeOf turns a stage's verdict into a badge.
func badgeOf(st promote.StageGateStatus) gateBadge {
	b := gateBadge{Stage: st.Stage, Passed: st.Passed()}
	for _, f := range st.Failures {
		if !slices.Contains(b.Gates, f.Gate) {
			b.Gates = append(b.Gates, f.Gate)
		}
		b.Messages = append(b.Messages, f.Message)
	}
	var proofs []string
	for _, p := range st.Evidence {
		s := p.Kind
		if p.Type != "" {
			s += " " + p.Type
		}
		if p.KeyID != "" {
			s += " by " + p.KeyID
		}
		if !slices.Contains(proofs, s) {
			proofs = append(proofs, s)
		}
	}
	b.Proofs = strings.Join(proofs, "; ")
	return b
}

// targetGate is the verdict of stage to's gates on d held in repo, for
// the promotion's confirmation page; nil when to is not gated. A verdict
// that cannot be read is a note: the promotion checks again anyway.
func (a *Admin) targetGate(r *http.Request, repo string, d digest.Digest, to config.Stage) (*gateBadge, string) {
	if a.opts.Gates == nil || !to.Gates.Any() {
		return nil, ""
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.gateBudget)
	defer cancel()
	verdicts, err := a.opts.Gates.GateStatus(ctx, repo, d)
	if err != nil {
		a.log.WarnContext(ctx, "admin promote confirmation: gate status not checked", "repository", repo, "digest", d.String(), "error", err.Error())
		return nil, "not checked: " + gateErrorWords(err)
	}
	for _, v := range verdicts {
		if v.Stage == to.Name {
			b := badgeOf(v)
			return &b, ""
		}
	}
	return nil, ""
}

// evidencePath is the evidence page of d as repo holds it.
func evidencePath(repo string, d digest.Digest) string {
	return "/admin/repositories/" + repo + "/digests/" + d.String()
}

// digestPath splits an evidence page's path below /admin/repositories/
// ("staging/app/digests/sha256:…") into its repository and digest. A
// repository name may itself hold "/digests/", but never a colon, so the
// last one followed by a valid digest is the split.
func digestPath(p string) (repo string, d digest.Digest, ok bool) {
	i := strings.LastIndex(p, "/digests/")
	if i <= 0 {
		return "", "", false
	}
	d, err := digest.Parse(p[i+len("/digests/"):])
	if err != nil || !names.ValidRepository(p[:i]) {
		return "", "", false
	}
	return p[:i], d, true
}

// evidenceData is the evidence page: what is attached to a digest in a
// repository, and what each gated stage makes of it.
type evidenceData struct {
	Repo, App string
	Digest    digest.Digest
	Proofs    []gate.Proof
	Verdicts  []promote.StageGateStatus
}

// evidence serves GET /admin/repositories/<repo>/digests/<digest>.
func (a *Admin) evidence(w http.ResponseWriter, r *http.Request, req *request, repo string, d digest.Digest) {
	if a.opts.Gates == nil {
		a.notFound(w, r, req)
		return
	}
	ctx := r.Context()
	proofs, err := a.opts.Gates.Evidence(ctx, repo, d)
	if err != nil {
		a.fail(w, r, req, err)
		return
	}
	verdicts, err := a.opts.Gates.GateStatus(ctx, repo, d)
	if err != nil {
		a.fail(w, r, req, err)
		return
	}
	data := evidenceData{Repo: repo, App: repo, Digest: d, Proofs: proofs, Verdicts: verdicts}
	if st, ok := config.StageOf(a.opts.Promote.Stages(), repo); ok {
		data.App = strings.TrimPrefix(repo, st.Prefix)
	}
	v := a.newView(r, req, "Evidence of "+repo+"@"+shortDigest(d))
	v.Nav, v.Data = "repositories", data
	a.render(w, r, http.StatusOK, "evidence", v)
}

// keyIDs are the distinct key ids of proofs, in order (the ledger's and
// the release page's evidence column).
func keyIDs(proofs []gate.Proof) []string {
	var ids []string
	for _, p := range proofs {
		if p.KeyID != "" && !slices.Contains(ids, p.KeyID) {
			ids = append(ids, p.KeyID)
		}
	}
	return ids
}
