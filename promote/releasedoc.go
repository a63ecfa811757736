package promote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/storage"
)

// releaseAborting: a member turned out impossible after the commit point;
// the members already moved are being re-pointed (stored state only: a
// reader sees the release finished as aborted first).
const releaseAborting = "aborting"

// maxReleaseDoc bounds a stored release (50 members with their evidence).
const maxReleaseDoc = 4 << 20

// releaseDoc is ledger/releases/<id>. Written put-if-absent with State
// pending and Plan (the commit point), then replaced by compare-and-set
// with State complete (or aborted) and Members, the member records.
type releaseDoc struct {
	ID         string          `json:"id"`
	Stage      string          `json:"stage"`
	Actor      string          `json:"actor"`
	At         time.Time       `json:"at"`
	Reason     string          `json:"reason,omitempty"`
	RollbackOf string          `json:"rollback_of,omitempty"`
	State      string          `json:"state"`
	Error      string          `json:"error,omitempty"`
	Plan       []plannedMember `json:"plan"`
	Members    []Record        `json:"members,omitempty"`

	etag string // of the stored version read or written (not stored)
}

func (d *releaseDoc) release() Release {
	r := Release{ID: d.ID, Stage: d.Stage, Actor: d.Actor, At: d.At, Reason: d.Reason, RollbackOf: d.RollbackOf,
		State: d.State, Members: d.Members, Error: d.Error}
	if r.State == releaseAborting {
		r.State = ReleasePending
	}
	if r.Members == nil {
		r.Members = []Record{}
	}
	return r
}

// visibleTo: the caller may pull every member's target repository.
func (d *releaseDoc) visibleTo(may func(repo, action string) bool) bool {
	for _, p := range d.Plan {
		if !may(p.Repository, actionPull) {
			return false
		}
	}
	return true
}

// settled: nothing is left to write for the release.
func (d *releaseDoc) settled() bool { return d.State == ReleaseComplete || d.State == ReleaseAborted }

// readRelease reads release id; a missing one is storage.ErrNotFound.
func (s *Service) readRelease(ctx context.Context, id string) (*releaseDoc, error) {
	rc, info, err := s.store.Get(ctx, releaseKey(id), storage.GetOptions{})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxReleaseDoc+1))
	if err != nil {
		return nil, err
	}
	var d releaseDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("release %s is corrupt: %w", id, err)
	}
	d.etag = info.ETag
	return &d, nil
}

// writeRelease stores d: put-if-absent when it has no ETag yet (the first
// write), else put-if-match on it. Losing is storage.ErrPreconditionFailed.
func (s *Service) writeRelease(ctx context.Context, d *releaseDoc) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	var info storage.Info
	if d.etag == "" {
		info, err = s.store.PutIfAbsent(ctx, releaseKey(d.ID), bytes.NewReader(b), int64(len(b)))
	} else {
		info, err = s.store.PutIfMatch(ctx, releaseKey(d.ID), bytes.NewReader(b), int64(len(b)), d.etag)
	}
	if err == nil {
		d.etag = info.ETag
	}
	return err
}

// readReleases reads releases in parallel (a missing one is left nil).
func (s *Service) readReleases(ctx context.Context, ids []string) ([]*releaseDoc, error) {
	out := make([]*releaseDoc, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, id := range ids {
		g.Go(func() error {
			d, err := s.readRelease(gctx, id)
			if err == nil || errors.Is(err, storage.ErrNotFound) {
				out[i] = d
				return nil
			}
			return err
		})
	}
	return out, g.Wait()
}
