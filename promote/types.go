// Package promote moves an image from one stage to the next: the same
// digest re-tagged into the target repository, no blob data copied. It
// holds the engine (on the registry's metadata layer), the ledger of every
// promotion, the /api/v1 handlers, the CLI client and the webhooks.
package promote

import (
	"fmt"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/gate"
)

// Outcomes of a ledger record.
const (
	OutcomePromoted   = "promoted"    // the tag now names the digest
	OutcomeNoop       = "noop"        // the tag already named the digest
	OutcomeRolledBack = "rolled_back" // the tag was re-pointed to an earlier record's previous digest
	// OutcomeImported: `slipway import` set the tag, which did not exist,
	// from the stock registry (Source is "import:<source>/<repo>:<tag>").
	// It queues no webhook event: a migration is not a deployment.
	OutcomeImported = "imported"
)

// Record is one ledger entry: a promotion or a rollback of one target tag.
type Record struct {
	ID string `json:"id"`
	// Source is what was asked for ("staging/app:1.4.2" or
	// "staging/app@sha256:…"); for a rollback, the target reference.
	Source string        `json:"source"`
	Digest digest.Digest `json:"digest"`
	// Target is "<repository>:<tag>"; Repository, Tag and Stage are its
	// parts, App is the repository without its stage prefix.
	Target     string `json:"target"`
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Stage      string `json:"stage"`
	App        string `json:"app"`
	// PreviousDigest is what the tag named before ("" if it did not exist).
	PreviousDigest digest.Digest `json:"previous_digest,omitempty"`
	Actor          string        `json:"actor"`
	At             time.Time     `json:"at"`
	Reason         string        `json:"reason,omitempty"`
	Outcome        string        `json:"outcome"`
	// RollbackOf is the id of the record a rollback undid.
	RollbackOf string `json:"rollback_of,omitempty"`
	// Seq is the record's position in its tag's chain (1, 2, ...).
	Seq int64 `json:"seq"`
	// Evidence is what passed the target stage's gates: the signatures,
	// attestations and referrers, with the key each verified under.
	Evidence []gate.Proof `json:"evidence,omitempty"`
	// Release is the id of the release this record is a member of.
	Release string `json:"release,omitempty"`
}

// Request asks for a promotion.
type Request struct {
	Source string `json:"source"` // "staging/app:1.4.2" or "staging/app@sha256:…"
	To     string `json:"to"`     // target stage name
	// Tag in the target repository; default: the source's tag.
	Tag string `json:"tag,omitempty"`
	// ExpectDigest: refuse (409) unless the source resolves to it.
	ExpectDigest digest.Digest `json:"expect_digest,omitempty"`
	// ExpectPrevious: refuse (409) unless the target tag names it now
	// ("none" when the tag must not exist yet).
	ExpectPrevious string `json:"expect_previous,omitempty"`
	Reason         string `json:"reason,omitempty"`
}

// Query selects ledger records, newest first.
type Query struct {
	// Repository: an app name ("app", matches it in every stage) or a
	// full repository name ("production/app").
	Repository string
	Tag        string
	Stage      string // target stage
	Limit      int    // default 50, at most 500
	Cursor     string // from the previous page's NextCursor
}

// Page is one page of ledger records.
type Page struct {
	Records    []Record `json:"records"`
	NextCursor string   `json:"next_cursor,omitempty"`
}

// RepositoryInfo is one repository of the catalog.
type RepositoryInfo struct {
	Name  string `json:"name"`
	Stage string `json:"stage,omitempty"` // "" when under no stage prefix
	App   string `json:"app"`
}

// RepositoryQuery selects repositories in name order.
type RepositoryQuery struct {
	Search string // substring of the name
	Stage  string
	Limit  int    // default 100, at most 1000
	Cursor string // from the previous page's NextCursor
}

// RepositoryPage is one page of repositories.
type RepositoryPage struct {
	Repositories []RepositoryInfo `json:"repositories"`
	NextCursor   string           `json:"next_cursor,omitempty"`
}

// TagInfo describes one tag of a repository.
type TagInfo struct {
	Tag       string        `json:"tag"`
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"media_type"`
	// Size is the manifest, its config and layers (for an index: every
	// child's too), in bytes.
	Size int64 `json:"size"`
	// Platforms are "os/arch[/variant]" of an index's children or of an
	// image's config.
	Platforms []string `json:"platforms,omitempty"`
	// UpdatedAt is when the tag was last written (push or promotion).
	UpdatedAt time.Time `json:"updated_at"`
	// Stages lists the stages whose repository for the same app has the
	// digest under some tag ("staging", "production").
	Stages []string `json:"stages"`
	// Promoted is the newest ledger record that set this tag, if any.
	Promoted *Record `json:"promoted,omitempty"`
}

// Error is a refusal or failure with the HTTP status and code the API
// answers with: {"code","message"}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Failures lists every gate that did not pass (CodeGateFailed).
	Failures []GateFailure `json:"failures,omitempty"`
}

// GateFailure is one gate that refused one image: Source names the image
// ("staging/app:1.4"), the rest is gate.Failure.
type GateFailure struct {
	Source string `json:"source"`
	gate.Failure
}

func (e *Error) Error() string { return e.Message }

// Codes of Error: snake case, like the rest of /api/ (auth.APIError).
const (
	CodeInvalid        = "bad_request"      // 400
	CodeUnauthorized   = "unauthorized"     // 401
	CodeDenied         = "forbidden"        // 403
	CodeNotFound       = "not_found"        // 404
	CodeFixedTag       = "fixed_tag"        // 409
	CodeGuardFailed    = "guard_failed"     // 409
	CodeEdgeNotAllowed = "edge_not_allowed" // 409
	CodeGateFailed     = "gate_failed"      // 409: Error.Failures says which and why
	CodeConflict       = "conflict"         // 409: verification failed, contention
	CodeNotManifest    = "not_a_manifest"   // 422
	CodeUnavailable    = "unavailable"      // 503
	CodeInternal       = "internal"         // 500
	// Bodies refused as unreadable carry httpbody's codes:
	// request_too_large (413) and request_timeout (408).
)

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, CodeInvalid, format, args...)
}
