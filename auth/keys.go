package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"

	"github.com/golang-jwt/jwt/v5"
)

// rsaBits is the size of generated RSA keys; smaller keys are refused.
const (
	rsaBits    = 3072
	rsaMinBits = 2048
)

// publicKey is one key tokens may be verified with.
type publicKey struct {
	kid    string // RFC 7638 thumbprint
	alg    string // ES256, EdDSA or RS256
	method jwt.SigningMethod
	key    crypto.PublicKey // what golang-jwt's Verify expects for alg
	jwk    JWK
}

// signingKey is the private half of the key tokens are signed with.
type signingKey struct {
	publicKey
	private crypto.Signer
}

// JWK is one public key in a JSON Web Key Set (RFC 7517).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS is the document served at /auth/jwks.json.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// keySet is the signing key plus every key accepted for verification.
type keySet struct {
	signing signingKey
	byKID   map[string]publicKey
	algs    []string // the algorithms of the keys above: nothing else verifies
	jwks    JWKS
}

func newKeySet(signing signingKey, others []publicKey) *keySet {
	ks := &keySet{signing: signing, byKID: map[string]publicKey{}}
	for _, k := range append([]publicKey{signing.publicKey}, others...) {
		if _, dup := ks.byKID[k.kid]; dup {
			continue
		}
		ks.byKID[k.kid] = k
		ks.jwks.Keys = append(ks.jwks.Keys, k.jwk)
		if !slices.Contains(ks.algs, k.alg) {
			ks.algs = append(ks.algs, k.alg)
		}
	}
	return ks
}

var b64 = base64.RawURLEncoding

// newPublicKey describes a public key: its algorithm, JWK and thumbprint.
func newPublicKey(pub crypto.PublicKey) (publicKey, error) {
	var k publicKey
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return k, fmt.Errorf("ECDSA keys must use P-256 (ES256), got %s", p.Curve.Params().Name)
		}
		raw, err := p.Bytes() // 0x04 || X || Y, each 32 bytes
		if err != nil {
			return k, err
		}
		k.alg, k.method = "ES256", jwt.SigningMethodES256
		k.jwk = JWK{Kty: "EC", Crv: "P-256", X: b64.EncodeToString(raw[1:33]), Y: b64.EncodeToString(raw[33:])}
	case ed25519.PublicKey:
		k.alg, k.method = "EdDSA", jwt.SigningMethodEdDSA
		k.jwk = JWK{Kty: "OKP", Crv: "Ed25519", X: b64.EncodeToString(p)}
	case *rsa.PublicKey:
		if p.N.BitLen() < rsaMinBits {
			return k, fmt.Errorf("RSA keys must have at least %d bits, got %d", rsaMinBits, p.N.BitLen())
		}
		k.alg, k.method = "RS256", jwt.SigningMethodRS256
		k.jwk = JWK{Kty: "RSA", N: b64.EncodeToString(p.N.Bytes()), E: b64.EncodeToString(big.NewInt(int64(p.E)).Bytes())}
	default:
		return k, fmt.Errorf("unsupported key type %T (use ECDSA P-256, Ed25519 or RSA)", pub)
	}
	k.key = pub
	k.kid = Thumbprint(k.jwk)
	k.jwk.Kid, k.jwk.Alg, k.jwk.Use = k.kid, k.alg, "sig"
	return k, nil
}

// Thumbprint is the RFC 7638 thumbprint of a public JWK: the base64url
// SHA-256 of its required members, in lexical order, without whitespace.
func Thumbprint(j JWK) string {
	var canon string
	switch j.Kty {
	case "EC":
		canon = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, j.Crv, j.X, j.Y)
	case "OKP":
		canon = fmt.Sprintf(`{"crv":%q,"kty":"OKP","x":%q}`, j.Crv, j.X)
	case "RSA":
		canon = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, j.E, j.N)
	}
	sum := sha256.Sum256([]byte(canon))
	return b64.EncodeToString(sum[:])
}

// loadSigningKey reads the private key at path, or generates one of alg
// there when the file does not exist. Two replicas starting at once on a
// shared folder agree: the file appears atomically and the loser reads the
// winner's. generated tells whether this call wrote it.
func loadSigningKey(path, alg string) (k signingKey, generated bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		generated, err = generateKeyFile(path, alg)
		if err != nil {
			return k, false, err
		}
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return k, false, err
	}
	priv, err := parsePrivateKey(data)
	if err != nil {
		return k, false, fmt.Errorf("%s: %w", path, err)
	}
	pk, err := newPublicKey(priv.Public())
	if err != nil {
		return k, false, fmt.Errorf("%s: %w", path, err)
	}
	if pk.alg != alg {
		return k, false, fmt.Errorf("%s holds an %s key but auth.algorithm is %s", path, pk.alg, alg)
	}
	return signingKey{publicKey: pk, private: priv}, generated, nil
}

func generateKeyFile(path, alg string) (bool, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
	default:
		err = fmt.Errorf("unknown algorithm %q", alg)
	}
	if err != nil {
		return false, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(dir, ".token-*.pem") // mode 0600
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	// A hard link creates path only if it does not exist yet, with the
	// whole content already there.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// parsePrivateKey reads the one private key in a PEM file: PKCS#8, or the
// older SEC 1 ("EC PRIVATE KEY") and PKCS#1 ("RSA PRIVATE KEY") forms.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	var found crypto.Signer
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		if found != nil {
			return nil, errors.New("more than one private key")
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
		found = s
	}
	if found == nil {
		return nil, errors.New("no PEM private key found")
	}
	return found, nil
}

// loadVerificationKeys reads every public key (or the public half of every
// private key) in the PEM files.
func loadVerificationKeys(paths []string) ([]publicKey, error) {
	var keys []publicKey
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		n := 0
		for {
			var block *pem.Block
			block, data = pem.Decode(data)
			if block == nil {
				break
			}
			pub, err := publicFromBlock(block)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if pub == nil {
				continue
			}
			k, err := newPublicKey(pub)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			keys = append(keys, k)
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: no PEM key found", path)
		}
	}
	return keys, nil
}

func publicFromBlock(block *pem.Block) (crypto.PublicKey, error) {
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
		priv, err := parsePrivateKey(pem.EncodeToMemory(block))
		if err != nil {
			return nil, err
		}
		return priv.Public(), nil
	}
	return nil, nil // certificates and the like: not keys we use
}
