package promote

import (
	"context"
	"errors"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/storage"
)

// actionDelete is auth's name for deleting in a repository.
const actionDelete = "delete"

// CanDeleteTag reports whether the caller may delete tags of repo: delete
// on it, outside an immutable stage (the admin page's Delete buttons).
func (s *Service) CanDeleteTag(ctx context.Context, repo string) bool {
	if st, ok := config.StageOf(s.opts.Stages, repo); ok && st.Immutable {
		return false
	}
	return s.may(ctx, repo, actionDelete)
}

// DeleteTag deletes repo:tag for the caller, as DELETE
// /v2/<repo>/manifests/<tag> would: that tag only (registry
// Metadata.DeleteTag). Refused (403) in an immutable stage and without
// delete on repo; a missing tag is 404. With expect set, the tag must
// still name it (409 otherwise): the person deletes what they confirmed.
func (s *Service) DeleteTag(ctx context.Context, repo, tag string, expect digest.Digest) error {
	if err := s.requireCaller(ctx); err != nil {
		return err
	}
	if !names.ValidRepository(repo) || !names.ValidTag(tag) {
		return invalid("invalid repository or tag %q:%q", repo, tag)
	}
	if st, ok := config.StageOf(s.opts.Stages, repo); ok && st.Immutable {
		return errorf(http.StatusForbidden, CodeDenied, "%s is in the immutable stage %q: nobody deletes tags there, only promotion writes", repo, st.Name)
	}
	if !s.may(ctx, repo, actionDelete) {
		return errorf(http.StatusForbidden, CodeDenied, "deleting a tag needs delete on %s", repo)
	}
	cur, exists, err := s.tagState(ctx, repo, tag)
	switch {
	case err != nil:
		return storeError(err)
	case !exists:
		return errorf(http.StatusNotFound, CodeNotFound, "%s:%s does not exist (any more)", repo, tag)
	case expect != "" && cur.Digest != expect:
		return errorf(http.StatusConflict, CodeGuardFailed, "%s:%s changed since you looked: it now names %s", repo, tag, cur.Digest)
	}
	err = s.meta.DeleteTag(ctx, repo, tag, cur.ETag)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return errorf(http.StatusNotFound, CodeNotFound, "%s:%s does not exist (any more)", repo, tag)
	case errors.Is(err, storage.ErrPreconditionFailed):
		return errorf(http.StatusConflict, CodeGuardFailed, "%s:%s changed since you looked: try again", repo, tag)
	case err != nil:
		return storeError(err)
	}
	s.log.InfoContext(ctx, "tag deleted", "repository", repo, "tag", tag, "digest", cur.Digest.String(), "by", s.actor(ctx))
	return nil
}
