package server

import (
	"context"
	"log/slog"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/retention"
	"github.com/slipway/slipway/storage"
)

// newRetention is the configured retention rules on store (nil: no
// rule). ledger is the promotion service (what retention never touches).
func newRetention(cfg config.Config, store storage.Store, meta *registry.Metadata, ledger retention.Ledger, log *slog.Logger) *retention.Retention {
	if len(cfg.Retention.Rules) == 0 {
		return nil
	}
	return retention.New(store, meta, retention.Options{Rules: cfg.Retention.Rules, Stages: cfg.Stages, Ledger: ledger, Logger: log})
}

// applyRetention is the retention pass every collection runs first (the
// scheduled ones, POST /api/v1/gc/runs and `slipway gc`), so that the
// collector frees in the same run what the deleted tags held. dry (the
// collection's dry run) makes every rule only report. ran is false when
// no rule deletes tags (a, nil: none configured).
//
// Its error does not stop the collection: the collector is correct on
// whatever tags exist, and a retention failure (an unreadable ledger, a
// report that cannot be stored) must not stop the freeing of what is
// already garbage. The caller makes the error seen: a warning in the
// server's log, stderr and exit status 1 for `slipway gc`; the stored
// report (retention.ReportsPrefix) records it too.
func applyRetention(ctx context.Context, a retention.Applier, dry bool) (rep retention.Report, ran bool, err error) {
	if a == nil {
		return retention.Report{}, false, nil
	}
	rep, err = a.Apply(ctx, retention.ApplyOptions{DryRun: dry})
	return rep, true, err
}
