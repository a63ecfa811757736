package promote

import (
	"context"
	"errors"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

// CanRollback reports whether the caller may roll back rec.
func (s *Service) CanRollback(ctx context.Context, rec Record) bool {
	st, ok := s.stage(rec.Stage)
	if !ok || rec.PreviousDigest == "" || rec.Outcome == OutcomeNoop || st.IsFixedTag(rec.Tag) {
		return false
	}
	may, err := s.permissions(ctx)
	return err == nil && checkPromote(may, rec.Repository, rec.Repository) == nil
}

// Rollback re-points the tag of record id to the digest it named before,
// as a new record. Refused for fixed tags, for records that created their
// tag, and when the tag has moved since.
func (s *Service) Rollback(ctx context.Context, id, reason string) (Record, error) {
	old, err := s.Get(ctx, id)
	if err != nil {
		return Record{}, err
	}
	s.recoverReleases(ctx)
	if len(reason) > maxReason {
		return Record{}, invalid("reason is longer than %d bytes", maxReason)
	}
	st, ok := s.stage(old.Stage)
	may, err := s.permissions(ctx)
	if err != nil {
		return Record{}, err
	}
	denied := checkPromote(may, old.Repository, old.Repository)
	switch {
	case !ok:
		return Record{}, errorf(http.StatusConflict, CodeEdgeNotAllowed, "stage %q is no longer configured", old.Stage)
	case denied != nil:
		return Record{}, denied
	case st.IsFixedTag(old.Tag):
		return Record{}, errorf(http.StatusConflict, CodeFixedTag, "%s is a fixed tag in %s: it is never re-pointed, so it cannot be rolled back", old.Tag, st.Name)
	case old.PreviousDigest == "":
		return Record{}, errorf(http.StatusConflict, CodeConflict, "%s did not exist before promotion %s: there is nothing to roll back to", old.Target, id)
	case old.Outcome == OutcomeNoop:
		return Record{}, errorf(http.StatusConflict, CodeConflict, "promotion %s changed nothing: there is nothing to roll back", id)
	}
	m, err := s.meta.ManifestInRepo(ctx, old.Repository, old.PreviousDigest)
	if errors.Is(err, storage.ErrNotFound) {
		return Record{}, errorf(http.StatusConflict, CodeConflict, "%s no longer holds %s", old.Repository, old.PreviousDigest)
	} else if err != nil {
		return Record{}, storeError(err)
	}
	// The gates hold for a rollback too: the stage's rules may have
	// tightened since the earlier digest entered it.
	source := old.Repository + "@" + old.PreviousDigest.String()
	failures, evidence, err := s.checkGates(ctx, st, source, old.Repository, m)
	if err != nil {
		return Record{}, err
	}
	if len(failures) > 0 {
		return Record{}, gateFailed(st.Name, failures)
	}
	rec := Record{
		Source: source, Digest: old.PreviousDigest,
		Repository: old.Repository, Tag: old.Tag, Stage: old.Stage, App: old.App,
		Reason: reason, Actor: s.actor(ctx), RollbackOf: id, Evidence: evidence,
	}
	rec, err = s.commit(ctx, rec, st, func(prev digest.Digest, _ bool, _ *Record) error {
		if prev != old.Digest {
			return errorf(http.StatusConflict, CodeGuardFailed, "%s has moved since promotion %s (now %s): roll back the newest record instead", old.Target, id, prev)
		}
		return nil
	})
	if err != nil {
		return Record{}, err
	}
	return rec, nil
}
