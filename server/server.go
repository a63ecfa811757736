// Package server is the one place that wires Slipway together: the store
// chosen by the configuration, the registry behind the token service's
// middleware, the token service's own endpoints (/auth/..., /api/v1/...),
// the ops endpoints (/healthz, /readyz, /metrics), logging, metrics and the
// HTTP server's lifecycle.
package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slipway/slipway/admin"
	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gate"
	"github.com/slipway/slipway/internal/buildinfo"
	"github.com/slipway/slipway/internal/origin"
	"github.com/slipway/slipway/internal/tlsreload"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/promote/webhook"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/delay"
	"github.com/slipway/slipway/storage/fs"
	"github.com/slipway/slipway/storage/pace"
	"github.com/slipway/slipway/storage/s3"
)

// readHeaderTimeout bounds slow-loris clients. There is deliberately no
// Read/WriteTimeout: blob bodies can take minutes either way (guardBody
// bounds bodies per route instead).
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

// Server is one Slipway process's HTTP side. Run it once.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	store    storage.Store
	engine   *gin.Engine
	metrics  *metrics
	http     *http.Server
	ln       net.Listener
	draining atomic.Bool // set when shutdown starts; /readyz then answers 503
	origins  *origin.Resolver
	tls      *tlsreload.Reloader // nil without http.tls
	registry *registry.Registry
	auth     *auth.Service
	promote  *promote.Service
	outbox   *webhook.Outbox // nil without promotion.webhooks
	gc       *collection
	activity activity // client requests, for the collections' pace
}

// New builds the store named by cfg and everything on top of it. It does
// not listen yet (see Listen and Run). logger receives JSON-ready records;
// New adds the request id to those logged with a request's context.
func New(cfg config.Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server: invalid config: %w", err)
	}
	backend, err := openStore(cfg.Storage)
	if err != nil {
		return nil, fmt.Errorf("server: storage: %w", err)
	}
	// The bucket view comes from the backend itself: wrappers (the test
	// write delay here, the registry's tag journal) need not forward it.
	return newServerOn(cfg, logger, delayed(cfg.Storage, backend, logger), bucketView(backend), auth.Options{})
}

// OpenStore opens the configured store as `slipway serve` does (also for
// `slipway gc`, which must work on the very same storage).
func OpenStore(cfg config.Storage, logger *slog.Logger) (storage.Store, error) {
	store, err := openStore(cfg)
	if err != nil {
		return nil, fmt.Errorf("server: storage: %w", err)
	}
	return delayed(cfg, store, logger), nil
}

// delayed wraps store in the test write delay when one is configured.
func delayed(cfg config.Storage, store storage.Store, logger *slog.Logger) storage.Store {
	if d := cfg.TestWriteDelay; d > 0 {
		logger.Warn("storage writes are delayed for testing", "delay", d.String())
		store = delay.Wrap(store, d)
	}
	return store
}

// bucketView is the read-only view of the backend's whole bucket, which
// the registry reads imported blobs' outside data through
// (docs/architecture.md §7.2), or nil for a backend without a bucket.
// Only the registry gets it; the collector never does (§7.3).
func bucketView(backend storage.Store) storage.BucketView {
	if v, ok := backend.(storage.BucketViewer); ok {
		return v.BucketView()
	}
	return nil
}

// purgeUploads forgets abandoned upload sessions every purge interval until
// ctx ends. The first run waits a random part of the interval, so replicas
// started together do not all list the store at once.
func (s *Server) purgeUploads(ctx context.Context) {
	every := s.cfg.Uploads.PurgeInterval
	wait := time.Duration(rand.Int64N(int64(every)))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = every
		sessions, multiparts, err := s.registry.PurgeUploads(ctx, time.Now().Add(-s.cfg.Uploads.PurgeAfter))
		if err != nil {
			s.log.Warn("purging abandoned uploads", "error", err.Error())
			continue
		}
		if sessions+multiparts > 0 {
			s.log.Info("purged abandoned uploads", "sessions", sessions, "multipart_uploads", multiparts)
		}
	}
}

// openStore opens the configured backend: the S3 bucket when storage.s3
// is set, else the filesystem folder.
func openStore(cfg config.Storage) (storage.Store, error) {
	if c := cfg.S3; c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return s3.New(ctx, s3.Config{
			Endpoint:         c.Endpoint,
			Bucket:           c.Bucket,
			Region:           c.Region,
			AccessKey:        c.AccessKey,
			SecretKey:        c.SecretKey,
			Secure:           c.Secure,
			Root:             c.Root,
			CreateBucket:     c.CreateBucket,
			RedirectEndpoint: c.RedirectEndpoint,
			PartSize:         c.PartSizeBytes(),
		})
	}
	return fs.New(cfg.Filesystem.Root)
}

// newServer wires a server on a given store (tests pass fakes).
func newServer(cfg config.Config, logger *slog.Logger, store storage.Store) (*Server, error) {
	return newServerWith(cfg, logger, store, auth.Options{})
}

