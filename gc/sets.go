package gc

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"

	"github.com/opencontainers/go-digest"
)

// A hash is the compact form of a digest or key in the run-wide sets: 32
// bytes instead of a string of ~80 (a sha256 digest is its own bytes;
// anything else is hashed with sha256).
type hash [32]byte

func digestHash(d digest.Digest) hash {
	var h hash
	if d.Algorithm() == digest.SHA256 {
		if n, err := hex.Decode(h[:], []byte(d.Encoded())); err == nil && n == 32 {
			return h
		}
	}
	return sha256.Sum256([]byte(d))
}

func keyHash(key string) hash { return sha256.Sum256([]byte(key)) }

// hashSet is a set of hashes as one sorted slice: 32 bytes an entry, the
// smallest a set of a million digests can be held in (a map costs twice
// that and more).
type hashSet struct {
	items  []hash
	sorted bool
}

func (s *hashSet) add(h hash) { s.items, s.sorted = append(s.items, h), false }

// seal sorts the set and drops duplicates; has needs it sealed.
func (s *hashSet) seal() {
	if s.sorted {
		return
	}
	slices.SortFunc(s.items, func(a, b hash) int { return bytes.Compare(a[:], b[:]) })
	s.items = slices.Compact(s.items)
	s.items = slices.Clip(s.items)
	s.sorted = true
}

func (s *hashSet) has(h hash) bool {
	_, found := s.index(h)
	return found
}

// index is h's position in the sealed set, if it holds h.
func (s *hashSet) index(h hash) (int, bool) {
	s.seal()
	return slices.BinarySearchFunc(s.items, h, func(a, b hash) int { return bytes.Compare(a[:], b[:]) })
}
