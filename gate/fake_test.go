package gate

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/options"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// fakeSrc is a Source held in maps (one repository is enough for gates).
type fakeSrc struct {
	manifests map[digest.Digest]registry.Manifest
	tags      map[string]digest.Digest
	referrers map[digest.Digest][]v1.Descriptor
	blobs     map[digest.Digest][]byte
	fail      error // returned by every read when set
	// manifestReads counts ManifestInRepo calls.
	manifestReads int
}

func newFake() *fakeSrc {
	return &fakeSrc{manifests: map[digest.Digest]registry.Manifest{}, tags: map[string]digest.Digest{},
		referrers: map[digest.Digest][]v1.Descriptor{}, blobs: map[digest.Digest][]byte{}}
}

func (f *fakeSrc) Referrers(_ context.Context, _ string, d digest.Digest) ([]v1.Descriptor, error) {
	return f.referrers[d], f.fail
}

func (f *fakeSrc) ManifestInRepo(_ context.Context, _ string, d digest.Digest) (registry.Manifest, error) {
	f.manifestReads++
	if f.fail != nil {
		return registry.Manifest{}, f.fail
	}
	m, ok := f.manifests[d]
	if !ok {
		return m, storage.ErrNotFound
	}
	return m, nil
}

func (f *fakeSrc) TagsWithPrefix(context.Context, string, string) ([]string, error) { return nil, nil }

func (f *fakeSrc) Tag(_ context.Context, _, tag string) (registry.TagState, error) {
	if f.fail != nil {
		return registry.TagState{}, f.fail
	}
	d, ok := f.tags[tag]
	if !ok {
		return registry.TagState{}, storage.ErrNotFound
	}
	return registry.TagState{Digest: d}, nil
}

func (f *fakeSrc) ReadBlob(_ context.Context, d digest.Digest, limit int64) ([]byte, error) {
	b, ok := f.blobs[d]
	if !ok {
		return nil, storage.ErrNotFound
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("too big")
	}
	return b, nil
}

func (f *fakeSrc) blob(mediaType string, b []byte, ann map[string]string) v1.Descriptor {
	d := digest.FromBytes(b)
	f.blobs[d] = b
	return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b)), Annotations: ann}
}

// putManifest stores man; with a subject it is listed as a referrer of
// the subject, like the registry does.
func (f *fakeSrc) putManifest(t *testing.T, man v1.Manifest) registry.Manifest {
	t.Helper()
	man.Versioned = specs.Versioned{SchemaVersion: 2}
	man.MediaType = v1.MediaTypeImageManifest
	raw, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	m := registry.Manifest{Digest: digest.FromBytes(raw), MediaType: man.MediaType, Raw: raw}
	f.manifests[m.Digest] = m
	if man.Subject != nil {
		at := man.ArtifactType
		if at == "" {
			at = man.Config.MediaType
		}
		f.referrers[man.Subject.Digest] = append(f.referrers[man.Subject.Digest],
			v1.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: int64(len(raw)), ArtifactType: at, Annotations: man.Annotations})
	}
	return m
}

// image stores a small image manifest and returns it.
func (f *fakeSrc) image(t *testing.T, seed string) registry.Manifest {
	cfg := f.blob(v1.MediaTypeImageConfig, []byte(`{"seed":"`+seed+`"}`), nil)
	layer := f.blob(v1.MediaTypeImageLayerGzip, []byte("layer "+seed), nil)
	return f.putManifest(t, v1.Manifest{Config: cfg, Layers: []v1.Descriptor{layer}})
}

// index stores an index over children.
func (f *fakeSrc) index(t *testing.T, children ...registry.Manifest) registry.Manifest {
	idx := v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex}
	for i, c := range children {
		idx.Manifests = append(idx.Manifests, v1.Descriptor{MediaType: c.MediaType, Digest: c.Digest, Size: int64(len(c.Raw)),
			Platform: &v1.Platform{OS: "linux", Architecture: []string{"amd64", "arm64", "s390x"}[i%3]}})
	}
	raw, _ := json.Marshal(idx)
	m := registry.Manifest{Digest: digest.FromBytes(raw), MediaType: idx.MediaType, Raw: raw}
	f.manifests[m.Digest] = m
	return m
}

// signer is a test key: a sigstore signer (as cosign loads it) and the
// PEM of its public key.
type signer struct {
	sv  signature.SignerVerifier
	pem string
}

