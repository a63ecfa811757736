package promote

import (
	"context"
	"net/http"
	"time"
)

// ReleaseRequest asks for several images to enter one stage together:
// every one or none.
type ReleaseRequest struct {
	To     string         `json:"to"`
	Images []ReleaseImage `json:"images"`
	Reason string         `json:"reason,omitempty"`
}

// ReleaseImage is one member of a release request.
type ReleaseImage struct {
	Source string `json:"source"` // "staging/api:1.4" or "staging/api@sha256:…"
	Tag    string `json:"tag,omitempty"`
}

// States of a Release.
const (
	ReleasePending  = "pending"  // decided; members' tags are being written
	ReleaseComplete = "complete" // every member's tag names its digest
	// ReleaseAborted: a member became impossible after the commit point
	// (a racing promotion created its fixed tag with another digest);
	// members already moved were re-pointed to their previous digest
	// (Error says which member and why; docs/architecture.md 2.5).
	ReleaseAborted = "aborted"
)

// OutcomeSuperseded is the outcome of a release member whose tag a later
// release moved before this one was applied (of two releases racing over
// the same tags, the later wins every shared tag, never a mix). It is only
// in Release.Members: no ledger record, no ID; At is when the later
// release moved the tag.
const OutcomeSuperseded = "superseded"

// Release is a set of promotions into one stage that happen together.
type Release struct {
	ID         string    `json:"id"`
	Stage      string    `json:"stage"`
	Actor      string    `json:"actor"`
	At         time.Time `json:"at"`
	Reason     string    `json:"reason,omitempty"`
	RollbackOf string    `json:"rollback_of,omitempty"`
	State      string    `json:"state"`
	// Members are the ledger records of the release, one per image, in
	// the order of the request (a superseded member has no record: see
	// OutcomeSuperseded); an aborted release also lists the records that
	// re-pointed its moved members back.
	Members []Record `json:"members"`
	// Error says why an aborted release was aborted.
	Error string `json:"error,omitempty"`
}

// ReleasePage is one page of releases, newest first.
type ReleasePage struct {
	Releases   []Release `json:"releases"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// Limits of a release and of the release list.
const (
	maxReleaseImages = 50
	defaultReleases  = 20
	maxReleases      = 100
)

// CreateRelease promotes every image of req into req.To, or none: every
// member is validated (permissions, sources, fixed tags, gates) before
// anything is written; the release record is the commit point, after
// which the release rolls forward (releaseapply.go).
func (s *Service) CreateRelease(ctx context.Context, req ReleaseRequest) (Release, error) {
	if err := s.requireCaller(ctx); err != nil {
		return Release{}, err
	}
	s.recoverReleases(ctx)
	plan, st, err := s.planRelease(ctx, req)
	if err != nil {
		return Release{}, err
	}
	if err := s.copyMembers(ctx, plan); err != nil {
		return Release{}, err
	}
	doc := releaseDoc{Stage: st.Name, Actor: s.actor(ctx), Reason: req.Reason, State: ReleasePending, Plan: plan}
	return s.runRelease(ctx, doc)
}

// GetRelease returns release id, finishing it first if its writer died.
func (s *Service) GetRelease(ctx context.Context, id string) (Release, error) {
	if err := s.requireCaller(ctx); err != nil {
		return Release{}, err
	}
	notFound := errorf(http.StatusNotFound, CodeNotFound, "no release with id %q", id)
	if !validID(id) {
		return Release{}, notFound
	}
	doc, err := s.settledRelease(ctx, id, false)
	if err != nil {
		return Release{}, err
	}
	if doc == nil {
		return Release{}, notFound
	}
	may, err := s.permissions(ctx)
	if err != nil {
		return Release{}, err
	}
	if !doc.visibleTo(may) {
		return Release{}, notFound
	}
	return doc.release(), nil
}

// Releases lists releases, newest first; releases with a member the
// caller may not pull are left out. Pending releases on the page are
// finished first.
func (s *Service) Releases(ctx context.Context, limit int, cursor string) (ReleasePage, error) {
	if err := s.requireCaller(ctx); err != nil {
		return ReleasePage{}, err
	}
	switch {
	case limit < 0 || limit > maxReleases:
		return ReleasePage{}, invalid("limit must be between 1 and %d", maxReleases)
	case limit == 0:
		limit = defaultReleases
	}
	if cursor != "" && !validID(cursor) {
		return ReleasePage{}, invalid("invalid cursor %q", cursor)
	}
	s.recoverReleases(ctx)
	may, err := s.permissions(ctx)
	if err != nil {
		return ReleasePage{}, err
	}
	return s.listReleases(ctx, limit, cursor, may)
}
