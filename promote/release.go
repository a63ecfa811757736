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
)

// Release is a set of promotions into one stage that happen together.
type Release struct {
	ID         string    `json:"id"`
	Stage      string    `json:"stage"`
	Actor      string    `json:"actor"`
	At         time.Time `json:"at"`
	Reason     string    `json:"reason,omitempty"`
	RollbackOf string    `json:"rollback_of,omitempty"`
	State      string    `json:"state"`
	// Members are the ledger records of the release, one per image.
	Members []Record `json:"members"`
}

// ReleasePage is one page of releases, newest first.
type ReleasePage struct {
	Releases   []Release `json:"releases"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

func notYet() error {
	return errorf(http.StatusNotImplemented, "not_implemented", "releases are not implemented yet")
}

// CreateRelease promotes every image of req into req.To, or none.
func (s *Service) CreateRelease(ctx context.Context, req ReleaseRequest) (Release, error) {
	return Release{}, notYet()
}

// GetRelease returns release id, finishing it first if its writer died.
func (s *Service) GetRelease(ctx context.Context, id string) (Release, error) {
	return Release{}, notYet()
}

// Releases lists releases, newest first.
func (s *Service) Releases(ctx context.Context, limit int, cursor string) (ReleasePage, error) {
	return ReleasePage{}, notYet()
}

// RollbackRelease re-points every member of release id to what it named
// before, as one new release.
func (s *Service) RollbackRelease(ctx context.Context, id, reason string) (Release, error) {
	return Release{}, notYet()
}
