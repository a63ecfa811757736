package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/storage"
)

// Media types, annotation keys and artifact types cosign v2.6.5 writes
// (pkg/types, pkg/oci/static, pkg/oci/remote/write.go).
const (
	simpleSigningType    = "application/vnd.dev.cosign.simplesigning.v1+json"
	dsseEnvelopeType     = "application/vnd.dsse.envelope.v1+json"
	inTotoPayloadType    = "application/vnd.in-toto+json"
	signatureAnnotation  = "dev.cosignproject.cosign/signature"
	cosignSigArtifact    = "application/vnd.dev.cosign.artifact.sig.v1+json"
	bundleTypePrefix     = "application/vnd.dev.sigstore.bundle"
	cosignSignPredicate  = "https://sigstore.dev/cosign/sign/v1"
	cosignSignaturePType = "cosign container image signature"
)

// Bounds on the work for one subject digest: candidate manifests (tag and
// referrers together), payload layers per manifest, bytes per payload.
const (
	maxCandidates = 64
	maxLayers     = 16
	maxPayload    = 1 << 20
)

// Via values of a Proof.
const (
	viaReferrers = "referrers"
	viaTag       = "tag"
)

// candidate is a manifest that may hold signatures or attestations of a
// subject.
type candidate struct {
	manifest digest.Digest
	via      string
}

// payload is one signed object found in a candidate manifest, not yet
// verified: a simple-signing payload with its signature, or a DSSE
// envelope (a cosign attestation layer, or the envelope of a sigstore
// bundle).
type payload struct {
	manifest, layer digest.Digest
	via             string
	// layerType is the layer's media type.
	layerType string
	// data is the layer's bytes, checked against its digest; nil with
	// problem set when they could not be had.
	data []byte
	// sig is a simple-signing layer's decoded signature annotation.
	sig []byte
	// problem says why the payload cannot count, whatever the key.
	problem string
}

// found is what is attached to one subject digest.
type found struct {
	subject   digest.Digest
	payloads  []payload
	referrers []v1.Descriptor
	// truncated: more candidates than maxCandidates; the rest unread.
	truncated bool
}

// notFound reports a store error that only means "not there".
func notFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }

// collect finds what repo attaches to subject: its OCI 1.1 referrers and,
// with signed set, cosign's sha256-<hex>.sig / .att tags and the signed
// payloads of the signature and attestation manifests among both. An
// error is a store failure only.
func collect(ctx context.Context, src Source, repo string, subject digest.Digest, signed bool) (found, error) {
	f := found{subject: subject}
	refs, err := src.Referrers(ctx, repo, subject)
	if err != nil && !notFound(err) {
		return f, fmt.Errorf("referrers of %s in %s: %w", subject, repo, err)
	}
	f.referrers = refs
	if !signed {
		return f, nil
	}
	var cands []candidate
	seen := map[digest.Digest]bool{}
	addCand := func(d digest.Digest, via string) {
		if seen[d] {
			return
		}
		seen[d] = true
		if len(cands) == maxCandidates {
			f.truncated = true
			return
		}
		cands = append(cands, candidate{manifest: d, via: via})
	}
	for _, suffix := range []string{".sig", ".att"} {
		tag := subject.Algorithm().String() + "-" + subject.Encoded() + suffix
		st, err := src.Tag(ctx, repo, tag)
		if notFound(err) {
			continue
		}
		if err != nil {
			return f, fmt.Errorf("tag %s of %s: %w", tag, repo, err)
		}
		addCand(st.Digest, viaTag)
	}
	for _, r := range refs {
		if signedArtifact(r.ArtifactType) {
			addCand(r.Digest, viaReferrers)
		}
	}
	for _, c := range cands {
		ps, err := readCandidate(ctx, src, repo, c)
		if err != nil {
			return f, err
		}
		f.payloads = append(f.payloads, ps...)
	}
	return f, nil
}

// signedArtifact reports whether a referrer of artifactType may hold
// cosign signatures or attestations: cosign's signature artifact, a
// sigstore bundle, DSSE/in-toto attestations, or the empty config type
// (what a referrers list built from config.mediaType, like
// go-containerregistry's fallback tag index, says of cosign's bundle
// manifests). Others are read only as referrers.
func signedArtifact(artifactType string) bool {
	return artifactType == cosignSigArtifact || artifactType == inTotoPayloadType ||
		artifactType == dsseEnvelopeType || artifactType == v1.MediaTypeEmptyJSON ||
		strings.HasPrefix(artifactType, bundleTypePrefix)
}

// readCandidate reads the payload layers of candidate manifest c. A
// manifest gone (deleted since it was listed) or not a manifest holds
// nothing.
func readCandidate(ctx context.Context, src Source, repo string, c candidate) ([]payload, error) {
	m, err := src.ManifestInRepo(ctx, repo, c.manifest)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("manifest %s of %s: %w", c.manifest, repo, err)
	}
	var man v1.Manifest
	if json.Unmarshal(m.Raw, &man) != nil {
		return nil, nil
	}
	var out []payload
	for _, l := range man.Layers {
		if len(out) == maxLayers {
			break
		}
		switch {
		case l.MediaType == simpleSigningType, l.MediaType == dsseEnvelopeType, strings.HasPrefix(l.MediaType, bundleTypePrefix):
		default:
			continue
		}
		p := payload{manifest: c.manifest, layer: l.Digest, via: c.via, layerType: l.MediaType}
		if l.MediaType == simpleSigningType {
			sig, err := decodeB64(l.Annotations[signatureAnnotation])
			if err != nil || len(sig) == 0 {
				p.problem = "signature annotation " + signatureAnnotation + " is missing or not base64"
			}
			p.sig = sig
		}
		if p.problem == "" {
			if p.data, p.problem, err = readPayload(ctx, src, l); err != nil {
				return nil, err
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// readPayload reads a payload layer, bounded, and checks its bytes hash to
// its digest; problem says why it cannot be used.
func readPayload(ctx context.Context, src Source, l v1.Descriptor) (data []byte, problem string, err error) {
	if l.Digest.Validate() != nil || l.Digest.Algorithm() != digest.SHA256 && l.Digest.Algorithm() != digest.SHA512 {
		return nil, fmt.Sprintf("layer digest %q is not a sha256 or sha512 digest", l.Digest), nil
	}
	if l.Size > maxPayload || l.Size < 0 {
		return nil, fmt.Sprintf("payload is %d bytes, more than %d", l.Size, maxPayload), nil
	}
	b, err := src.ReadBlob(ctx, l.Digest, maxPayload)
	if notFound(err) {
		return nil, "payload " + string(l.Digest) + " is missing", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("payload %s: %w", l.Digest, err)
	}
	if l.Digest.Algorithm().FromBytes(b) != l.Digest {
		return nil, "payload does not match its digest", nil
	}
	return b, "", nil
}
