package gate

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/registry"
)

const (
	slsa = "https://slsa.dev/provenance/v1"
	spdx = "https://spdx.dev/Document"
)

func checker(t *testing.T, g config.Gates) *Checker {
	t.Helper()
	c, err := New([]config.Stage{{Name: "staging", Prefix: "staging/"}, {Name: "production", Prefix: "production/", Gates: g}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func check(t *testing.T, c *Checker, src Source, m registry.Manifest) Result {
	t.Helper()
	res, err := c.Check(context.Background(), src, "production", "staging/app", m)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// failsWith asserts one failure of gate whose message contains every want
// (other gates of the stage may fail too).
func failsWith(t *testing.T, res Result, gate string, want ...string) {
	t.Helper()
	var fs []Failure
	for _, f := range res.Failures {
		if f.Gate == gate {
			fs = append(fs, f)
		}
	}
	if len(fs) != 1 {
		t.Fatalf("failures = %+v, want one of gate %s", res.Failures, gate)
	}
	for _, w := range want {
		if !strings.Contains(fs[0].Message, w) {
			t.Fatalf("message %q lacks %q", fs[0].Message, w)
		}
	}
}

func passes(t *testing.T, res Result) {
	t.Helper()
	if !res.Passed() {
		t.Fatalf("failures: %+v", res.Failures)
	}
}

func TestSignedBy(t *testing.T) {
	ci, other := ecdsaSigner(t), ecdsaSigner(t)
	gates := config.Gates{SignedBy: []config.GateKey{{Name: "ci-2026", Key: ci.pem}}}
	c := checker(t, gates)

	t.Run("none", func(t *testing.T) {
		f := newFake()
		img := f.image(t, "a")
		failsWith(t, check(t, c, f, img), "signed_by", "no signature by key ci-2026 over "+string(img.Digest))
	})
	t.Run("other key", func(t *testing.T) {
		f := newFake()
		img := f.image(t, "a")
		f.sigByTag(t, img.Digest, ".sig", f.sigLayer(t, other, simplePayload(t, img.Digest)))
		failsWith(t, check(t, c, f, img), "signed_by", "1 signature found: verifies under no configured key")
	})
	t.Run("other digest", func(t *testing.T) {
		f := newFake()
		img, img2 := f.image(t, "a"), f.image(t, "b")
		f.sigByTag(t, img.Digest, ".sig", f.sigLayer(t, ci, simplePayload(t, img2.Digest)))
		failsWith(t, check(t, c, f, img), "signed_by", "payload names "+string(img2.Digest)+", not "+string(img.Digest))
	})
	t.Run("payload changed after signing", func(t *testing.T) {
		// A new layer whose bytes are another payload but which keeps the
		// signature annotation of the original.
		f := newFake()
		img, img2 := f.image(t, "a"), f.image(t, "b")
		good := f.sigLayer(t, ci, simplePayload(t, img2.Digest))
		forged := f.blob(simpleSigningType, simplePayload(t, img.Digest), good.Annotations)
		f.sigByTag(t, img.Digest, ".sig", forged)
		failsWith(t, check(t, c, f, img), "signed_by", "verifies under no configured key")
	})
	t.Run("payload bytes not its digest", func(t *testing.T) {
		f := newFake()
		img := f.image(t, "a")
		l := f.sigLayer(t, ci, simplePayload(t, img.Digest))
		b := f.blobs[l.Digest]
		f.blobs[l.Digest] = append(append([]byte{}, b[:len(b)-1]...), ' ')
		f.sigByTag(t, img.Digest, ".sig", l)
		failsWith(t, check(t, c, f, img), "signed_by", "payload does not match its digest")
	})
	t.Run("valid by tag", func(t *testing.T) {
		f := newFake()
		img := f.image(t, "a")
		l := f.sigLayer(t, ci, simplePayload(t, img.Digest))
		sm := f.sigByTag(t, img.Digest, ".sig", f.sigLayer(t, other, simplePayload(t, img.Digest)), l)
		res := check(t, c, f, img)
		passes(t, res)
		want := Proof{Kind: KindSignature, Subject: img.Digest, Manifest: sm.Digest, Layer: l.Digest, KeyID: "ci-2026", Via: "tag"}
		if len(res.Evidence) != 1 || res.Evidence[0] != want {
			t.Fatalf("evidence %+v, want %+v", res.Evidence, want)
		}
	})
	t.Run("valid by referrers", func(t *testing.T) {
		f := newFake()
		img := f.image(t, "a")
		l := f.sigLayer(t, ci, simplePayload(t, img.Digest))
		sm := f.sigByReferrer(t, img, cosignSigArtifact, l)
		res := check(t, c, f, img)
		passes(t, res)
		if len(res.Evidence) != 1 || res.Evidence[0].Via != "referrers" || res.Evidence[0].Manifest != sm.Digest || res.Evidence[0].KeyID != "ci-2026" {
			t.Fatalf("evidence %+v", res.Evidence)
		}
	})
	t.Run("store failure is an error", func(t *testing.T) {
		f := newFake()
		img := f.image(t, "a")
		f.fail = errors.New("s3 down")
		if _, err := c.Check(context.Background(), f, "production", "staging/app", img); err == nil || !strings.Contains(err.Error(), "s3 down") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ungated stage", func(t *testing.T) {
		f := newFake()
		res, err := c.Check(context.Background(), f, "staging", "staging/app", f.image(t, "a"))
		if err != nil || !res.Passed() || c.Gated("staging") || !c.Gated("production") {
			t.Fatalf("res %+v err %v", res, err)
		}
	})
}

// Ed25519 (cosign signs with Ed25519ph) and RSA keys, without names: the
// key id is the fingerprint.
func TestKeyTypes(t *testing.T) {
	for name, s := range map[string]signer{"ed25519": ed25519Signer(t), "rsa": rsaSigner(t)} {
		t.Run(name, func(t *testing.T) {
			c := checker(t, config.Gates{SignedBy: []config.GateKey{{Key: ecdsaSigner(t).pem}, {Key: s.pem}}})
			f := newFake()
			img := f.image(t, "a")
			f.sigByTag(t, img.Digest, ".sig", f.sigLayer(t, s, simplePayload(t, img.Digest)))
			res := check(t, c, f, img)
			passes(t, res)
			id := c.stages["production"].keys[1].id
			if !strings.HasPrefix(id, "sha256:") || len(id) != 7+16 || res.Evidence[0].KeyID != id {
				t.Fatalf("key id %q, evidence %+v", id, res.Evidence)
			}
			f2 := newFake()
			img2 := f2.image(t, "b")
			failsWith(t, check(t, c, f2, img2), "signed_by", "any of the keys "+c.stages["production"].keys[0].id+", "+id)
		})
	}
}

func TestAttestations(t *testing.T) {
	ci, other := ecdsaSigner(t), ed25519Signer(t)
	c := checker(t, config.Gates{SignedBy: []config.GateKey{{Name: "ci", Key: ci.pem}}, Attestations: []string{slsa}})

	t.Run("wrong type", func(t *testing.T) {
		f := newFake()
		img := f.image(t, "a")
		f.sigByTag(t, img.Digest, ".att", f.attLayer(t, ci, spdx, img.Digest))
		failsWith(t, check(t, c, f, img), "attestations", "no attestation of type "+slsa+" signed by key ci for "+string(img.Digest), "other types: "+spdx)
	})
	t.Run("annotation lies about the type", func(t *testing.T) {
		f := newFake()
		img := f.image(t, "a")
		l := f.attLayer(t, ci, spdx, img.Digest)
		l.Annotations["predicateType"] = slsa
		f.sigByTag(t, img.Digest, ".att", l)
		failsWith(t, check(t, c, f, img), "attestations", "no attestation of type "+slsa)
	})
	t.Run("wrong subject", func(t *testing.T) {
		f := newFake()
		img, img2 := f.image(t, "a"), f.image(t, "b")
		f.sigByTag(t, img.Digest, ".att", f.attLayer(t, ci, slsa, img2.Digest))
		failsWith(t, check(t, c, f, img), "attestations", "subjects are "+string(img2.Digest))
	})
	t.Run("other key", func(t *testing.T) {
		f := newFake()
		img := f.image(t, "a")
		f.sigByTag(t, img.Digest, ".att", f.attLayer(t, other, slsa, img.Digest))
		failsWith(t, check(t, c, f, img), "attestations", "1 attestation found: signed by no configured key")
	})
	t.Run("tampered envelope", func(t *testing.T) {
		// The statement swapped for one about img, the signature kept.
		f := newFake()
		img, img2 := f.image(t, "a"), f.image(t, "b")
		var env map[string]any
		_ = json.Unmarshal(ci.envelope(t, inTotoPayloadType, statementFor(t, slsa, img2.Digest)), &env)
		env["payload"] = base64.StdEncoding.EncodeToString(statementFor(t, slsa, img.Digest))
		b, _ := json.Marshal(env)
		f.sigByTag(t, img.Digest, ".att", f.blob(dsseEnvelopeType, b, nil))
		failsWith(t, check(t, c, f, img), "attestations", "signed by no configured key")
	})
	t.Run("wrong payload type", func(t *testing.T) {
		f := newFake()
		img := f.image(t, "a")
		env := ci.envelope(t, "application/json", statementFor(t, slsa, img.Digest))
		f.sigByTag(t, img.Digest, ".att", f.blob(dsseEnvelopeType, env, nil))
		failsWith(t, check(t, c, f, img), "attestations", `DSSE payload type is "application/json"`)
	})
	t.Run("valid", func(t *testing.T) {
		f := newFake()
		img := f.image(t, "a")
		f.sigByTag(t, img.Digest, ".sig", f.sigLayer(t, ci, simplePayload(t, img.Digest)))
		l := f.attLayer(t, ci, slsa, img.Digest)
		am := f.sigByTag(t, img.Digest, ".att", f.attLayer(t, ci, spdx, img.Digest), l)
		res := check(t, c, f, img)
		passes(t, res)
		want := Proof{Kind: KindAttestation, Subject: img.Digest, Manifest: am.Digest, Layer: l.Digest, KeyID: "ci", Type: slsa, Via: "tag"}
		if len(res.Evidence) != 2 || res.Evidence[1] != want {
			t.Fatalf("evidence %+v, want [signature, %+v]", res.Evidence, want)
		}
	})
}

// bundleLayer is what cosign --new-bundle-format pushes: a sigstore bundle
// v0.3 whose DSSE envelope holds an in-toto statement (MakeNewBundle).
func (f *fakeSrc) bundleLayer(t *testing.T, s signer, predicateType string, subject digest.Digest) v1.Descriptor {
	t.Helper()
	body := statementFor(t, predicateType, subject)
	var env struct {
		PayloadType string `json:"payloadType"`
		Signatures  []struct {
			Sig string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(s.envelope(t, inTotoPayloadType, body), &env); err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	b := &protobundle.Bundle{
		MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{Content: &protobundle.VerificationMaterial_PublicKey{
			PublicKey: &protocommon.PublicKeyIdentifier{Hint: "hint"}}},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: body, PayloadType: env.PayloadType, Signatures: []*protodsse.Signature{{Sig: sig}}}},
	}
	raw, err := protojson.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return f.blob("application/vnd.dev.sigstore.bundle.v0.3+json", raw, nil)
}

func TestSigstoreBundles(t *testing.T) {
	ci, other := ecdsaSigner(t), ecdsaSigner(t)
	c := checker(t, config.Gates{SignedBy: []config.GateKey{{Name: "ci", Key: ci.pem}}, Attestations: []string{slsa}})
	const bt = "application/vnd.dev.sigstore.bundle.v0.3+json"
	f := newFake()
	img := f.image(t, "a")
	f.sigByReferrer(t, img, bt, f.bundleLayer(t, other, cosignSignPredicate, img.Digest))
	f.sigByReferrer(t, img, bt, f.bundleLayer(t, ci, slsa, img.Digest))
	failsWith(t, check(t, c, f, img), "signed_by", "1 signature found: verifies under no configured key")
	// Listed under the empty config type, as go-containerregistry's
	// fallback referrers index lists cosign's bundle manifests.
	f.sigByReferrer(t, img, v1.MediaTypeEmptyJSON, f.bundleLayer(t, ci, cosignSignPredicate, img.Digest))
	res := check(t, c, f, img)
	passes(t, res)
	if len(res.Evidence) != 2 || res.Evidence[0].Kind != KindSignature || res.Evidence[1].Type != slsa || res.Evidence[1].Via != "referrers" {
		t.Fatalf("evidence %+v", res.Evidence)
	}
}

func TestReferrerGate(t *testing.T) {
	const report = "application/vnd.slipway.test-report"
	c := checker(t, config.Gates{Referrers: []config.ReferrerGate{{ArtifactType: report, Annotations: map[string]string{"result": "pass"}}}})
	f := newFake()
	img := f.image(t, "a")
	failsWith(t, check(t, c, f, img), "referrers", "no referrer of type "+report+" with annotations result=pass attached to "+string(img.Digest))
	cfg := f.blob("application/vnd.oci.empty.v1+json", []byte("{}"), nil)
	sub := &v1.Descriptor{MediaType: img.MediaType, Digest: img.Digest, Size: int64(len(img.Raw))}
	f.putManifest(t, v1.Manifest{Config: cfg, ArtifactType: report, Subject: sub, Annotations: map[string]string{"result": "fail"}})
	failsWith(t, check(t, c, f, img), "referrers", "1 referrer of that type found, without those annotations")
	ok := f.putManifest(t, v1.Manifest{Config: cfg, ArtifactType: report, Subject: sub, Annotations: map[string]string{"result": "pass", "x": "y"}})
	f.sigByTag(t, img.Digest, ".sig", f.sigLayer(t, ecdsaSigner(t), simplePayload(t, img.Digest)))
	f.manifestReads = 0
	res := check(t, c, f, img)
	passes(t, res)
	if f.manifestReads != 0 {
		t.Fatalf("a stage without signed_by read %d signature manifests", f.manifestReads)
	}
	if len(res.Evidence) != 1 || res.Evidence[0] != (Proof{Kind: KindReferrer, Subject: img.Digest, Manifest: ok.Digest, Type: report, Via: "referrers"}) {
		t.Fatalf("evidence %+v", res.Evidence)
	}
}

func TestPerPlatform(t *testing.T) {
	ci := ecdsaSigner(t)
	f := newFake()
	amd, arm := f.image(t, "amd64"), f.image(t, "arm64")
	idx := f.index(t, amd, arm)
	for _, d := range []digest.Digest{idx.Digest, amd.Digest} {
		f.sigByTag(t, d, ".sig", f.sigLayer(t, ci, simplePayload(t, d)))
	}
	keys := []config.GateKey{{Name: "ci", Key: ci.pem}}
	passes(t, check(t, checker(t, config.Gates{SignedBy: keys}), f, idx))
	res := check(t, checker(t, config.Gates{SignedBy: keys, PerPlatform: true}), f, idx)
	failsWith(t, res, "signed_by", "no signature by key ci over "+string(arm.Digest))
	if res.Failures[0].Subject != arm.Digest || len(res.Evidence) != 2 {
		t.Fatalf("result %+v", res)
	}
}

func TestInspect(t *testing.T) {
	ci, stranger := ecdsaSigner(t), rsaSigner(t)
	c, err := New([]config.Stage{
		{Name: "staging", Prefix: "staging/", Gates: config.Gates{SignedBy: []config.GateKey{{Name: "dev", Key: ed25519Signer(t).pem}}}},
		{Name: "production", Prefix: "production/", Gates: config.Gates{SignedBy: []config.GateKey{{Name: "ci", Key: ci.pem}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	img := f.image(t, "a")
	good := f.sigLayer(t, ci, simplePayload(t, img.Digest))
	unknown := f.sigLayer(t, stranger, simplePayload(t, img.Digest))
	f.sigByTag(t, img.Digest, ".sig", good, unknown)
	att := f.attLayer(t, ci, slsa, img.Digest)
	f.sigByReferrer(t, img, inTotoPayloadType, att)
	ps, err := c.Inspect(context.Background(), f, "staging/app", img)
	if err != nil {
		t.Fatal(err)
	}
	// Both signatures' payloads are the same bytes (one layer digest), as
	// with cosign; they are told apart by position.
	if len(ps) != 3 || ps[0].Layer != good.Digest || ps[0].KeyID != "ci" || ps[1].Layer != unknown.Digest || ps[1].KeyID != "" || ps[1].Kind != KindSignature ||
		ps[2].Layer != att.Digest || ps[2].KeyID != "ci" || ps[2].Type != slsa || ps[2].Via != "referrers" || ps[2].Kind != KindAttestation {
		t.Fatalf("inspect = %+v", ps)
	}
}

func TestNewErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	pem := ecdsaSigner(t).pem
	good := filepath.Join(dir, "good.pem")
	if err := os.WriteFile(good, []byte(pem), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		gates config.Gates
		want  string
	}{
		{"missing file", config.Gates{SignedBy: []config.GateKey{{Key: pem}, {KeyFile: "/nonexistent/k.pem"}}}, "stages[1].gates.signed_by[1].key_file: cannot read /nonexistent/k.pem: "},
		{"garbage file", config.Gates{SignedBy: []config.GateKey{{KeyFile: garbage}}}, "stages[1].gates.signed_by[0].key_file: not a PEM public key"},
		{"garbage inline", config.Gates{SignedBy: []config.GateKey{{Key: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}}}, "stages[1].gates.signed_by[0].key: not a PEM public key"},
		{"both", config.Gates{SignedBy: []config.GateKey{{Key: pem, KeyFile: good}}}, "stages[1].gates.signed_by[0].key_file: set key or key_file, not both"},
		{"neither", config.Gates{SignedBy: []config.GateKey{{Name: "x"}}}, "stages[1].gates.signed_by[0]: needs key"},
		{"attestations without keys", config.Gates{Attestations: []string{slsa}}, "stages[1].gates.attestations: need signed_by"},
		{"empty predicate", config.Gates{SignedBy: []config.GateKey{{Key: pem}}, Attestations: []string{""}}, "stages[1].gates.attestations[0]: must be"},
		{"artifact type", config.Gates{Referrers: []config.ReferrerGate{{ArtifactType: "report"}}}, "stages[1].gates.referrers[0].artifact_type: must be a media type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New([]config.Stage{{Name: "staging"}, {Name: "production", Gates: tc.gates}})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want prefix %q", err, tc.want)
			}
		})
	}
	// One name for two different keys, across stages.
	_, err := New([]config.Stage{
		{Name: "a", Gates: config.Gates{SignedBy: []config.GateKey{{Name: "ci", KeyFile: good}}}},
		{Name: "b", Gates: config.Gates{SignedBy: []config.GateKey{{Name: "ci", Key: ecdsaSigner(t).pem}}}},
	})
	if err == nil || !strings.Contains(err.Error(), `stages[1].gates.signed_by[0].name: "ci" already names another key`) {
		t.Fatalf("err = %v", err)
	}
	// The same key under the same name in two stages is one key.
	c, err := New([]config.Stage{
		{Name: "a", Gates: config.Gates{SignedBy: []config.GateKey{{Name: "ci", KeyFile: good}}}},
		{Name: "b", Gates: config.Gates{SignedBy: []config.GateKey{{Name: "ci", Key: pem}}}},
	})
	if err != nil || len(c.all) != 1 {
		t.Fatalf("err = %v", err)
	}
}
