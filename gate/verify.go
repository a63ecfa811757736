package gate

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"
	"google.golang.org/protobuf/encoding/protojson"
)

// verdict is a payload checked against a set of keys.
type verdict struct {
	payload
	kind string // KindSignature or KindAttestation
	// keyID is the first key (in configuration order) the payload's
	// signature verifies under; "" if none.
	keyID string
	// predicateType of an attestation (or of a bundle's statement).
	predicateType string
	// names are the digests the signed content is about: a simple-signing
	// payload's docker-manifest-digest, an in-toto statement's subjects.
	names []digest.Digest
}

// about reports whether the signed content names d.
func (v verdict) about(d digest.Digest) bool {
	for _, n := range v.names {
		if n == d {
			return true
		}
	}
	return false
}

// valid reports whether v is evidence for d: readable, signed by a key,
// about d.
func (v verdict) valid(d digest.Digest) bool {
	return v.problem == "" && v.keyID != "" && v.about(d)
}

// verifyPayload checks p against keys. Nothing in p is trusted before its
// signature verifies: kind, predicate type and names read from content
// that verifies under no key are only for messages and listings.
func verifyPayload(ctx context.Context, p payload, keys []*key) verdict {
	v := verdict{payload: p, kind: KindSignature}
	if p.layerType != simpleSigningType {
		v.kind = KindAttestation
	}
	if p.problem != "" {
		return v
	}
	if p.layerType == simpleSigningType {
		return verifySimpleSigning(ctx, v, keys)
	}
	env, problem := envelopeOf(p)
	if problem != "" {
		v.problem = problem
		return v
	}
	return verifyStatement(ctx, v, env, keys)
}

// verifySimpleSigning checks a cosign signature: the signature over the
// payload bytes under one of keys, then the payload's claim.
func verifySimpleSigning(ctx context.Context, v verdict, keys []*key) verdict {
	for _, k := range keys {
		if k.verify(ctx, v.sig, v.data) {
			v.keyID = k.id
			break
		}
	}
	var sc sigpayload.SimpleContainerImage
	if err := json.Unmarshal(v.data, &sc); err != nil {
		v.problem = "payload is not a cosign signature payload: " + err.Error()
		return v
	}
	if sc.Critical.Type != cosignSignaturePType {
		v.problem = fmt.Sprintf("payload type is %q, not %q", sc.Critical.Type, cosignSignaturePType)
		return v
	}
	d, err := digest.Parse(sc.Critical.Image.DockerManifestDigest)
	if err != nil {
		v.problem = fmt.Sprintf("payload names no valid digest (%q)", sc.Critical.Image.DockerManifestDigest)
		return v
	}
	v.names = []digest.Digest{d}
	return v
}

// envelopeOf returns the DSSE envelope of p: the layer itself for a
// cosign attestation, the bundle's dsseEnvelope for a sigstore bundle.
func envelopeOf(p payload) (*ssldsse.Envelope, string) {
	if p.layerType == dsseEnvelopeType {
		var env ssldsse.Envelope
		if err := json.Unmarshal(p.data, &env); err != nil {
			return nil, "not a DSSE envelope: " + err.Error()
		}
		return &env, ""
	}
	var b protobundle.Bundle
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(p.data, &b); err != nil {
		return nil, "not a sigstore bundle: " + err.Error()
	}
	de := b.GetDsseEnvelope()
	if de == nil {
		return nil, "sigstore bundle holds no DSSE envelope (a message signature is not supported)"
	}
	env := &ssldsse.Envelope{PayloadType: de.GetPayloadType(), Payload: base64.StdEncoding.EncodeToString(de.GetPayload())}
	for _, s := range de.GetSignatures() {
		env.Signatures = append(env.Signatures, ssldsse.Signature{Sig: base64.StdEncoding.EncodeToString(s.GetSig())})
	}
	return env, ""
}

// statement is an in-toto statement (v0.1 or v1), the fields checked.
type statement struct {
	Type          string `json:"_type"`
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
}

// verifyStatement verifies env under keys and reads its in-toto
// statement: from the verified payload when a key accepts it, else
// (unverified, for messages) from the envelope.
func verifyStatement(ctx context.Context, v verdict, env *ssldsse.Envelope, keys []*key) verdict {
	var body []byte
	for _, k := range keys {
		if b, ok := k.verifyEnvelope(ctx, env); ok {
			v.keyID, body = k.id, b
			break
		}
	}
	if body == nil {
		b, err := env.DecodeB64Payload()
		if err != nil {
			v.problem = "DSSE payload is not base64"
			return v
		}
		body = b
	}
	if env.PayloadType != inTotoPayloadType {
		v.problem = fmt.Sprintf("DSSE payload type is %q, not %q", env.PayloadType, inTotoPayloadType)
		return v
	}
	var st statement
	if err := json.Unmarshal(body, &st); err != nil {
		v.problem = "DSSE payload is not an in-toto statement: " + err.Error()
		return v
	}
	if !strings.HasPrefix(st.Type, "https://in-toto.io/Statement/") {
		v.problem = fmt.Sprintf("DSSE payload is not an in-toto statement (_type %q)", st.Type)
		return v
	}
	v.predicateType = st.PredicateType
	if st.PredicateType == cosignSignPredicate {
		v.kind = KindSignature
	}
	for _, s := range st.Subject {
		for alg, hex := range s.Digest {
			d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
			if d.Validate() == nil {
				v.names = append(v.names, d)
			}
		}
	}
	return v
}

// decodeB64 decodes a standard base64 string (cosign's signature
// annotation).
func decodeB64(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(s)
}
