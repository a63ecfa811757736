package promote

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// plannedMember is one member of a release as decided before the commit
// point: what its tag will name. The member's ledger record is written
// from it when the release is applied (by the writer, or by whoever
// finishes a release whose writer died).
type plannedMember struct {
	Source     string        `json:"source"`
	Repository string        `json:"repository"`
	Tag        string        `json:"tag"`
	App        string        `json:"app"`
	Digest     digest.Digest `json:"digest"`
	// PreviousDigest, for a fixed tag, is what the tag named when the
	// release was validated ("" if it did not exist; always "" for other
	// tags, which validation does not read); the member record holds what
	// the tag named when it moved.
	PreviousDigest digest.Digest `json:"previous_digest,omitempty"`
	Evidence       Evidence      `json:"evidence,omitempty"`
	// RollbackOf: in a rollback release, the member record undone.
	RollbackOf string `json:"rollback_of,omitempty"`

	src ref               // parsed Source (not stored)
	m   registry.Manifest // the source manifest, for copyTree (not stored)
}

// planRelease validates every image of req and reads what the release
// needs (sources, target tags, gates), writing nothing. A refusal names
// the first refused image in request order; gate failures of every image
// come back together in one 409 gate_failed.
func (s *Service) planRelease(ctx context.Context, req ReleaseRequest) ([]plannedMember, config.Stage, error) {
	if req.To == "" {
		return nil, config.Stage{}, invalid("the target stage (to) is required")
	}
	st, ok := s.stage(req.To)
	if !ok {
		return nil, st, invalid("unknown stage %q", req.To)
	}
	switch n := len(req.Images); {
	case n == 0:
		return nil, st, invalid("a release needs at least one image")
	case n > maxReleaseImages:
		return nil, st, invalid("a release holds at most %d images, got %d", maxReleaseImages, n)
	}
	if len(req.Reason) > maxReason {
		return nil, st, invalid("reason is longer than %d bytes", maxReason)
	}
	may, err := s.permissions(ctx)
	if err != nil {
		return nil, st, err
	}
	plan := make([]plannedMember, len(req.Images))
	targets := map[string]int{}
	for i, img := range req.Images {
		src, err := parseSource(img.Source)
		if err != nil {
			return nil, st, err
		}
		tag := img.Tag
		if tag == "" {
			tag = src.Tag
		}
		if tag == "" {
			return nil, st, invalid("%s: tag is required when the source is a digest", img.Source)
		}
		if !names.ValidTag(tag) {
			return nil, st, invalid("%s: invalid tag %q", img.Source, tag)
		}
		target, _, _, err := s.edge(src.Repo, req.To)
		if err != nil {
			return nil, st, err
		}
		if err := checkPromote(may, src.Repo, target); err != nil {
			return nil, st, err
		}
		key := target + ":" + tag
		if j, dup := targets[key]; dup {
			return nil, st, invalid("images %d and %d both target %s: a release moves each tag once", j+1, i+1, key)
		}
		targets[key] = i
		plan[i] = plannedMember{Source: src.String(), src: src, Repository: target, Tag: tag, App: strings.TrimPrefix(target, st.Prefix)}
	}
	// The store reads of every member, in parallel: the source, the
	// target tag, the gates.
	errs := make([]error, len(plan))
	fails := make([][]GateFailure, len(plan))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(releaseParallel)
	for i := range plan {
		g.Go(func() error {
			fails[i], errs[i] = s.checkMember(gctx, st, &plan[i])
			return nil
		})
	}
	_ = g.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, st, err
		}
	}
	var all []GateFailure
	for _, f := range fails {
		all = append(all, f...)
	}
	if len(all) > 0 {
		return nil, st, gateFailed(st.Name, all)
	}
	return plan, st, nil
}

// checkMember resolves p's source, reads its target tag (fixed tags) and
// checks the stage's gates, filling p.
func (s *Service) checkMember(ctx context.Context, st config.Stage, p *plannedMember) ([]GateFailure, error) {
	m, err := s.meta.Resolve(ctx, p.src.Repo, refString(p.src))
	switch {
	case errors.Is(err, registry.ErrNotManifest):
		return nil, errorf(http.StatusUnprocessableEntity, CodeNotManifest, "%s names a blob, not an image manifest or index", p.src)
	case errors.Is(err, storage.ErrNotFound):
		return nil, errorf(http.StatusNotFound, CodeNotFound, "%s does not exist", p.src)
	case err != nil:
		return nil, storeError(err)
	}
	p.m, p.Digest = m, m.Digest
	// Only a fixed tag can refuse the release here; any other tag is
	// read by its commit, under its lock, when the release is applied.
	if st.IsFixedTag(p.Tag) {
		state, exists, err := s.tagState(ctx, p.Repository, p.Tag)
		if err != nil {
			return nil, storeError(err)
		}
		if exists {
			p.PreviousDigest = state.Digest
			if state.Digest != m.Digest {
				return nil, errorf(http.StatusConflict, CodeFixedTag, "%s:%s is a fixed tag in %s and already names %s; fixed tags are never re-pointed", p.Repository, p.Tag, st.Name, state.Digest)
			}
		}
	}
	failures, evidence, err := s.checkGates(ctx, st, p.Source, p.src.Repo, m)
	if err != nil {
		return nil, err
	}
	p.Evidence = evidence
	return failures, nil
}

// releaseParallel bounds the members a release reads, links or applies
// at once. Each member is a chain of a dozen small round trips, so a
// release of ten is latency-bound: all of them at once is what brings it
// near the cost of one promotion (BENCHMARKS.md, "Promotion gates and
// releases").
const releaseParallel = 16

// copyMembers links every member's tree into its target repository. Only
// links: nothing a tag reader sees, and harmless if the release is never
// committed.
func (s *Service) copyMembers(ctx context.Context, plan []plannedMember) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(releaseParallel)
	for i := range plan {
		p := &plan[i]
		g.Go(func() error { return s.copyTree(gctx, p.src.Repo, p.Repository, p.m) })
	}
	return g.Wait()
}
