package admintest

import (
	"context"
	"net/http"
	"slices"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gate"
	"github.com/slipway/slipway/promote"
)

func gateKey(repo string, d digest.Digest) string { return repo + "@" + d.String() }

// SetGates sets the verdicts GateStatus answers for d held in repo (and
// that Promote and CreateRelease obey).
func (f *Fake) SetGates(repo string, d digest.Digest, st []promote.StageGateStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gates[gateKey(repo, d)] = st
}

// SetEvidence sets what Evidence lists for d held in repo.
func (f *Fake) SetEvidence(repo string, d digest.Digest, proofs []gate.Proof) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.evidence[gateKey(repo, d)] = proofs
}

// GateCalls counts GateStatus calls, by "repo@digest".
func (f *Fake) GateCalls() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.gateCalls))
	for k, v := range f.gateCalls {
		out[k] = v
	}
	return out
}

// inspect: the real service's rules: signed in, a repository that holds
// d (else 404).
func (f *Fake) inspect(ctx context.Context, repo string, d digest.Digest) error {
	if _, ok := auth.PrincipalFrom(ctx); !ok {
		return perr(http.StatusUnauthorized, promote.CodeUnauthorized, "authentication required")
	}
	if f.FailGates != nil {
		return f.FailGates
	}
	if !slices.ContainsFunc(f.repos[repo], func(t promote.TagInfo) bool { return t.Digest == d }) {
		return perr(http.StatusNotFound, promote.CodeNotFound, repo+" holds no manifest "+d.String())
	}
	return nil
}

// GateStatus answers what SetGates set (nil: no gated stage).
func (f *Fake) GateStatus(ctx context.Context, repo string, d digest.Digest) ([]promote.StageGateStatus, error) {
	if f.GateWait != nil {
		f.GateWait(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gateCalls[gateKey(repo, d)]++
	if err := f.inspect(ctx, repo, d); err != nil {
		return nil, err
	}
	return slices.Clone(f.gates[gateKey(repo, d)]), nil
}

// Evidence answers what SetEvidence set.
func (f *Fake) Evidence(ctx context.Context, repo string, d digest.Digest) ([]gate.Proof, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.inspect(ctx, repo, d); err != nil {
		return nil, err
	}
	return slices.Clone(f.evidence[gateKey(repo, d)]), nil
}

// SetStageGates gives a stage gates, as its configuration would (the
// pages decide from them which stages to ask GateStatus about).
func (f *Fake) SetStageGates(stage string, g config.Gates) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stages = slices.Clone(f.stages)
	for i := range f.stages {
		if f.stages[i].Name == stage {
			f.stages[i].Gates = g
		}
	}
}
