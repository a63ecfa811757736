package admintest

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/promote"
)

// AddRelease appends a release as if it had happened (its members are
// not added to the ledger).
func (f *Fake) AddRelease(rel promote.Release) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.releases = append(f.releases, rel)
}

// ReleaseList returns the releases, oldest first.
func (f *Fake) ReleaseList() []promote.Release {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.releases)
}

// CreateRelease promotes every image into production, or none: each is
// planned (every refusal of Promote) before any is applied.
func (f *Fake) CreateRelease(ctx context.Context, req promote.ReleaseRequest) (promote.Release, error) {
	if req.To != "production" {
		return promote.Release{}, perr(http.StatusConflict, promote.CodeEdgeNotAllowed, "releases go to production only here, not "+req.To)
	}
	if len(req.Images) == 0 {
		return promote.Release{}, perr(http.StatusBadRequest, promote.CodeInvalid, "a release needs at least one image")
	}
	for _, im := range req.Images {
		repo, _, _ := strings.Cut(im.Source, ":")
		if !f.CanPromote(ctx, repo, req.To) {
			return promote.Release{}, perr(http.StatusForbidden, promote.CodeDenied, "you may not promote "+repo+" to "+req.To)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var plans []planned
	var gateErr *promote.Error
	for _, im := range req.Images {
		p, err := f.plan(promote.Request{Source: im.Source, To: req.To, Tag: im.Tag, Reason: req.Reason})
		if pe, ok := err.(*promote.Error); ok && pe.Code == promote.CodeGateFailed {
			// Every member's gate failures, as the real service lists them.
			if gateErr == nil {
				gateErr = &promote.Error{Status: pe.Status, Code: pe.Code, Message: "refused by the gates of " + req.To + ":"}
			}
			gateErr.Failures = append(gateErr.Failures, pe.Failures...)
			gateErr.Message += " " + strings.TrimPrefix(pe.Message, "refused by the gates of "+req.To+": ")
			continue
		}
		if err != nil {
			return promote.Release{}, err
		}
		plans = append(plans, p)
	}
	if gateErr != nil {
		return promote.Release{}, gateErr
	}
	who, _ := auth.PrincipalFrom(ctx)
	rel := promote.Release{ID: "rel-" + strconv.Itoa(len(f.releases)+1), Stage: req.To, Actor: who.Name, At: f.now(),
		Reason: req.Reason, State: promote.ReleaseComplete}
	for _, p := range plans {
		rel.Members = append(rel.Members, f.apply(ctx, p, rel.ID))
	}
	f.releases = append(f.releases, rel)
	return rel, nil
}

// GetRelease returns release id (404 for none).
func (f *Fake) GetRelease(_ context.Context, id string) (promote.Release, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.releases {
		if r.ID == id {
			return r, nil
		}
	}
	return promote.Release{}, perr(http.StatusNotFound, promote.CodeNotFound, "no release "+id)
}

// Releases pages the releases, newest first; the cursor is an offset.
func (f *Fake) Releases(_ context.Context, limit int, cursor string) (promote.ReleasePage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []promote.Release
	for i := len(f.releases) - 1; i >= 0; i-- {
		out = append(out, f.releases[i])
	}
	start, _ := strconv.Atoi(cursor)
	start = min(start, len(out))
	limit = cmpOr(limit, 50)
	page := promote.ReleasePage{Releases: out[start:min(start+limit, len(out))]}
	if start+limit < len(out) {
		page.NextCursor = strconv.Itoa(start + limit)
	}
	return page, nil
}

// CanRollbackRelease: the promoters, for a complete release.
func (f *Fake) CanRollbackRelease(ctx context.Context, rel promote.Release) bool {
	return f.may(ctx) && rel.State == promote.ReleaseComplete && len(rel.Members) > 0
}

// RollbackRelease re-points every member to its previous digest (or
// deletes a tag the release created) as one new release; refused, with
// nothing changed, when any member's tag has moved since.
func (f *Fake) RollbackRelease(ctx context.Context, id, reason string) (promote.Release, error) {
	old, err := f.GetRelease(ctx, id)
	if err != nil {
		return promote.Release{}, err
	}
	if !f.CanRollbackRelease(ctx, old) {
		return promote.Release{}, perr(http.StatusForbidden, promote.CodeDenied, "you may not roll back release "+id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range old.Members {
		i := slices.IndexFunc(f.repos[m.Repository], func(t promote.TagInfo) bool { return t.Tag == m.Tag })
		if i < 0 || f.repos[m.Repository][i].Digest != m.Digest {
			return promote.Release{}, perr(http.StatusConflict, promote.CodeGuardFailed, m.Target+" has moved since release "+id+": nothing was rolled back")
		}
	}
	who, _ := auth.PrincipalFrom(ctx)
	rel := promote.Release{ID: "rel-" + strconv.Itoa(len(f.releases)+1), Stage: old.Stage, Actor: who.Name, At: f.now(),
		Reason: reason, RollbackOf: id, State: promote.ReleaseComplete}
	for _, m := range old.Members {
		back := promote.Record{ID: strconv.Itoa(len(f.ledger) + 1), Source: m.Target, Digest: m.PreviousDigest, Target: m.Target,
			Repository: m.Repository, Tag: m.Tag, Stage: m.Stage, App: m.App, PreviousDigest: m.Digest, Actor: who.Name,
			At: rel.At, Reason: reason, Outcome: promote.OutcomeRolledBack, RollbackOf: m.ID, Release: rel.ID}
		f.ledger = append(f.ledger, back)
		if m.PreviousDigest == "" {
			f.repos[m.Repository] = slices.DeleteFunc(f.repos[m.Repository], func(t promote.TagInfo) bool { return t.Tag == m.Tag })
		} else {
			f.setTag(m.Repository, m.Tag, m.PreviousDigest, back.At, &back)
		}
		f.markStages(m.App, m.Digest)
		rel.Members = append(rel.Members, back)
	}
	f.releases = append(f.releases, rel)
	return rel, nil
}
