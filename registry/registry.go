// Package registry implements the OCI distribution API v1.1 (/v2/) on a
// storage.Store: uploads, blobs, manifests, tags, referrers and catalog.
package registry

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway/slipway/internal/bufpool"
	"github.com/slipway/slipway/storage"
)

// Options tune the registry.
type Options struct {
	// PublicURL is the externally visible base URL ("http://host:port")
	// used in Location headers. Empty: Locations are relative paths, which
	// every client resolves against the URL it called.
	PublicURL string
	// Redirect answers blob GETs with a presigned URL when the store can
	// presign (S3); RedirectExpiry bounds the URL's life.
	Redirect       bool
	RedirectExpiry time.Duration
	// RedirectMinSize: smaller blobs are served through the registry even
	// with Redirect (the client's second request, to another host, costs
	// more than their bytes). 0: every blob is redirected.
	RedirectMinSize int64
	// UploadKey signs upload ids (uploadid.go); every replica sharing the
	// store must use the same. Empty: a fixed key (tests, embedded use).
	UploadKey []byte
	// UploadTTL is how long an upload id that never stored data stays
	// usable: the purge age of sessions (uploads.purge_after), so a purged
	// session is not revived. 0: 24 h.
	UploadTTL time.Duration
	// BlobLinkTTL bounds how long a replica trusts a "repository has blob"
	// answer it remembers (meta.go). 0: defaultBlobLinkTTL; < 0: off.
	BlobLinkTTL time.Duration
	// Account names who a request is for (the authenticated login), for
	// the per-account bounds on upload sessions (opensessions.go). nil:
	// every request is one account.
	Account func(*http.Request) string
	// MaxOpenPerAccount bounds the upload sessions holding data that one
	// account may have open through this replica; 0: no bound.
	MaxOpenPerAccount int
	// SessionRate bounds the new upload sessions (POSTs) one account may
	// start through this replica, per second, with bursts of SessionBurst;
	// 0: no bound.
	SessionRate  float64
	SessionBurst int
	// BucketView reads the data that imported blobs' descriptors name
	// outside Slipway's keys (docs/architecture.md §7.2), from the same
	// bucket as the store: the server takes it from the backend
	// (storage.BucketViewer). nil: such blobs answer 500; HEAD still works.
	BucketView storage.BucketView
	// Logger receives operational messages. nil: slog.Default().
	Logger *slog.Logger
	// Metrics, when set, receives the registry's own metrics.
	Metrics prometheus.Registerer
}

// Registry serves /v2/ on a store.
type Registry struct {
	store   storage.Store
	meta    *Metadata
	opts    Options
	uploads prometheus.Gauge
	// copyBuffers are the buffers blob bodies are sent through: 1 MiB
	// reads fetch a cold blob from disk faster than io.Copy's 32 KiB.
	copyBuffers *bufpool.Pool
	// sessions runs blob upload sessions (sessionstore.go, upload.go).
	sessions *uploads
	// background counts tag journal marks left running after a response
	// (tagjournal.go; Wait).
	background sync.WaitGroup
}

// New returns a registry on store.
func New(store storage.Store, opts Options) *Registry {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if len(opts.UploadKey) == 0 {
		opts.UploadKey = defaultUploadKey
	}
	if opts.UploadTTL <= 0 {
		opts.UploadTTL = 24 * time.Hour
	}
	if opts.BlobLinkTTL == 0 {
		opts.BlobLinkTTL = defaultBlobLinkTTL
	}
	if opts.RedirectExpiry <= 0 {
		opts.RedirectExpiry = 20 * time.Minute
	}
	r := &Registry{
		opts: opts,
		uploads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "slipway_uploads_in_progress",
			Help: "Blob upload requests (POST, PATCH, PUT) being served by this process.",
		}),
	}
	// Every tag write is journaled (tagjournal.go); marking a record done
	// is work after the response.
	r.store = journalTags(store, &r.background)
	r.meta = newMeta(r.store, opts.BlobLinkTTL)
	r.meta.unjournaled = store
	r.meta.view = opts.BucketView
	r.sessions = newUploads(r.store, r.meta, r.writeSegment, opts)
	r.copyBuffers = newCopyBuffers()
	if opts.Metrics != nil {
		opts.Metrics.MustRegister(r.uploads)
	}
	return r
}
