package registry

import (
	"context"
	"fmt"

	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/storage"
)

// DeleteTag removes repo:tag and nothing else: the manifest stays linked
// and the digest's other tags stay; the collector frees what no tag or
// ledger record references any more. The delete goes through the tag
// journal like every tag write (journaledStore), so TagStates stops
// listing the tag as soon as this returns. /v2/ deletes by tag the same
// way (Registry.deleteManifest); the admin pages and retention call this.
//
// A missing tag is storage.ErrNotFound. With etag "" whatever the tag
// names is deleted; otherwise the tag is read first and a different
// version is storage.ErrPreconditionFailed, so a caller that decided on a
// state it read (retention) does not delete a tag re-pushed since. The
// store has no conditional delete: a write landing between that read and
// the delete is still lost, a window of one request.
func (m *Metadata) DeleteTag(ctx context.Context, repo, tag, etag string) error {
	if !names.ValidRepository(repo) || !names.ValidTag(tag) {
		return fmt.Errorf("invalid tag %s:%s", repo, tag)
	}
	st, err := m.Tag(ctx, repo, tag)
	if err != nil {
		return err
	}
	if etag != "" && st.ETag != etag {
		return fmt.Errorf("tag %s:%s changed since it was read: %w", repo, tag, storage.ErrPreconditionFailed)
	}
	return m.deleteTag(ctx, repo, tag)
}
