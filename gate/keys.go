package gate

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"

	ssldsse "github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/slipway/slipway/config"
)

// key is one configured public key: its id (the configured name, else a
// fingerprint) and the verifiers of the signature schemes cosign signs
// with for it.
type key struct {
	id        string
	pub       crypto.PublicKey
	verifiers []signature.Verifier
}

// maxKeyFile bounds a key_file read (a PEM public key is a few KiB).
const maxKeyFile = 64 << 10

// parseKey loads k; at is its configuration key
// ("stages[1].gates.signed_by[0]"), which errors name.
func parseKey(k config.GateKey, at string) (*key, error) {
	var pemBytes []byte
	field := at + ".key"
	switch {
	case k.Key != "" && k.KeyFile != "":
		return nil, fmt.Errorf("%s.key_file: set key or key_file, not both", at)
	case k.KeyFile != "":
		field = at + ".key_file"
		b, err := readKeyFile(k.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot read %s: %w", field, k.KeyFile, err)
		}
		pemBytes = b
	case k.Key != "":
		pemBytes = []byte(k.Key)
	default:
		return nil, fmt.Errorf("%s: needs key (an inline PEM public key) or key_file", at)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: not a PEM public key (ECDSA, Ed25519 or RSA): %w", field, err)
	}
	if err := supported(pub); err != nil {
		return nil, fmt.Errorf("%s: unsupported public key: %w", field, err)
	}
	vs, err := verifiersFor(pub)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	id := k.Name
	if id == "" {
		if id, err = fingerprint(pub); err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
	}
	return &key{id: id, pub: pub, verifiers: vs}, nil
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	if fi.Size() > maxKeyFile {
		return nil, fmt.Errorf("%d bytes, more than a public key's %d", fi.Size(), maxKeyFile)
	}
	buf := make([]byte, fi.Size())
	if _, err := f.ReadAt(buf, 0); err != nil {
		return nil, err
	}
	return buf, nil
}

// supported refuses keys cosign does not sign with: RSA under 2048 bits,
// ECDSA on curves other than P-256/384/521.
func supported(pub crypto.PublicKey) error {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits, fewer than 2048", p.N.BitLen())
		}
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("ECDSA curve %s", p.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("%T", pub)
	}
	return nil
}

// verifiersFor returns the schemes a cosign signature by pub may use:
// what `cosign verify --key` checks (SHA-256; pure Ed25519), plus what
// cosign signs with by default (LoadDefaultSignerVerifier with Ed25519ph:
// Ed25519ph for Ed25519, SHA-384/512 for P-384/P-521). Each is sigstore's
// verifier; a signature passes when one of them accepts it.
func verifiersFor(pub crypto.PublicKey) ([]signature.Verifier, error) {
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	vs := []signature.Verifier{v}
	extra := false
	switch p := pub.(type) {
	case ed25519.PublicKey:
		extra = true
	case *ecdsa.PublicKey:
		extra = p.Curve != elliptic.P256()
	}
	if extra {
		d, err := signature.LoadDefaultVerifier(pub, options.WithED25519ph())
		if err != nil {
			return nil, err
		}
		vs = append(vs, d)
	}
	return vs, nil
}

// fingerprint names a key without a configured name: "sha256:" and the
// first 16 hex digits of the SHA-256 of its PKIX DER.
func fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])[:16], nil
}

// sameKey reports whether a and b are the same public key.
func sameKey(a, b crypto.PublicKey) bool {
	da, err1 := x509.MarshalPKIXPublicKey(a)
	db, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(da, db)
}

// verify reports whether sig is k's signature over msg.
func (k *key) verify(ctx context.Context, sig, msg []byte) bool {
	for _, v := range k.verifiers {
		if v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg), options.WithContext(ctx)) == nil {
			return true
		}
	}
	return false
}

// verifyEnvelope checks a DSSE envelope's signatures (over
// PAE(payloadType, payload), by securesystemslib) under k and returns the
// payload that was verified.
func (k *key) verifyEnvelope(ctx context.Context, env *ssldsse.Envelope) ([]byte, bool) {
	// A signature's keyid is an unauthenticated hint; securesystemslib
	// skips a signature whose keyid differs from the verifier's, so it is
	// cleared here rather than matched.
	e := *env
	e.Signatures = make([]ssldsse.Signature, len(env.Signatures))
	for i, s := range env.Signatures {
		e.Signatures[i] = ssldsse.Signature{Sig: s.Sig}
	}
	for _, v := range k.verifiers {
		ev, err := ssldsse.NewEnvelopeVerifier(&sigdsse.VerifierAdapter{SignatureVerifier: v, Pub: k.pub})
		if err != nil {
			continue
		}
		if _, payload, err := ev.VerifyAndDecode(ctx, &e); err == nil {
			return payload, true
		}
	}
	return nil, false
}
