package main

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// readAll must return every byte, in order, growing a buffer too small,
// and hash exactly those bytes, whatever the sizes of the reads.
func TestReadAllGrowsAndHashes(t *testing.T) {
	data := make([]byte, 3*readPiece+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, tc := range []struct {
		name string
		cap  int
	}{{"small buffer", 1000}, {"exact", len(data)}, {"large", 2 * len(data)}} {
		for _, half := range []bool{false, true} {
			var r = bytes.NewReader(data)
			rd := iotestReader(r, half)
			h := sha256.New()
			got, err := readAll(rd, make([]byte, 0, tc.cap), h)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%s (half reads %v): got %d bytes, not the %d written", tc.name, half, len(got), len(data))
			}
			if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatalf("%s (half reads %v): hash differs", tc.name, half)
			}
		}
	}
}

func iotestReader(r *bytes.Reader, half bool) interface{ Read([]byte) (int, error) } {
	if half {
		return iotest.HalfReader(r)
	}
	return r
}
