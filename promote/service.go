package promote

import (
	"context"
	"errors"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gate"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// Authorizer returns what the caller in ctx may do, per repository
// (auth.Service.Permissions).
type Authorizer func(ctx context.Context) (func(repo string) []string, error)

// Identify names the caller in ctx for the ledger's actor field ("" for
// none).
type Identify func(ctx context.Context) string

// Options configure a Service.
type Options struct {
	Stages  []config.Stage
	Allowed Authorizer
	Actor   Identify
	// Outbox receives an event for every promotion and rollback that
	// changed a tag (webhooks); nil: none.
	Outbox Outbox
	Logger *slog.Logger
	// Gates verifies the target stage's gates before a promotion or a
	// rollback; nil: no stage is gated.
	Gates *gate.Checker
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
	locks keyedMutex
	// shapes caches what the inventory shows of each digest.
	shapes *lru.Cache[digest.Digest, shape]
	// records caches the ledger records the inventory shows (inventory.go).
	records *lru.Cache[string, Record]
	// gateCache holds recent gate verdicts for the admin (gatestatus.go).
	gateCache *lru.Cache[gateKey, gateVerdict]
}

// Outbox durably queues an event for delivery (webhook.Outbox). id and at
// identify the event: queuing them again is a no-op, so a roll forward that repeats a
// crashed writer's steps sends nothing twice.
type Outbox interface {
	EnqueueOnce(ctx context.Context, id string, at time.Time, event string, payload any) error
}

// New returns the service on the registry's metadata and its store.
func New(store storage.Store, meta *registry.Metadata, opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{store: store, meta: meta, opts: opts, log: opts.Logger, locks: keyedMutex{m: map[string]*keyedEntry{}}, shapes: newShapes(), records: newRecords(), gateCache: newGateStatusCache()}
}

// keyedMutex serialises promotions of one tag inside this process, so they
// queue instead of spinning on compare-and-set (other replicas still race,
// and the ledger's compare-and-set settles that).
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// notify queues the webhook event of a record that changed its tag.
func (s *Service) notify(ctx context.Context, rec Record) error {
	if s.opts.Outbox == nil || rec.Outcome == OutcomeNoop || rec.Outcome == OutcomeImported {
		return nil
	}
	event := config.EventPromotion
	if rec.RollbackOf != "" {
		event = config.EventRollback
	}
	return s.opts.Outbox.EnqueueOnce(context.WithoutCancel(ctx), rec.ID, rec.At, event, rec)
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
