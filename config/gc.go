package config

import (
	"fmt"
	"time"
)

// GC configures the online garbage collector (package gc): each replica
// tries the collector lease every interval and, if it gets it, runs one
// collection. `slipway gc` runs one on demand with the same settings.
type GC struct {
	// Enabled turns the scheduled collection on. Off by default: an
	// operator first looks at a dry run (`slipway gc --dry-run`).
	Enabled bool `yaml:"enabled"`
	// Interval between two attempts of one replica to collect. An
	// attempt that finds a run succeeded less than an interval ago (by
	// the store's clock) skips, so the fleet collects about once per
	// interval, not once per replica.
	Interval time.Duration `yaml:"interval"`
	// Grace: objects younger than this, by the store's clock, are never
	// collected (a push uploads its blobs before its manifest).
	Grace time.Duration `yaml:"grace"`
	// DryRun: runs decide and report what they would free, and free
	// nothing.
	DryRun bool `yaml:"dry_run"`
	// Referrers: ReferrersFollowSubject (a referrer lives while its
	// subject does) or ReferrersKeep (every referrer stays).
	Referrers string `yaml:"referrers"`
	// Lease is how long the collector lease (gc/lease) holds without a
	// renewal; the holder renews it every third of it. A collector that
	// dies keeps the others waiting at most this long past their next
	// attempt. The lease only avoids duplicate work: correctness never
	// depends on it.
	Lease time.Duration `yaml:"lease"`
	// Concurrency bounds the store requests a collection keeps in
	// flight (`slipway gc`, and the server's collections while its
	// replica is idle).
	Concurrency int `yaml:"concurrency"`
	// BusyConcurrency bounds them instead while the replica running the
	// collection serves clients (a registry, API or admin request under
	// way or ended less than a second before), so that the collection
	// takes little of the store from them. `slipway gc` runs apart from
	// any replica: it always uses concurrency.
	BusyConcurrency int `yaml:"busy_concurrency"`
	// BusyShare, in (0, 1], is the share of the time each of those
	// busy_concurrency places may spend on requests: a request that took
	// d is followed by a pause of d×(1/busy_share − 1), so the collection
	// stays light on the store whatever its requests cost (a listing page
	// costs the store far more than a read). 1: no pause.
	BusyShare float64 `yaml:"busy_share"`
}

// Values of gc.referrers.
const (
	ReferrersFollowSubject = "follow_subject"
	ReferrersKeep          = "keep"
)

// Defaults of the gc section. Concurrency 16, and 2 at a tenth of the
// time while busy: see
// BENCHMARKS.md, "Garbage collection". The lease's 10 minutes: renewed every
// 3m20s, so two failed renewals in a row (a store hiccup) do not hand
// the lease over, and a crashed collector's work waits at most 10 minutes
// more, nothing next to the hourly interval.
func defaultGC() GC {
	return GC{Interval: time.Hour, Grace: 24 * time.Hour, Referrers: ReferrersFollowSubject, Lease: 10 * time.Minute,
		Concurrency: 16, BusyConcurrency: 2, BusyShare: 0.1}
}

// maxGCConcurrency: more requests in flight than this only queue up.
const maxGCConcurrency = 256

// minLease keeps renewals (every third of the lease) well apart from the
// store's round trips.
const minLease = 3 * time.Second

func (g GC) problems() []problem {
	var ps []problem
	add := func(key, format string, args ...any) {
		ps = append(ps, problem{key, fmt.Sprintf(format, args...)})
	}
	if g.Interval <= 0 {
		add("gc.interval", "must be > 0, a duration like \"1h\", got %s", g.Interval)
	}
	if g.Grace < 0 {
		add("gc.grace", "must be >= 0, a duration like \"24h\", got %s", g.Grace)
	}
	if g.Referrers != ReferrersFollowSubject && g.Referrers != ReferrersKeep {
		add("gc.referrers", "must be %s or %s, got %q", ReferrersFollowSubject, ReferrersKeep, g.Referrers)
	}
	if g.Concurrency < 1 || g.Concurrency > maxGCConcurrency {
		add("gc.concurrency", "must be between 1 and %d, got %d", maxGCConcurrency, g.Concurrency)
	}
	if g.BusyConcurrency < 1 || g.BusyConcurrency > max(g.Concurrency, 1) {
		add("gc.busy_concurrency", "must be between 1 and gc.concurrency (%d), got %d", g.Concurrency, g.BusyConcurrency)
	}
	if !(g.BusyShare > 0 && g.BusyShare <= 1) {
		add("gc.busy_share", "must be > 0 and <= 1, got %v", g.BusyShare)
	}
	if g.Lease < minLease {
		add("gc.lease", "must be at least %s, got %s", minLease, g.Lease)
	}
	return ps
}
