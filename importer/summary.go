package importer

import (
	"errors"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/importer/stocklayout"
)

// Ways bytes reach Slipway besides CopyData's: Referenced (same bucket,
// an outside descriptor names the stock object: no byte moves), and
// Copy, the dry run's estimate for a copy whose way (store copy or
// streamed) is only known by trying.
const (
	Referenced = "referenced"
	Copy       = "copy"
)

// maxProblems bounds the problems a Summary lists (ProblemsTotal counts
// them all).
const maxProblems = 1000

// Counts is what happened to the objects of one kind.
type Counts struct {
	// Imported: written by this run (with DryRun: would be).
	Imported int64 `json:"imported"`
	// Present: Slipway already had it (an earlier run, a push).
	Present int64 `json:"present"`
	// Skipped: not imported (a problem, a conflict, something it needs
	// skipped).
	Skipped int64 `json:"skipped"`
}

// Conflict is a tag Slipway already has with another digest than the
// stock registry's.
type Conflict struct {
	Tag     string        `json:"tag"` // "<slipway repository>:<tag>"
	Stock   digest.Digest `json:"stock"`
	Slipway digest.Digest `json:"slipway"`
	// Overwritten: --overwrite-mutable replaced it (with DryRun: would).
	Overwritten bool `json:"overwritten"`
	// Why it was not overwritten, when it was not.
	Reason string `json:"reason,omitempty"`
}

// Problem is one object not imported, and why.
type Problem struct {
	Key     string `json:"key"` // the stock object or the import's object
	Message string `json:"message"`
}

// Summary is the result of a run, printed as JSON at its end.
type Summary struct {
	Source       string `json:"source"`
	DryRun       bool   `json:"dry_run"`
	Verify       bool   `json:"verify"`
	Repositories Counts `json:"repositories"`
	Blobs        Counts `json:"blobs"`
	Manifests    Counts `json:"manifests"` // without referrers
	Referrers    Counts `json:"referrers"` // manifests with a subject
	Tags         Counts `json:"tags"`
	// UnreferencedLayers: layer links no imported manifest references
	// (not imported).
	UnreferencedLayers int64      `json:"unreferenced_layers"`
	Conflicts          []Conflict `json:"conflicts"`
	Problems           []Problem  `json:"problems"` // the first maxProblems
	ProblemsTotal      int64      `json:"problems_total"`
	// Bytes of the blobs imported, per way (CopiedByStore, Streamed,
	// Referenced; with DryRun: Referenced or Copy).
	Bytes           map[string]int64 `json:"bytes"`
	DurationSeconds float64          `json:"duration_seconds"`
}

// Written is the number of objects this run wrote (imported), whatever
// their kind: 0 on a run that found everything in place.
func (s *Summary) Written() int64 {
	return s.Repositories.Imported + s.Blobs.Imported + s.Manifests.Imported + s.Referrers.Imported + s.Tags.Imported
}

// tally is a Summary being filled by concurrent workers.
type tally struct {
	mu    sync.Mutex
	s     Summary
	begun time.Time
	// onProblem is called (under mu) after each problem is recorded.
	onProblem func()
}

func newTally(source string, dryRun, verify bool) *tally {
	return &tally{s: Summary{Source: source, DryRun: dryRun, Verify: verify, Conflicts: []Conflict{}, Problems: []Problem{}, Bytes: map[string]int64{}}, begun: time.Now()}
}

// count adds one object of a kind (a field of the summary) to a column.
func (t *tally) count(kind func(*Summary) *Counts, column func(*Counts) *int64) {
	t.mu.Lock()
	*column(kind(&t.s))++
	t.mu.Unlock()
}

func (t *tally) bytes(way string, n int64) {
	t.mu.Lock()
	t.s.Bytes[way] += n
	t.mu.Unlock()
}

func (t *tally) conflict(c Conflict) {
	t.mu.Lock()
	t.s.Conflicts = append(t.s.Conflicts, c)
	t.mu.Unlock()
}

// problem records err about the object key; the key of a corrupt stock
// object or of a skipped one is taken from the error when key is "".
func (t *tally) problem(key string, err error) {
	var ce *stocklayout.CorruptError
	var se *SkippedError
	switch {
	case key != "":
	case errors.As(err, &se):
		key = se.What
	case errors.As(err, &ce):
		key = ce.Key
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.s.ProblemsTotal++
	if len(t.s.Problems) < maxProblems {
		t.s.Problems = append(t.s.Problems, Problem{Key: key, Message: err.Error()})
	}
	if t.onProblem != nil {
		t.onProblem()
	}
}

// summary is the final summary.
func (t *tally) summary() Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.s
	s.DurationSeconds = time.Since(t.begun).Seconds()
	return s
}

// Column and kind selectors for tally.count.
func imported(c *Counts) *int64 { return &c.Imported }
func present(c *Counts) *int64  { return &c.Present }
func skipped(c *Counts) *int64  { return &c.Skipped }

func repositories(s *Summary) *Counts { return &s.Repositories }
func blobs(s *Summary) *Counts        { return &s.Blobs }
func tags(s *Summary) *Counts         { return &s.Tags }
