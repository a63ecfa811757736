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
	// Interval between two attempts of one replica to collect.
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
}

// Values of gc.referrers.
const (
	ReferrersFollowSubject = "follow_subject"
	ReferrersKeep          = "keep"
)

// Defaults of the gc section. The lease's 10 minutes: renewed every
// 3m20s, so two failed renewals in a row (a store hiccup) do not hand
// the lease over, and a crashed collector's work waits at most 10 minutes
// more, nothing next to the hourly interval.
func defaultGC() GC {
	return GC{Interval: time.Hour, Grace: 24 * time.Hour, Referrers: ReferrersFollowSubject, Lease: 10 * time.Minute}
}

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
	if g.Lease < minLease {
		add("gc.lease", "must be at least %s, got %s", minLease, g.Lease)
	}
	return ps
}
