// Package gc is the online garbage collector: it frees blobs, manifests,
// links and data no root reaches, while replicas keep serving, with the
// tombstone protocol (package tombstone) deciding every race with writers.
package gc

import "time"

// Counts is a number of objects and their bytes.
type Counts struct {
	Objects int64 `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

// Report is what one run did; it is stored as gc/runs/<inverted ns>-<run>
// and served by GET /api/v1/gc/runs.
type Report struct {
	Run      string    `json:"run"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitempty"` // zero while running
	DryRun   bool      `json:"dry_run"`
	Examined Counts    `json:"examined"`
	Freed    Counts    `json:"freed"` // in a dry run: what would be freed
	Rescued  int64     `json:"rescued"`
	// Pending: tombstones of this run not yet resolved (deletions in
	// flight); zero once finished.
	Pending int64 `json:"pending"`
	// Deleted lists the keys freed (or, in a dry run, that would be),
	// at most MaxListed of them.
	Deleted []string `json:"deleted,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// MaxListed bounds Report.Deleted.
const MaxListed = 10000

// KeptReports is how many run reports stay under gc/runs/: each run
// deletes those older than the newest KeptReports when it finishes (four
// days of hourly runs; a report is at most a few MiB).
const KeptReports = 100

// Options configure one run.
type Options struct {
	// Grace: objects younger than this (by the store's clock) are roots.
	Grace time.Duration
	// GraceFor, if set, is how long an untagged manifest of a repository
	// must stay (retention's untagged_after): a manifest link of repo is
	// a root while younger than the longer of Grace and GraceFor(repo).
	// Only manifest links: blob links, referrer entries, records and data
	// keep Grace (what a kept manifest needs stays through it). nil:
	// Grace everywhere.
	GraceFor func(repo string) time.Duration
	// UploadsPurgeAfter: the uploads.purge_after of the configuration.
	UploadsPurgeAfter time.Duration
	// DryRun: decide and report, delete nothing, write no tombstone.
	DryRun bool
	// KeepReferrers: referrers: keep (every referrer stays); default
	// follow_subject (a referrer lives only while its subject does).
	KeepReferrers bool
	// Progress, if set, is called now and then with the report so far
	// (after each stage, and at the end).
	Progress func(Report)
	// Fence is how long the collector waits between announcing its sweep
	// and writing its first tombstone: 0 means tombstone.Fence, which the
	// protocol needs (> tombstone.CacheFor); < 0 waits not at all (tests
	// whose writers all go through one Guard-free path).
	Fence time.Duration
	// LinkTTL, if > 0, holds a descriptor whose last link this run
	// removed for that long (then the next run frees it), for replicas
	// that serve blob GETs from a remembered link (registry
	// Options.BlobLinkTTL). 0 (the default) or < 0: no hold. Without a
	// hold such a GET finds the data gone, re-reads the store and answers
	// 404 BLOB_UNKNOWN, for a blob no repository links any more.
	LinkTTL time.Duration
	// Concurrency bounds the store requests in flight (0: 16).
	Concurrency int
	// BatchSize bounds the candidates handled per protocol round, and so
	// the memory they hold (0: 10,000).
	BatchSize int
}
