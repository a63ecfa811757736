package promote

import (
	"context"
	"errors"
	"net/http"

	"github.com/slipway/slipway/storage"
)

// RollbackRelease re-points every member of release id to what it named
// before, as one new release (RollbackOf = id): all members or none.
// Refused, with nothing moved, when a member created its tag, has a fixed
// tag, or its tag moved since the release, or when the gates refuse a
// previous digest. Members that changed nothing (no-ops, superseded) are
// left out.
func (s *Service) RollbackRelease(ctx context.Context, id, reason string) (Release, error) {
	old, err := s.GetRelease(ctx, id)
	if err != nil {
		return Release{}, err
	}
	s.recoverReleases(ctx)
	if len(reason) > maxReason {
		return Release{}, invalid("reason is longer than %d bytes", maxReason)
	}
	if old.State != ReleaseComplete {
		return Release{}, errorf(http.StatusConflict, CodeConflict, "release %s is %s: there is nothing to roll back", id, old.State)
	}
	st, ok := s.stage(old.Stage)
	if !ok {
		return Release{}, errorf(http.StatusConflict, CodeEdgeNotAllowed, "stage %q is no longer configured", old.Stage)
	}
	may, err := s.permissions(ctx)
	if err != nil {
		return Release{}, err
	}
	var plan []plannedMember
	var fails []GateFailure
	for _, m := range old.Members {
		if m.Outcome == OutcomeNoop || m.Outcome == OutcomeSuperseded {
			continue // it changed nothing
		}
		if err := checkPromote(may, m.Repository, m.Repository); err != nil {
			return Release{}, err
		}
		switch {
		case st.IsFixedTag(m.Tag):
			return Release{}, errorf(http.StatusConflict, CodeFixedTag, "%s is a fixed tag in %s: it is never re-pointed, so release %s cannot be rolled back", m.Target, st.Name, id)
		case m.PreviousDigest == "":
			return Release{}, errorf(http.StatusConflict, CodeConflict, "%s did not exist before release %s: there is nothing to roll back to", m.Target, id)
		}
		state, exists, err := s.tagState(ctx, m.Repository, m.Tag)
		if err != nil {
			return Release{}, storeError(err)
		}
		if !exists || state.Digest != m.Digest {
			now := "is gone"
			if exists {
				now = "now names " + state.Digest.String()
			}
			return Release{}, errorf(http.StatusConflict, CodeGuardFailed, "%s has moved since release %s (it %s): nothing was rolled back", m.Target, id, now)
		}
		pm, err := s.meta.ManifestInRepo(ctx, m.Repository, m.PreviousDigest)
		if errors.Is(err, storage.ErrNotFound) {
			return Release{}, errorf(http.StatusConflict, CodeConflict, "%s no longer holds %s", m.Repository, m.PreviousDigest)
		} else if err != nil {
			return Release{}, storeError(err)
		}
		source := m.Repository + "@" + m.PreviousDigest.String()
		f, evidence, err := s.checkGates(ctx, st, source, m.Repository, pm)
		if err != nil {
			return Release{}, err
		}
		fails = append(fails, f...)
		plan = append(plan, plannedMember{
			Source: source, Repository: m.Repository, Tag: m.Tag, App: m.App, Digest: m.PreviousDigest,
			PreviousDigest: m.Digest, Evidence: evidence, RollbackOf: m.ID,
		})
	}
	if len(fails) > 0 {
		return Release{}, gateFailed(st.Name, fails)
	}
	if len(plan) == 0 {
		return Release{}, errorf(http.StatusConflict, CodeConflict, "release %s changed nothing: there is nothing to roll back", id)
	}
	doc := releaseDoc{Stage: st.Name, Actor: s.actor(ctx), Reason: reason, RollbackOf: id, State: ReleasePending, Plan: plan}
	return s.runRelease(ctx, doc)
}
