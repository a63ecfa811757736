package registry

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/binary"
	"hash"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

// Hash hints. A session that is only its implicit first segment (docker's
// one PATCH) lives in the memory of the replica that took the chunk.
// Another replica finds it by the segment's key but not its hash state,
// and would read the whole chunk back to rebuild it: a layer of gigabytes,
// read and hashed again by the PUT that commits it, whenever a load
// balancer sends the PATCH and the PUT to different replicas. So the
// PATCH's Location carries that state, sealed with a key derived from the
// upload ids' key (`?_state=<hint>`, the way distribution's Location
// carries its `_state`; clients send the Location back as they got it):
//
//	base64url( nonce[12] | AES-256-GCM( size[8] | hash state ) ), additional data: repo, id, the segment's ETag
//
// Sealed, not only signed: a hash state holds the last bytes hashed (up to
// a block) in clear, and URLs end up in access logs. A replica uses a hint
// only when it opens for this repository and id and for the segment's
// size and ETag as the store reports them now (a segment written again, or
// a hint of another session, does not open); anything else falls back to
// reading the bytes. So a forged or stale hint cannot make a replica
// commit bytes under a digest they do not have.
const hashHintParam = "_state"

// hashHints seals and opens the hints of one upload id key.
type hashHints struct{ aead cipher.AEAD }

// newHashHints derives the hints' AES-256-GCM key from the upload ids'
// key, once per registry (an AEAD is safe for concurrent use).
func newHashHints(key []byte) hashHints {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("slipway upload hash state key"))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		panic(err) // a 32-byte key is always a valid AES key
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err) // AES has GCM's 16-byte block
	}
	return hashHints{aead: aead}
}

// hintData is what a hint is bound to besides its content.
func hintData(name, id, etag string) []byte {
	return []byte(name + "\x00" + id + "\x00" + etag)
}

// seal is the hint for a session of name whose only bytes are seg,
// hashed into h; "" when it cannot be made.
func (k hashHints) seal(name, id string, seg segment, h hash.Hash) string {
	if seg.etag == "" {
		return ""
	}
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return ""
	}
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+8+len(state)+k.aead.Overhead())
	_, _ = rand.Read(nonce)
	plain := binary.BigEndian.AppendUint64(nil, uint64(seg.Size))
	plain = append(plain, state...)
	return base64.RawURLEncoding.EncodeToString(k.aead.Seal(nonce, nonce, plain, hintData(name, id, seg.etag)))
}

// open returns the hash of alg whose state hint gives for the object at
// (info) of session id of name; false when the hint does not open for
// exactly that object.
func (k hashHints) open(name, id, hint string, alg digest.Algorithm, info storage.Info) (hash.Hash, bool) {
	if hint == "" || info.ETag == "" {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(hint)
	if err != nil || len(b) < k.aead.NonceSize() {
		return nil, false
	}
	n := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, b[:n], b[n:], hintData(name, id, info.ETag))
	if err != nil || len(plain) < 8 || int64(binary.BigEndian.Uint64(plain)) != info.Size {
		return nil, false
	}
	h := alg.Hash()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(plain[8:]); err != nil {
		return nil, false
	}
	return h, true
}
