package promote

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// Authorizer tells which actions the caller in ctx may take on a
// repository (auth.Service.Allowed).
type Authorizer func(ctx context.Context, repo string) ([]string, error)

// Identify names the caller in ctx for the ledger's actor field ("" for
// none).
type Identify func(ctx context.Context) string

// Options configure a Service.
type Options struct {
	Stages   []config.Stage
	Allowed  Authorizer
	Actor    Identify
	Webhooks []config.Webhook
	Logger   *slog.Logger
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// Service is the promotion service: engine, ledger, inventory. Every
// method checks the caller's permissions itself, so the HTTP API and the
// admin pages share one set of rules.
type Service struct {
	store storage.Store
	meta  *registry.Metadata
	opts  Options
	log   *slog.Logger
}

// New returns the service on the registry's metadata and its store.
func New(store storage.Store, meta *registry.Metadata, opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{store: store, meta: meta, opts: opts, log: opts.Logger}
}

// Stages are the configured stages, in order.
func (s *Service) Stages() []config.Stage { return s.opts.Stages }

// storeError turns a storage failure into the API's error.
func storeError(err error) error {
	var pe *Error
	switch {
	case errors.As(err, &pe):
		return err
	case errors.Is(err, storage.ErrUnavailable):
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "storage is unavailable, try again later")
	default:
		return err
	}
}