func ecdsaSigner(t *testing.T) signer {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return loadSigner(t, priv, priv.Public())
}

func ed25519Signer(t *testing.T) signer {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return loadSigner(t, priv, pub)
}

func rsaSigner(t *testing.T) signer {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return loadSigner(t, priv, priv.Public())
}

// loadSigner loads priv the way cosign does (cosign.LoadPrivateKey:
// LoadDefaultSignerVerifier with Ed25519ph).
func loadSigner(t *testing.T, priv crypto.PrivateKey, pub crypto.PublicKey) signer {
	t.Helper()
	sv, err := signature.LoadDefaultSignerVerifier(priv, options.WithED25519ph())
	if err != nil {
		t.Fatal(err)
	}
	p, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	return signer{sv: sv, pem: string(p)}
}

// simplePayload is cosign's signed payload for subject
// (payload.Cosign.MarshalJSON).
func simplePayload(t *testing.T, subject digest.Digest) []byte {
	t.Helper()
	sc := sigpayload.SimpleContainerImage{Critical: sigpayload.Critical{
		Identity: sigpayload.Identity{DockerReference: "registry.example/staging/app"},
		Image:    sigpayload.Image{DockerManifestDigest: string(subject)},
		Type:     sigpayload.CosignSignatureType,
	}}
	b, err := json.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (s signer) sign(t *testing.T, payload []byte) string {
	t.Helper()
	sig, err := s.sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// sigLayer stores a simple-signing layer of payload signed by s.
func (f *fakeSrc) sigLayer(t *testing.T, s signer, payload []byte) v1.Descriptor {
	return f.blob(simpleSigningType, payload, map[string]string{signatureAnnotation: s.sign(t, payload)})
}

// sigByTag stores a cosign .sig manifest of layers, tagged for subject.
func (f *fakeSrc) sigByTag(t *testing.T, subject digest.Digest, suffix string, layers ...v1.Descriptor) registry.Manifest {
	cfg := f.blob(v1.MediaTypeImageConfig, []byte(`{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]}}`), nil)
	m := f.putManifest(t, v1.Manifest{Config: cfg, Layers: layers})
	f.tags["sha256-"+subject.Encoded()+suffix] = m.Digest
	return m
}

// sigByReferrer stores a signature manifest the way cosign's
// --registry-referrers-mode=oci-1-1 does (WriteSignaturesExperimentalOCI).
func (f *fakeSrc) sigByReferrer(t *testing.T, subject registry.Manifest, artifactType string, layers ...v1.Descriptor) registry.Manifest {
	cfg := f.blob(artifactType, []byte(`{}`), nil)
	return f.putManifest(t, v1.Manifest{Config: cfg, Layers: layers, ArtifactType: artifactType,
		Subject: &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: int64(len(subject.Raw))}})
}

// statement is an in-toto v0.1 statement as cosign attest writes it.
func statementFor(t *testing.T, predicateType string, subjects ...digest.Digest) []byte {
	t.Helper()
	type sub struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	}
	st := struct {
		Type          string         `json:"_type"`
		PredicateType string         `json:"predicateType"`
		Subject       []sub          `json:"subject"`
		Predicate     map[string]any `json:"predicate"`
	}{Type: "https://in-toto.io/Statement/v0.1", PredicateType: predicateType, Predicate: map[string]any{"builder": map[string]any{"id": "ci"}}}
	for _, d := range subjects {
		st.Subject = append(st.Subject, sub{Name: "registry.example/staging/app", Digest: map[string]string{d.Algorithm().String(): d.Encoded()}})
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// envelope is the DSSE envelope cosign attest makes (dsse.WrapSigner).
func (s signer) envelope(t *testing.T, payloadType string, body []byte) []byte {
	t.Helper()
	env, err := sigdsse.WrapSigner(s.sv, payloadType).SignMessage(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// attLayer stores a cosign attestation layer (DSSE envelope, predicateType
// annotation, empty signature annotation).
func (f *fakeSrc) attLayer(t *testing.T, s signer, predicateType string, subjects ...digest.Digest) v1.Descriptor {
	env := s.envelope(t, inTotoPayloadType, statementFor(t, predicateType, subjects...))
	return f.blob(dsseEnvelopeType, env, map[string]string{"predicateType": predicateType, signatureAnnotation: ""})
}
