package registry

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Upload ids. POST writes nothing: the session object uploads/<id> is
// created by the first request that stores data in it (PATCH, or a PUT with
// a body), with put-if-absent. Until then the id itself is the session: it
// carries what the initial state needs (when it was issued and which digest
// algorithm to hash with) and an HMAC over that and the repository, keyed by
// a secret all replicas share (http.secret, else derived from the token
// signing key), so any replica can tell an id it may start from scratch
// from one it must not:
//
//	hex( random[12] | issued unix seconds[4] | algorithm[1] | HMAC-SHA256(key, repo, the 17 bytes before)[:15] )
//
// 64 hex characters. A missing object for a valid id younger than the
// upload TTL (uploads.purge_after) is the initial state (offset 0, nothing
// stored); an older one is unknown, so a session that purge removed is not
// revived. Ids of 32 hex characters (issued before this scheme) are known
// only while their object exists.
const (
	uploadIDBytes  = 32
	uploadIDRandom = 12
	uploadIDSigned = uploadIDRandom + 4 + 1
)

var uploadAlgorithms = []digest.Algorithm{digest.SHA256, digest.SHA512}

// defaultUploadKey is used when Options.UploadKey is empty (tests,
// embedded use). A server always sets a key shared by its replicas.
var defaultUploadKey = []byte("slipway upload id (no key configured)")

// uploadIDs mints and reads the upload ids of one key.
type uploadIDs struct{ key []byte }

// uploadIDInfo is what an id says of its session.
type uploadIDInfo struct {
	// signed: a 64-character id whose signature verifies for its
	// repository; false for a legacy id, known only while its object
	// exists.
	signed bool
	issued time.Time
	alg    digest.Algorithm
}

// newObjectID is a random name for a new object (a data segment, a tag
// journal record): 128 bits, so two writers never pick the same key.
func newObjectID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (k uploadIDs) mac(name string, signed []byte) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte("slipway upload id\x00"))
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write(signed)
	return m.Sum(nil)[:uploadIDBytes-uploadIDSigned]
}

// mint returns a new signed id for a session of name.
func (k uploadIDs) mint(name string, alg digest.Algorithm, now time.Time) string {
	var b [uploadIDBytes]byte
	_, _ = rand.Read(b[:uploadIDRandom])
	binary.BigEndian.PutUint32(b[uploadIDRandom:], uint32(now.Unix()))
	for i, a := range uploadAlgorithms {
		if a == alg {
			b[uploadIDRandom+4] = byte(i)
		}
	}
	copy(b[uploadIDSigned:], k.mac(name, b[:uploadIDSigned]))
	return hex.EncodeToString(b[:])
}

// parse tells whether id is well formed (ok), and for a signed id of name,
// when it was issued and with which algorithm.
func (k uploadIDs) parse(name, id string) (info uploadIDInfo, ok bool) {
	if strings.Trim(id, "0123456789abcdef") != "" {
		return uploadIDInfo{}, false
	}
	switch len(id) {
	case 32:
		return uploadIDInfo{}, true
	case 2 * uploadIDBytes:
	default:
		return uploadIDInfo{}, false
	}
	b, _ := hex.DecodeString(id)
	if !hmac.Equal(b[uploadIDSigned:], k.mac(name, b[:uploadIDSigned])) {
		return uploadIDInfo{}, true
	}
	i := int(b[uploadIDRandom+4])
	if i >= len(uploadAlgorithms) {
		return uploadIDInfo{}, true
	}
	issued := time.Unix(int64(binary.BigEndian.Uint32(b[uploadIDRandom:])), 0).UTC()
	return uploadIDInfo{signed: true, issued: issued, alg: uploadAlgorithms[i]}, true
}

// signedForm reports whether id has the length of a signed id: only such
// an id has an implicit first segment or an expiry of its own.
func signedForm(id string) bool { return len(id) == 2*uploadIDBytes }
