package server

import (
	"context"

	"github.com/slipway/slipway/gc"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// gcBackendFor is package gc on store: collectors over the registry's
// metadata and the promotion ledger (one ledger reader for every run: it
// reads each immutable record once per process), and the reports under
// gc/runs/.
func gcBackendFor(store storage.Store, meta *registry.Metadata) gcBackend {
	ledger := promote.NewLedgerDigests(store)
	return gcBackend{
		collector: func(opts gc.Options) collectorRun { return gc.New(store, meta, ledger, opts) },
		reports: func(ctx context.Context, n int) ([]gc.Report, error) {
			return gc.ListReports(ctx, store, n)
		},
	}
}
