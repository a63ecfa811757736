package server

import (
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// gcBackendFor is package gc on store: the collector over the registry's
// metadata and the promotion ledger, and the reports under gc/runs/.
func gcBackendFor(store storage.Store, meta *registry.Metadata) gcBackend {
	_, _ = store, meta // the collector lands with the gc package's Run
	return gcBackend{}
}