// newServerWith is newServer with the test hooks of auth.Options (Now,
// CompareHash); their configuration fields are filled from cfg.
func newServerWith(cfg config.Config, logger *slog.Logger, store storage.Store, ao auth.Options) (*Server, error) {
	return newServerOn(cfg, logger, store, bucketView(store), ao)
}

// newServerOn is newServerWith with the bucket view given (taken from
// the backend under any wrapper).
func newServerOn(cfg config.Config, logger *slog.Logger, store storage.Store, view storage.BucketView, ao auth.Options) (*Server, error) {
	if _, ok := logger.Handler().(requestIDHandler); !ok {
		logger = slog.New(requestIDHandler{logger.Handler()})
	}
	s := &Server{cfg: cfg, log: logger, store: store, metrics: newMetrics(),
		origins: origin.NewResolver(cfg.HTTP.TrustedProxyPrefixes())}
	ao.Auth, ao.Stages, ao.PublicURL, ao.Logger = cfg.Auth, cfg.Stages, cfg.HTTP.PublicURL, logger
	ao.Remote = cfg.Storage.S3 != nil
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := auth.New(ctx, store, ao)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.auth = a

	// gin's mode is process-wide; release mode only silences its debug
	// printing, and this process has no other gin engine to disagree.
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	// gin's own ClientIP trusts no header: client addresses, schemes and
	// hosts come from origin.FromRequest (observe resolves them, honouring
	// forwarding headers from http.trusted_proxies only).
	_ = e.SetTrustedProxies(nil)
	e.ContextWithFallback = true
	e.Use(s.observe, s.recover, s.guardBody)
	if err := s.setupTLS(cfg.HTTP.TLS, e); err != nil {
		a.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	s.routeOps(e)
	regOpts := registry.Options{
		PublicURL: cfg.HTTP.PublicURL,
		UploadKey: sharedKey(cfg, a, "upload id"),
		UploadTTL: cfg.Uploads.PurgeAfter,
		Logger:    logger,
		Metrics:   s.metrics.reg,
		// Upload bounds are per account: the login the /v2/ middleware
		// authenticated.
		Account: func(r *http.Request) string {
			p, _ := auth.PrincipalFrom(r.Context())
			return p.Name
		},
		MaxOpenPerAccount: cfg.Uploads.MaxOpenPerAccount,
		SessionRate:       float64(cfg.Uploads.SessionRatePerAccount),
		SessionBurst:      cfg.Uploads.SessionBurstPerAccount,
		BucketView:        view,
	}
	if c := cfg.Storage.S3; c != nil {
		regOpts.Redirect, regOpts.RedirectExpiry = c.Redirect, c.RedirectExpiry
		regOpts.RedirectMinSize = c.RedirectMinSizeBytes()
	}
	s.registry = registry.New(store, regOpts)
	var outbox promote.Outbox
	if len(cfg.Promotion.Webhooks) > 0 {
		s.outbox = webhook.New(store, webhook.Options{Hooks: cfg.Promotion.Webhooks, Logger: logger})
		outbox = s.outbox
	}
	gates, err := gate.New(cfg.Stages)
	if err != nil {
		return nil, err
	}
	s.promote = promote.New(store, s.registry.Metadata(), promote.Options{
		Gates:   gates,
		Outbox:  outbox,
		Stages:  cfg.Stages,
		Allowed: allowed(cfg, a),
		Actor: func(ctx context.Context) string {
			// A CI workload is named with its chosen claims (which
			// repository, ref and workflow promoted), not its subject alone.
			p, _ := auth.PrincipalFrom(ctx)
			if p.Detail != "" {
				return p.Name + " (" + p.Detail + ")"
			}
			return p.Name
		},
		Logger: logger,
	})
	ret := newRetention(cfg, store, s.registry.Metadata(), s.promote, logger)
	// The collections read and write through a store that keeps
	// gc.busy_concurrency requests in flight, each place busy at most
	// gc.busy_share of the time, while this replica serves clients, and
	// gc.concurrency otherwise; with metadata of their own on it,
	// as `slipway gc` has (what this replica's caches remember is then
	// bounded as for a collection run by another replica).
	gcStore := pace.Wrap(store, s.gcPace)
	gcMeta := registry.New(gcStore, registry.Options{Logger: logger}).Metadata()
	s.gc = newCollection(cfg, store, gcBackendFor(store, gcStore, gcMeta, ret), logger, s.metrics.gc)
	s.routeAuth(e)
	s.routeGC(e)
	s.promote.Register(e.Group("/api/v1", a.API))
	var adminOIDC *admin.OIDC
	if o := cfg.Admin.OIDC; o != nil {
		secret, err := o.Secret()
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("server: admin.oidc.client_secret_file: %w", err)
		}
		adminOIDC = &admin.OIDC{Config: *o, Secret: secret}
	}
	admin.New(admin.Options{
		OIDC:    adminOIDC,
		Promote: s.promote, Accounts: a, Tags: s.promote, Gates: s.promote, Releases: s.promote, SessionKey: sharedKey(cfg, a, "admin session"), SessionTTL: cfg.Admin.SessionTTL,
		PublicURL: cfg.HTTP.PublicURL, Ping: store.Ping, Version: buildinfo.Version(),
		Started: time.Now(), Logger: logger, LastGC: s.gc.lastFinished,
	}).Register(e)
	e.GET("/", func(c *gin.Context) { c.Redirect(http.StatusFound, "/admin/") })
	s.registry.Register(e.Group("", a.V2))
	s.engine = e

	s.http = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// allowed is what the promotion service asks of each caller: the token
// service's answer for accounts, and for people signed in to the admin
// pages through the OpenID provider (no account) the same policy applied
// to what their groups map to.
func allowed(cfg config.Config, a *auth.Service) promote.Authorizer {
	policy := auth.NewPolicy(cfg.Auth.AnonymousPull, cfg.Stages)
	return func(ctx context.Context) (func(repo string) []string, error) {
		if p, ok := admin.OIDCPrincipalFrom(ctx); ok {
			acct := &auth.Account{Name: p.Name, Admin: p.Admin, Grants: p.Grants}
			return func(repo string) []string { return policy.Allowed(acct, auth.TypeRepository, repo) }, nil
		}
		return a.Permissions(ctx)
	}
}

// sharedKey is a key every replica derives alike, for one purpose (admin
// session cookies, upload ids): from http.secret when set, else from the
// token signing key they already share.
func sharedKey(cfg config.Config, a *auth.Service, purpose string) []byte {
	if sec := cfg.HTTP.Secret; sec != "" {
		m := hmac.New(sha256.New, []byte(sec))
		m.Write([]byte("slipway " + purpose))
		return m.Sum(nil)
	}
	return a.DeriveKey(purpose)
}

// routeAuth adds the token service's endpoints: the token endpoint and key
// set (open to all), and the robot accounts API (admins).
func (s *Server) routeAuth(e *gin.Engine) {
	e.GET("/auth/token", s.auth.Token)
	e.POST("/auth/token", s.auth.Token)
	e.GET("/auth/jwks.json", s.auth.JWKS)
	robots := e.Group("/api/v1/robots", s.auth.API, s.auth.RequireAdmin)
	robots.POST("", s.auth.CreateRobot)
	robots.GET("", s.auth.ListRobots)
	robots.GET("/:name", s.auth.GetRobot)
	robots.DELETE("/:name", s.auth.RevokeRobot)
}

// Close releases what the server holds besides the listener (Run does it
// on shutdown): background writes finish first.
func (s *Server) Close() {
	s.gc.stop()
	s.registry.Wait()
	s.auth.Close()
}

// Listen binds http.addr. Run calls it when it has not been called; call it
// first to learn the port picked for ":0" from Addr.
func (s *Server) Listen() error {
	if s.ln != nil {
		return errors.New("server: already listening")
	}
	ln, err := net.Listen("tcp", s.cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("server: listen on %s: %w", s.cfg.HTTP.Addr, err)
	}
	s.ln = ln
	return nil
}

// Addr is the address actually listened on ("127.0.0.1:41234"), or "" before
// Listen.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Run serves until ctx is done, then shuts down gracefully: /readyz
// answers 503 at once while every other request is still served for
// http.drain_delay (so a load balancer's health checks take this replica
// out of rotation before its port closes); then it stops accepting, lets
// in-flight requests finish within http.shutdown_timeout, and cuts off
// whatever is still running after that. A clean or cut-off shutdown
// returns nil; a failure to listen or serve returns the error.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	served := make(chan error, 1)
	go func() { served <- s.serve() }()
	backend := "filesystem"
	if s.cfg.Storage.S3 != nil {
		backend = "s3"
	}
	s.log.Info("listening", "addr", s.Addr(), "storage", backend, "tls", s.tls != nil)
	go s.purgeUploads(ctx)
	go s.watchTLS(ctx)
	go s.gc.loop(ctx)
	// Releases whose writer died (on any replica) are finished here too.
	go s.promote.RunReleases(ctx)
	outboxDone := make(chan struct{})
	if s.outbox != nil {
		go func() { s.outbox.Run(ctx); close(outboxDone) }()
	} else {
		close(outboxDone)
	}

	select {
	case err := <-served:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}

	s.draining.Store(true)
	if d := s.cfg.HTTP.DrainDelay; d > 0 {
		s.log.Info("draining: /readyz answers 503, still serving", "drain_delay", d.String())
		select {
		case err := <-served:
			return fmt.Errorf("server: %w", err)
		case <-time.After(d):
		}
	}
	s.log.Info("shutting down", "timeout", s.cfg.HTTP.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil {
		// Requests still running past the timeout are cut off: the
		// operator chose that bound, so it is not a failure of the process.
		s.log.Warn("shutdown timeout passed, closing remaining connections", "error", err.Error())
		_ = s.http.Close()
	}
	<-served // http.ErrServerClosed
	<-outboxDone
	s.Close()
	s.log.Info("stopped")
	return nil
}
