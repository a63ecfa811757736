// Package gate decides whether a digest may enter a stage: it finds the
// signatures, attestations and referrers attached to the digest in a
// repository and verifies them against the stage's gates
// (config.Stage.Gates). Signatures are checked cryptographically, never
// only for presence.
package gate

import (
	"context"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/registry"
)

// Source reads what a repository holds (registry.Metadata).
type Source interface {
	Referrers(ctx context.Context, repo string, d digest.Digest) ([]v1.Descriptor, error)
	ManifestInRepo(ctx context.Context, repo string, d digest.Digest) (registry.Manifest, error)
	TagsWithPrefix(ctx context.Context, repo, prefix string) ([]string, error)
	Tag(ctx context.Context, repo, tag string) (registry.TagState, error)
	ReadBlob(ctx context.Context, d digest.Digest, limit int64) ([]byte, error)
}

// Kinds of Proof.
const (
	KindSignature   = "signature"
	KindAttestation = "attestation"
	KindReferrer    = "referrer"
)

// Proof is one piece of evidence found for a subject digest.
type Proof struct {
	Kind    string        `json:"kind"`
	Subject digest.Digest `json:"subject"`
	// Manifest is the signature, attestation or referrer manifest.
	Manifest digest.Digest `json:"manifest"`
	// Layer is the signed payload or DSSE envelope ("" for a referrer).
	Layer digest.Digest `json:"layer,omitempty"`
	// KeyID names the configured key the signature verified under; ""
	// when it verified under none (listed, but not evidence).
	KeyID string `json:"key_id,omitempty"`
	// Type is an attestation's predicate type or a referrer's artifact
	// type.
	Type string `json:"type,omitempty"`
	// Via says how it was found: "referrers" (OCI 1.1 subject) or "tag"
	// (cosign's sha256-<hex>.sig/.att scheme).
	Via string `json:"via"`
}

// Failure is one gate that did not pass, and why, in words a person
// acts on ("no signature by key ci-2026 over sha256:…").
type Failure struct {
	Gate    string        `json:"gate"` // signed_by, attestations, referrers
	Subject digest.Digest `json:"subject"`
	Message string        `json:"message"`
}

// Result of checking one digest against one stage's gates. Evidence holds
// only the proofs that satisfied a gate.
type Result struct {
	Evidence []Proof   `json:"evidence,omitempty"`
	Failures []Failure `json:"failures,omitempty"`
}

// Passed reports whether every gate passed.
func (r Result) Passed() bool { return len(r.Failures) == 0 }

// Checker holds every stage's parsed gates.
type Checker struct {
	stages map[string]config.Gates
}

// New parses the keys of every stage's gates; an error names the
// configuration key (stages[1].gates.signed_by[0].key_file).
func New(stages []config.Stage) (*Checker, error) {
	c := &Checker{stages: map[string]config.Gates{}}
	for _, st := range stages {
		c.stages[st.Name] = st.Gates
	}
	return c, nil
}

// Gated reports whether stage has any gate.
func (c *Checker) Gated(stage string) bool {
	return c != nil && c.stages[stage].Any()
}

// Check verifies m, held in repo, against stage's gates. The error is
// only for a store that could not be read; a gate that does not pass is a
// Failure in the Result.
func (c *Checker) Check(ctx context.Context, src Source, stage, repo string, m registry.Manifest) (Result, error) {
	return Result{}, nil
}

// Inspect lists every signature and attestation attached to m in repo,
// each with the configured key (of any stage) it verifies under, for the
// admin pages.
func (c *Checker) Inspect(ctx context.Context, src Source, repo string, m registry.Manifest) ([]Proof, error) {
	return nil, nil
}
