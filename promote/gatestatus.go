package promote

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gate"
	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// StageGateStatus is what one gated stage's gates say of a digest now:
// whether a promotion into Stage would pass them, and if not, why.
type StageGateStatus struct {
	Stage string `json:"stage"`
	gate.Result
}

// The gate status cache: the admin's repository page asks for every
// digest it shows on every load, and a verification reads several
// manifests and blobs. A verdict is kept briefly only, because it changes
// when a signature is attached (the page may lag that by gateStatusTTL)
// and never outlives a configuration (the cache is per process). Expiry is
// checked on read (no cleaning goroutine: a Service has no Close).
const (
	gateStatusTTL     = 20 * time.Second
	gateStatusEntries = 4096
)

// gateKey identifies one verdict: a digest held in a repository, checked
// against one stage's gates.
type gateKey struct {
	stage, repo string
	digest      digest.Digest
}

// gateVerdict is a cached verdict and when it was reached.
type gateVerdict struct {
	res gate.Result
	at  time.Time
}

func newGateStatusCache() *lru.Cache[gateKey, gateVerdict] {
	c, _ := lru.New[gateKey, gateVerdict](gateStatusEntries)
	return c
}

// cachedVerdict is key's verdict if it was reached less than
// gateStatusTTL ago.
func (s *Service) cachedVerdict(key gateKey) (gate.Result, bool) {
	v, ok := s.gateCache.Get(key)
	if !ok || s.opts.Now().Sub(v.at) >= gateStatusTTL {
		return gate.Result{}, false
	}
	return v.res, true
}

// GateStatus checks d, held in repo, against the gates of every gated
// stage repo's stage may promote into, in configuration order; nil when
// none is gated (or repo is under no stage). The caller must be allowed
// to pull repo: otherwise, as for a missing repository or digest, a 404.
// Verdicts are cached for gateStatusTTL; only a store that could not be
// read is an error, a gate that does not pass is a Failure.
func (s *Service) GateStatus(ctx context.Context, repo string, d digest.Digest) ([]StageGateStatus, error) {
	if err := s.mayInspect(ctx, repo, d); err != nil {
		return nil, err
	}
	from, ok := config.StageOf(s.opts.Stages, repo)
	if !ok {
		return nil, nil
	}
	var next []config.Stage
	for _, st := range s.opts.Stages {
		if slices.Contains(st.PromoteFrom, from.Name) && s.opts.Gates.Gated(st.Name) {
			next = append(next, st)
		}
	}
	if len(next) == 0 {
		return nil, nil
	}
	var m *registry.Manifest // read once, and only when a verdict is not cached
	out := make([]StageGateStatus, 0, len(next))
	for _, st := range next {
		key := gateKey{stage: st.Name, repo: repo, digest: d}
		res, ok := s.cachedVerdict(key)
		if !ok {
			if m == nil {
				man, err := s.heldManifest(ctx, repo, d)
				if err != nil {
					return nil, err
				}
				m = &man
			}
			var err error
			at := s.opts.Now()
			if res, err = s.opts.Gates.Check(ctx, s.meta, st.Name, repo, *m); err != nil {
				return nil, storeError(err)
			}
			s.gateCache.Add(key, gateVerdict{res: res, at: at})
		}
		out = append(out, StageGateStatus{Stage: st.Name, Result: res})
	}
	return out, nil
}

// Evidence lists every signature and attestation attached to d in repo,
// each with the configured key it verifies under ("" for none), for the
// admin's evidence page (gate.Checker.Inspect). Permissions as
// GateStatus; not cached (one digest per page).
func (s *Service) Evidence(ctx context.Context, repo string, d digest.Digest) ([]gate.Proof, error) {
	if err := s.mayInspect(ctx, repo, d); err != nil {
		return nil, err
	}
	m, err := s.heldManifest(ctx, repo, d)
	if err != nil {
		return nil, err
	}
	proofs, err := s.opts.Gates.Inspect(ctx, s.meta, repo, m)
	if err != nil {
		return nil, storeError(err)
	}
	return proofs, nil
}

// mayInspect: a valid repository and digest, and a caller who may pull
// the repository (as Tags: a 404 that does not reveal whether it exists).
func (s *Service) mayInspect(ctx context.Context, repo string, d digest.Digest) error {
	if err := s.requireCaller(ctx); err != nil {
		return err
	}
	if !names.ValidRepository(repo) || d.Validate() != nil {
		return invalid("invalid repository or digest %q@%q", repo, d)
	}
	may, err := s.permissions(ctx)
	if err != nil {
		return err
	}
	if !may(repo, actionPull) {
		return errorf(http.StatusNotFound, CodeNotFound, "repository %s does not exist or you may not see it", repo)
	}
	return nil
}

// heldManifest is d as repo holds it (404 when it does not).
func (s *Service) heldManifest(ctx context.Context, repo string, d digest.Digest) (registry.Manifest, error) {
	m, err := s.meta.ManifestInRepo(ctx, repo, d)
	if errors.Is(err, storage.ErrNotFound) {
		return registry.Manifest{}, errorf(http.StatusNotFound, CodeNotFound, "%s holds no manifest %s", repo, d)
	}
	if err != nil {
		return registry.Manifest{}, storeError(err)
	}
	return m, nil
}
