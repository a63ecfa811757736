package gate

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/registry"
)

// maxSubjects bounds the children of an index checked with per_platform.
const maxSubjects = 256

// subjectsOf is m's digest and, with perPlatform on an index, each child
// manifest's; buildx attestation manifests (platform unknown/unknown,
// vnd.docker.reference.type attestation-manifest) are not images and
// carry no signatures of their own, so they are left out.
func subjectsOf(m registry.Manifest, perPlatform bool) ([]digest.Digest, error) {
	subjects := []digest.Digest{m.Digest}
	if !perPlatform {
		return subjects, nil
	}
	refs, err := m.References()
	if err != nil {
		return nil, err
	}
	var idx v1.Index
	_ = json.Unmarshal(m.Raw, &idx) // References parsed it already
	skip := map[digest.Digest]bool{}
	for _, c := range idx.Manifests {
		if c.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			skip[c.Digest] = true
		}
	}
	seen := map[digest.Digest]bool{m.Digest: true}
	for _, c := range refs.Children {
		if skip[c.Digest] || seen[c.Digest] {
			continue
		}
		seen[c.Digest] = true
		subjects = append(subjects, c.Digest)
	}
	return subjects, nil
}

// proof is v as a Proof for subject.
func (v verdict) proof(subject digest.Digest) Proof {
	return Proof{Kind: v.kind, Subject: subject, Manifest: v.manifest, Layer: v.layer, KeyID: v.keyID, Type: v.predicateType, Via: v.via}
}

// check evaluates every gate of the stage for one subject, appending
// evidence and failures to res.
func (sg *stageGates) check(ctx context.Context, f found, res *Result) {
	d := f.subject
	var sigs, atts []verdict
	if len(sg.cfg.SignedBy) > 0 {
		for _, p := range f.payloads {
			v := verifyPayload(ctx, p, sg.keys)
			if v.kind == KindSignature {
				sigs = append(sigs, v)
			} else {
				atts = append(atts, v)
			}
		}
		sg.checkSignatures(d, sigs, f.truncated, res)
	}
	for _, t := range sg.cfg.Attestations {
		sg.checkAttestation(d, t, atts, f.truncated, res)
	}
	for _, rg := range sg.cfg.Referrers {
		checkReferrer(d, rg.ArtifactType, rg.Annotations, f.referrers, res)
	}
}

// keyNames is "key a" or "any of the keys a, b".
func (sg *stageGates) keyNames() string {
	ids := make([]string, len(sg.keys))
	for i, k := range sg.keys {
		ids[i] = k.id
	}
	if len(ids) == 1 {
		return "key " + ids[0]
	}
	return "any of the keys " + strings.Join(ids, ", ")
}

func (sg *stageGates) checkSignatures(d digest.Digest, sigs []verdict, truncated bool, res *Result) {
	var reasons tally
	ok := false
	for _, v := range sigs {
		switch {
		case v.valid(d):
			ok = true
			res.Evidence = append(res.Evidence, v.proof(d))
		case v.problem != "":
			reasons.add(v.problem)
		case v.keyID == "":
			reasons.add("verifies under no configured key")
		default:
			reasons.add(fmt.Sprintf("signed by %s but its payload names %s, not %s", v.keyID, namesOf(v.names), d))
		}
	}
	if ok {
		return
	}
	msg := fmt.Sprintf("no signature by %s over %s", sg.keyNames(), d)
	if len(sigs) > 0 {
		msg += fmt.Sprintf(" (%s found: %s)", count(len(sigs), "signature"), reasons)
	}
	res.Failures = append(res.Failures, Failure{Gate: "signed_by", Subject: d, Message: msg + truncNote(truncated)})
}

func (sg *stageGates) checkAttestation(d digest.Digest, ptype string, atts []verdict, truncated bool, res *Result) {
	var reasons tally
	ok, ofType := false, 0
	others := map[string]bool{}
	for _, v := range atts {
		if v.problem == "" && v.predicateType != ptype {
			others[v.predicateType] = true
			continue
		}
		ofType++
		switch {
		case v.valid(d):
			ok = true
			res.Evidence = append(res.Evidence, v.proof(d))
		case v.problem != "":
			reasons.add(v.problem)
		case v.keyID == "":
			reasons.add("signed by no configured key")
		default:
			reasons.add(fmt.Sprintf("signed by %s but its subjects are %s, not %s", v.keyID, namesOf(v.names), d))
		}
	}
	if ok {
		return
	}
	msg := fmt.Sprintf("no attestation of type %s signed by %s for %s", ptype, sg.keyNames(), d)
	switch {
	case ofType > 0:
		msg += fmt.Sprintf(" (%s found: %s)", count(ofType, "attestation"), reasons)
	case len(others) > 0:
		msg += fmt.Sprintf(" (found attestations of other types: %s)", strings.Join(slices.Sorted(maps.Keys(others)), ", "))
	}
	res.Failures = append(res.Failures, Failure{Gate: "attestations", Subject: d, Message: msg + truncNote(truncated)})
}

// checkReferrer requires a referrer of artifactType carrying every
// annotation of want with its exact value. The descriptor's annotations
// are the referrer manifest's (the registry copies them on push).
func checkReferrer(d digest.Digest, artifactType string, want map[string]string, refs []v1.Descriptor, res *Result) {
	ofType := 0
	for _, r := range refs {
		if r.ArtifactType != artifactType {
			continue
		}
		ofType++
		if hasAll(r.Annotations, want) {
			res.Evidence = append(res.Evidence, Proof{Kind: KindReferrer, Subject: d, Manifest: r.Digest, Type: artifactType, Via: viaReferrers})
			return
		}
	}
	msg := fmt.Sprintf("no referrer of type %s", artifactType)
	if len(want) > 0 {
		msg += " with " + annotationsOf(want)
	}
	msg += " attached to " + string(d)
	if ofType > 0 {
		msg += fmt.Sprintf(" (%s of that type found, without those annotations)", count(ofType, "referrer"))
	}
	res.Failures = append(res.Failures, Failure{Gate: "referrers", Subject: d, Message: msg})
}

func hasAll(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func annotationsOf(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return "annotations " + strings.Join(parts, ", ")
}

func namesOf(ds []digest.Digest) string {
	if len(ds) == 0 {
		return "no digest"
	}
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = string(d)
	}
	return strings.Join(s, ", ")
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func truncNote(truncated bool) string {
	if truncated {
		return fmt.Sprintf("; only the first %d signature and attestation manifests were read", maxCandidates)
	}
	return ""
}

// tally counts distinct reasons in the order first seen.
type tally struct {
	order []string
	n     map[string]int
}

func (t *tally) add(reason string) {
	if t.n == nil {
		t.n = map[string]int{}
	}
	if t.n[reason] == 0 {
		t.order = append(t.order, reason)
	}
	t.n[reason]++
}

// String is "reason; 2 × other reason".
func (t tally) String() string {
	parts := make([]string, len(t.order))
	for i, r := range t.order {
		if t.n[r] > 1 {
			r = fmt.Sprintf("%d × %s", t.n[r], r)
		}
		parts[i] = r
	}
	return strings.Join(parts, "; ")
}
