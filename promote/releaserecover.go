package promote

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/slipway/slipway/storage"
)

// releaseGrace: a pending release younger than this is left to its writer
// by recoverReleases (finishing it at the same time is safe, only wasted
// work). A marker without a release older than this is taken for a writer
// that died before the commit point.
const releaseGrace = 5 * time.Second

// releaseLoopEvery is how often RunReleases looks for pending releases.
const releaseLoopEvery = 30 * time.Second

// RunReleases finishes releases whose writer died, every 30 s, until ctx
// is done (every replica runs it; they may overlap).
func (s *Service) RunReleases(ctx context.Context) {
	t := time.NewTicker(releaseLoopEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.recoverReleases(ctx)
		}
	}
}

// recoverReleases finishes the pending releases older than releaseGrace:
// one List when there are none. Run first by every promotion, rollback and
// release call, so that after the next such request a release whose
// writer died is whole. Failures are logged: they must not fail the
// request that happened to look.
func (s *Service) recoverReleases(ctx context.Context) {
	page, err := s.store.List(ctx, storage.ListOptions{Prefix: pendingPrefix, MaxKeys: 100})
	if err != nil {
		s.log.WarnContext(ctx, "release recovery: listing pending releases failed", "error", err.Error())
		return
	}
	cutoff := s.opts.Now().Add(-releaseGrace)
	for _, o := range page.Objects {
		id := strings.TrimPrefix(o.Key, pendingPrefix)
		if !validID(id) || idTime(id).After(cutoff) {
			continue
		}
		if _, err := s.settledRelease(ctx, id, true); err != nil {
			s.log.WarnContext(ctx, "release recovery failed", "release", id, "error", err.Error())
		}
	}
}

// settledRelease reads release id and finishes it if it is not settled;
// nil when there is no such release. marked: its pending marker was seen,
// so even a settled release is finished (the marker deleted: its writer
// died between the last write and that delete).
func (s *Service) settledRelease(ctx context.Context, id string, marked bool) (*releaseDoc, error) {
	d, err := s.readRelease(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, s.fenceRelease(ctx, id)
	}
	if err != nil {
		return nil, storeError(err)
	}
	if marked || !d.settled() {
		if err := s.finishRelease(context.WithoutCancel(ctx), d); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// fenceRelease handles a marker with no release: its writer died before
// the commit point (or is still validating, when younger than
// releaseGrace: then it is left alone). An aborted release with no
// members takes the id, put-if-absent, so a writer that was only slow
// loses its commit and reports the release as not made; then the marker
// goes.
func (s *Service) fenceRelease(ctx context.Context, id string) error {
	if idTime(id).After(s.opts.Now().Add(-releaseGrace)) {
		return nil
	}
	if _, err := s.store.Stat(ctx, pendingKey(id)); errors.Is(err, storage.ErrNotFound) {
		return nil
	} else if err != nil {
		return storeError(err)
	}
	d := releaseDoc{ID: id, At: idTime(id).UTC(), State: ReleaseAborted, Error: "its writer stopped before the commit point: nothing was promoted"}
	if err := s.writeRelease(ctx, &d); err != nil && !errors.Is(err, storage.ErrPreconditionFailed) {
		return storeError(err)
	}
	if err := s.store.Delete(ctx, pendingKey(id)); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return storeError(err)
	}
	return nil
}

// listReleases reads a page of releases newest first, finishing pending
// ones, leaving out those the caller may not see.
func (s *Service) listReleases(ctx context.Context, limit int, cursor string, may func(repo, action string) bool) (ReleasePage, error) {
	page := ReleasePage{Releases: []Release{}}
	after := ""
	if cursor != "" {
		after = releaseKey(cursor)
	}
	for scanned := 0; len(page.Releases) < limit && scanned < maxScan; {
		lp, err := s.store.List(ctx, storage.ListOptions{Prefix: releasesPrefix, StartAfter: after, MaxKeys: min(limit-len(page.Releases), 100)})
		if err != nil {
			return ReleasePage{}, storeError(err)
		}
		ids := make([]string, len(lp.Objects))
		for i, o := range lp.Objects {
			ids[i] = strings.TrimPrefix(o.Key, releasesPrefix)
		}
		docs, err := s.readReleases(ctx, ids)
		if err != nil {
			return ReleasePage{}, storeError(err)
		}
		for i, d := range docs {
			after = releaseKey(ids[i])
			scanned++
			if d == nil {
				continue
			}
			if !d.settled() {
				if err := s.finishRelease(context.WithoutCancel(ctx), d); err != nil {
					return ReleasePage{}, err
				}
			}
			// A fenced-off release (no plan) was never made: not listed.
			if len(d.Plan) == 0 || !d.visibleTo(may) {
				continue
			}
			page.Releases = append(page.Releases, d.release())
			if len(page.Releases) == limit {
				break
			}
		}
		if !lp.Truncated || len(lp.Objects) == 0 {
			return page, nil
		}
	}
	page.NextCursor = strings.TrimPrefix(after, releasesPrefix)
	return page, nil
}
