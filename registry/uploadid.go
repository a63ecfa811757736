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

// uploadIDKey is used when Options.UploadKey is empty (tests, embedded
// use). A server always sets a key shared by its replicas.
var defaultUploadKey = []byte("slipway upload id (no key configured)")

func (r *Registry) uploadIDMAC(name string, signed []byte) []byte {
	m := hmac.New(sha256.New, r.opts.UploadKey)
	m.Write([]byte("slipway upload id\x00"))
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write(signed)
	return m.Sum(nil)[:uploadIDBytes-uploadIDSigned]
}

// mintUploadID returns a new signed id for a session of name.
func (r *Registry) mintUploadID(name string, alg digest.Algorithm, now time.Time) string {
	var b [uploadIDBytes]byte
	_, _ = rand.Read(b[:uploadIDRandom])
	binary.BigEndian.PutUint32(b[uploadIDRandom:], uint32(now.Unix()))
	for i, a := range uploadAlgorithms {
		if a == alg {
			b[uploadIDRandom+4] = byte(i)
		}
	}
	copy(b[uploadIDSigned:], r.uploadIDMAC(name, b[:uploadIDSigned]))
	return hex.EncodeToString(b[:])
}

// uploadIDInfo tells whether id is well formed, and for a signed id of
// name, when it was issued and with which algorithm (signed false: a
// legacy id, or a signature that does not verify).
func (r *Registry) uploadIDInfo(name, id string) (wellFormed, signed bool, issued time.Time, alg digest.Algorithm) {
	if strings.Trim(id, "0123456789abcdef") != "" {
		return false, false, time.Time{}, ""
	}
	switch len(id) {
	case 32:
		return true, false, time.Time{}, ""
	case 2 * uploadIDBytes:
	default:
		return false, false, time.Time{}, ""
	}
	b, _ := hex.DecodeString(id)
	if !hmac.Equal(b[uploadIDSigned:], r.uploadIDMAC(name, b[:uploadIDSigned])) {
		return true, false, time.Time{}, ""
	}
	i := int(b[uploadIDRandom+4])
	if i >= len(uploadAlgorithms) {
		return true, false, time.Time{}, ""
	}
	issued = time.Unix(int64(binary.BigEndian.Uint32(b[uploadIDRandom:])), 0).UTC()
	return true, true, issued, uploadAlgorithms[i]
}
