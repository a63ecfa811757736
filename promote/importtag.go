package promote

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/internal/names"
)

// errTagPresent stops ImportTag's commit when the tag already names the
// digest: nothing to record.
var errTagPresent = errors.New("the tag already names the digest")

// ImportTag sets repo:tag → d in an immutable stage for `slipway import`
// (docs/architecture.md §7.6), the only writer there besides promotion:
// through the promotion commit (the next record of the tag's chain,
// claimed with put-if-absent, then the tag stamped with its seq), with a
// ledger record of outcome OutcomeImported from source (the CLI builds
// "import:<source>/<stock repository>:<tag>") by actor, and no webhook
// event. The manifest must already be linked in repo. It only creates a
// tag: one that already names d is left as it is (imported false, no
// record: a rerun writes nothing, and a record claimed by a run that died
// before its tag write is rolled forward first, as for any promotion); one
// naming another digest is a conflict *Error, never replaced. The caller
// is the import command, which holds the storage itself: no permission is
// checked.
func (s *Service) ImportTag(ctx context.Context, repo, tag string, d digest.Digest, source, actor string) (imported bool, err error) {
	st, ok := config.StageOf(s.opts.Stages, repo)
	if !ok || !st.Immutable {
		return false, invalid("%s is in no immutable stage: import its tags with a tag write, not a ledger record", repo)
	}
	if !names.ValidTag(tag) {
		return false, invalid("invalid tag %q", tag)
	}
	rec := Record{
		Source: source, Digest: d, Repository: repo, Tag: tag, Stage: st.Name,
		App: strings.TrimPrefix(repo, st.Prefix), Actor: actor, Outcome: OutcomeImported,
	}
	_, err = s.commit(ctx, rec, st, func(prev digest.Digest, exists bool, _ *Record) error {
		switch {
		case exists && prev == d:
			return errTagPresent
		case exists:
			return errorf(http.StatusConflict, CodeConflict, "%s:%s already names %s; an import never re-points a tag of immutable stage %s", repo, tag, prev, st.Name)
		}
		return nil
	})
	if errors.Is(err, errTagPresent) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("import %s:%s: %w", repo, tag, err)
	}
	return true, nil
}
