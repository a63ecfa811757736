// Package gate decides whether a digest may enter a stage: it finds the
// signatures, attestations and referrers attached to the digest in a
// repository and verifies them against the stage's gates
// (config.Stage.Gates). Signatures are checked cryptographically, never
// only for presence.
package gate

import (
	"context"
	"fmt"
	"regexp"
	"strings"

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
	stages map[string]*stageGates
	// all is every configured key of every stage, once (Inspect).
	all []*key
}

// stageGates are one stage's gates with their keys parsed.
type stageGates struct {
	cfg  config.Gates
	keys []*key
}

// New parses the keys of every stage's gates; an error names the
// configuration key (stages[1].gates.signed_by[0].key_file).
func New(stages []config.Stage) (*Checker, error) {
	c := &Checker{stages: map[string]*stageGates{}}
	byID := map[string]string{} // key id -> where it was first configured
	for i, st := range stages {
		at := fmt.Sprintf("stages[%d].gates", i)
		if err := checkGates(at, st.Gates); err != nil {
			return nil, err
		}
		sg := &stageGates{cfg: st.Gates}
		for j, gk := range st.Gates.SignedBy {
			kat := fmt.Sprintf("%s.signed_by[%d]", at, j)
			k, err := parseKey(gk, kat)
			if err != nil {
				return nil, err
			}
			if first, ok := byID[k.id]; ok {
				prev := c.keyByID(k.id)
				if !sameKey(prev.pub, k.pub) {
					return nil, fmt.Errorf("%s.name: %q already names another key (%s)", kat, k.id, first)
				}
				k = prev
			} else {
				byID[k.id] = kat
				c.all = append(c.all, k)
			}
			sg.keys = append(sg.keys, k)
		}
		c.stages[st.Name] = sg
	}
	return c, nil
}

// mediaType is an OCI media type (image-spec's descriptor rule).
var mediaType = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)

// checkGates refuses gates that could never pass or mean nothing; at is
// "stages[i].gates". (Config validation checks the same shape.)
func checkGates(at string, g config.Gates) error {
	if len(g.Attestations) > 0 && len(g.SignedBy) == 0 {
		return fmt.Errorf("%s.attestations: need signed_by: an attestation must be signed by one of the stage's keys", at)
	}
	for i, t := range g.Attestations {
		if t == "" || strings.TrimSpace(t) != t {
			return fmt.Errorf("%s.attestations[%d]: must be an in-toto predicate type, got %q", at, i, t)
		}
	}
	for i, r := range g.Referrers {
		if !mediaType.MatchString(r.ArtifactType) {
			return fmt.Errorf("%s.referrers[%d].artifact_type: must be a media type like \"application/vnd.example.report\", got %q", at, i, r.ArtifactType)
		}
	}
	return nil
}

func (c *Checker) keyByID(id string) *key {
	for _, k := range c.all {
		if k.id == id {
			return k
		}
	}
	return nil
}

// Gated reports whether stage has any gate.
func (c *Checker) Gated(stage string) bool {
	return c != nil && c.stages[stage] != nil && c.stages[stage].cfg.Any()
}

// Check verifies m, held in repo, against stage's gates. The error is
// only for a store that could not be read; a gate that does not pass is a
// Failure in the Result.
func (c *Checker) Check(ctx context.Context, src Source, stage, repo string, m registry.Manifest) (Result, error) {
	var res Result
	if !c.Gated(stage) {
		return res, nil
	}
	sg := c.stages[stage]
	subjects, err := subjectsOf(m, sg.cfg.PerPlatform)
	if err != nil {
		return res, err
	}
	if len(subjects) > maxSubjects+1 {
		res.Failures = append(res.Failures, Failure{Gate: "per_platform", Subject: m.Digest,
			Message: fmt.Sprintf("the index lists %d manifests; per_platform checks at most %d", len(subjects)-1, maxSubjects)})
		return res, nil
	}
	for _, d := range subjects {
		f, err := collect(ctx, src, repo, d, len(sg.cfg.SignedBy) > 0)
		if err != nil {
			return Result{}, err
		}
		sg.check(ctx, f, &res)
	}
	return res, nil
}

// Inspect lists every signature and attestation attached to m in repo,
// each with the configured key (of any stage) it verifies under, for the
// admin pages. KeyID is set only when the signed content is also about
// m.Digest and readable (what would count as evidence); a signature by a
// configured key over another digest is listed with KeyID "".
func (c *Checker) Inspect(ctx context.Context, src Source, repo string, m registry.Manifest) ([]Proof, error) {
	f, err := collect(ctx, src, repo, m.Digest, true)
	if err != nil {
		return nil, err
	}
	var keys []*key
	if c != nil {
		keys = c.all
	}
	var out []Proof
	for _, p := range f.payloads {
		v := verifyPayload(ctx, p, keys)
		pr := v.proof(m.Digest)
		if !v.valid(m.Digest) {
			pr.KeyID = ""
		}
		out = append(out, pr)
	}
	return out, nil
}
