package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// The example of RFC 7638, section 3.1.
func TestThumbprintRFC7638(t *testing.T) {
	j := JWK{
		Kty: "RSA",
		N: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs" +
			"tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n9" +
			"1CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
		E: "AQAB",
	}
	if got, want := Thumbprint(j), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("thumbprint %s, want %s", got, want)
	}
}

func TestPublicKeyJWKs(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		pub       any
		alg, kty  string
		coordsLen int
	}{
		{&ec.PublicKey, "ES256", "EC", 43},
		{ed, "EdDSA", "OKP", 43},
		{&rs.PublicKey, "RS256", "RSA", 0},
	} {
		k, err := newPublicKey(tc.pub)
		if err != nil {
			t.Fatal(err)
		}
		if k.alg != tc.alg || k.jwk.Kty != tc.kty || k.jwk.Alg != tc.alg || k.jwk.Use != "sig" || k.kid != Thumbprint(k.jwk) || k.jwk.Kid != k.kid {
			t.Errorf("%s: %+v", tc.alg, k.jwk)
		}
		if tc.coordsLen > 0 && len(k.jwk.X) != tc.coordsLen {
			t.Errorf("%s: x %q", tc.alg, k.jwk.X)
		}
	}
	if k, _ := newPublicKey(&rs.PublicKey); k.jwk.E != "AQAB" {
		t.Errorf("RSA e = %q", k.jwk.E)
	}
	// A P-256 point whose X has a leading zero byte keeps its 32 bytes.
	for {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		raw, _ := k.PublicKey.Bytes()
		if raw[1] != 0 {
			continue
		}
		pk, _ := newPublicKey(&k.PublicKey)
		if len(pk.jwk.X) != 43 {
			t.Fatalf("x with a leading zero encoded as %q", pk.jwk.X)
		}
		break
	}

	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	small := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023), E: 65537}
	for _, bad := range []any{&p384.PublicKey, small, "not a key"} {
		if _, err := newPublicKey(bad); err == nil {
			t.Errorf("%T accepted", bad)
		}
	}
}

func TestLoadSigningKeyGeneratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "token.pem")
	// Several replicas starting at once on a shared folder agree on one key.
	var wg sync.WaitGroup
	kids := make([]string, 8)
	gens := make([]bool, 8)
	for i := range kids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, gen, err := loadSigningKey(path, "ES256")
			if err != nil {
				t.Error(err)
				return
			}
			kids[i], gens[i] = k.kid, gen
		}()
	}
	wg.Wait()
	n := 0
	for i := range kids {
		if kids[i] != kids[0] {
			t.Fatalf("replicas disagree: %q", kids)
		}
		if gens[i] {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d replicas say they generated the key", n)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	if _, _, err := loadSigningKey(path, "RS256"); err == nil {
		t.Fatal("an ES256 key loaded as RS256")
	}
	for _, alg := range []string{"EdDSA", "RS256"} {
		p := filepath.Join(t.TempDir(), "k.pem")
		k, gen, err := loadSigningKey(p, alg)
		if err != nil || !gen || k.alg != alg {
			t.Fatalf("%s: %v %v %s", alg, err, gen, k.alg)
		}
	}
}

func TestLoadKeysFormats(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	pkix, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	ed, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(edPriv)

	// SEC 1 as the signing key.
	k, _, err := loadSigningKey(write("sec1.pem", &pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), "ES256")
	if err != nil {
		t.Fatal(err)
	}
	// Verification keys: public PEM and private PEM, several in one file.
	keys, err := loadVerificationKeys([]string{
		write("pub.pem", &pem.Block{Type: "PUBLIC KEY", Bytes: pkix}),
		write("both.pem", &pem.Block{Type: "CERTIFICATE", Bytes: []byte("ignored")}, &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].kid != k.kid || keys[1].alg != "EdDSA" {
		t.Fatalf("keys %+v", keys)
	}
	edKey, _ := newPublicKey(ed)
	if keys[1].kid != edKey.kid {
		t.Fatal("private PEM's public half differs")
	}
	set := newKeySet(k, keys)
	if len(set.jwks.Keys) != 2 || len(set.algs) != 2 { // the duplicate EC key counts once
		t.Fatalf("set %+v %v", set.jwks.Keys, set.algs)
	}

	for name, path := range map[string]string{
		"empty":   write("empty.pem"),
		"garbage": write("garbage.pem", &pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}),
		"missing": filepath.Join(dir, "nope.pem"),
	} {
		if _, err := loadVerificationKeys([]string{path}); err == nil {
			t.Errorf("%s verification key accepted", name)
		}
	}
	if _, _, err := loadSigningKey(write("two.pem", &pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}, &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), "ES256"); err == nil {
		t.Error("a file with two private keys accepted as the signing key")
	}
	if _, _, err := loadSigningKey(write("pubonly.pem", &pem.Block{Type: "PUBLIC KEY", Bytes: pkix}), "ES256"); err == nil {
		t.Error("a public key accepted as the signing key")
	}
}
