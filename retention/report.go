package retention

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

// ReportsPrefix holds one report per pass:
//
//	gc/retention/<inverted ns>-<id>   the report (JSON), newest first in a listing
//
// written with a plain put at the start of the pass and again at its end.
const ReportsPrefix = "gc/retention/"

// Report is what one pass did.
type Report struct {
	// ID is the report's name under ReportsPrefix.
	ID       string    `json:"id"`
	Started  time.Time `json:"started"`           // the store's clock
	Finished time.Time `json:"finished,omitzero"` // zero while running
	// DryRun: the whole pass only reported (ApplyOptions.DryRun).
	DryRun       bool `json:"dry_run"`
	Repositories int  `json:"repositories"` // a rule applied to
	Tags         int  `json:"tags"`         // in those repositories
	// Deleted are the tags deleted, or that would be (Deletion.DryRun).
	Deleted []Deletion `json:"deleted"`
	// Changed are tags that would have been deleted but were written again
	// between the decision and the delete: kept.
	Changed []Deletion `json:"changed,omitempty"`
	Errors  []string   `json:"errors,omitempty"`

	began time.Time // this process's clock at the start (monotonic)
}

// Deletion is one tag a rule deleted (or would delete, in a dry run).
type Deletion struct {
	Repository string        `json:"repository"`
	Tag        string        `json:"tag"`
	Digest     digest.Digest `json:"digest"`
	Pushed     time.Time     `json:"pushed"`
	Rule       int           `json:"rule"` // index in retention.rules
	Reason     string        `json:"reason"`
	DryRun     bool          `json:"dry_run"`
}

func newReport(dry bool) Report {
	var b [4]byte
	_, _ = rand.Read(b[:])
	inv := uint64(math.MaxInt64 - time.Now().UnixNano())
	return Report{ID: fmt.Sprintf("%016x-%s", inv, hex.EncodeToString(b[:])), DryRun: dry, Deleted: []Deletion{}}
}

// maxReport bounds a report read back.
const maxReport = 64 << 20

// begin stores the report as started; the write's time is the pass's
// "now" in the store's clock.
func (r *Retention) begin(ctx context.Context, rep *Report) (time.Time, error) {
	rep.began = time.Now()
	info, err := r.put(ctx, rep)
	if err != nil {
		return time.Time{}, fmt.Errorf("retention: storing the report: %w", err)
	}
	if info.ModTime.IsZero() {
		if info, err = r.store.Stat(ctx, ReportsPrefix+rep.ID); err != nil {
			return time.Time{}, fmt.Errorf("retention: reading the store's clock: %w", err)
		}
	}
	rep.Started = info.ModTime
	return info.ModTime, nil
}

// end stores the finished report; cause (the pass's failure, if any) is
// recorded in it and returned, joined with a failure to store it.
func (r *Retention) end(ctx context.Context, rep *Report, cause error) error {
	if cause != nil {
		rep.Errors = append(rep.Errors, cause.Error())
	}
	// The store's start time plus the time this pass took.
	rep.Finished = rep.Started.Add(time.Since(rep.began))
	if _, err := r.put(context.WithoutCancel(ctx), rep); err != nil {
		return errors.Join(cause, fmt.Errorf("retention: storing the report: %w", err))
	}
	// Best effort: a failed prune leaves older reports for the next pass.
	_, _ = storage.KeepNewest(context.WithoutCancel(ctx), r.store, ReportsPrefix, KeptReports)
	return cause
}

// KeptReports is how many pass reports stay under ReportsPrefix: each
// pass deletes those older than the newest KeptReports when it ends.
const KeptReports = 100

func (r *Retention) put(ctx context.Context, rep *Report) (storage.Info, error) {
	b, err := json.Marshal(rep)
	if err != nil {
		return storage.Info{}, err
	}
	return r.store.Put(ctx, ReportsPrefix+rep.ID, bytes.NewReader(b), int64(len(b)))
}

// Reports returns the stored reports, newest first, at most n.
func Reports(ctx context.Context, s storage.Store, n int) ([]Report, error) {
	page, err := s.List(ctx, storage.ListOptions{Prefix: ReportsPrefix, MaxKeys: n})
	if err != nil {
		return nil, err
	}
	out := make([]Report, 0, len(page.Objects))
	for _, o := range page.Objects {
		rc, _, err := s.Get(ctx, o.Key, storage.GetOptions{})
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(rc, maxReport))
		rc.Close()
		if err != nil {
			return nil, err
		}
		var rep Report
		if err := json.Unmarshal(b, &rep); err != nil {
			return nil, fmt.Errorf("retention report %s is corrupt: %w", o.Key, err)
		}
		out = append(out, rep)
	}
	return out, nil
}

// Summary is the pass in one line, for logs and `slipway gc`: the tags
// deleted, those a dry-run rule (or a dry pass) only reported, the tags
// written again since the decision (kept), and the repositories failed.
func (r Report) Summary() string {
	deleted, would := 0, 0
	for _, d := range r.Deleted {
		if d.DryRun {
			would++
		} else {
			deleted++
		}
	}
	s := fmt.Sprintf("retention: %d tags deleted, %d would be (dry run), %d changed since and kept, of %d tags in %d repositories",
		deleted, would, len(r.Changed), r.Tags, r.Repositories)
	if len(r.Errors) > 0 {
		s += fmt.Sprintf("; %d errors, first: %s", len(r.Errors), r.Errors[0])
	}
	return s + "; report " + ReportsPrefix + r.ID
}
