package s3

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/slipway/slipway/internal/bufpool"
)

// hold keeps up to max bytes across chunks, reads them back at any offset,
// tells a body that ended first, and gives its chunks back for reuse.
func TestHold(t *testing.T) {
	s := &Store{chunks: bufpool.New(chunkSize, keptChunks)}
	data := make([]byte, 3*chunkSize+777)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, tc := range []struct {
		name    string
		size    int // of the body
		max     int64
		wantN   int
		wantErr error
	}{
		{"ends before max", 3*chunkSize + 777, 4 * chunkSize, 3*chunkSize + 777, errEnded},
		{"ends at a chunk edge", 2 * chunkSize, 4 * chunkSize, 2 * chunkSize, errEnded},
		{"max not a multiple of chunks", 3*chunkSize + 777, 2*chunkSize + 5, 2*chunkSize + 5, nil},
		{"exactly max", 2 * chunkSize, 2 * chunkSize, 2 * chunkSize, nil},
		{"empty", 0, chunkSize, 0, errEnded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := iotest.HalfReader(bytes.NewReader(data[:tc.size]))
			h, err := s.hold(r, tc.max)
			if !errors.Is(err, tc.wantErr) && err != tc.wantErr {
				t.Fatalf("hold = %v, want %v", err, tc.wantErr)
			}
			if h.n != int64(tc.wantN) {
				t.Fatalf("held %d bytes, want %d", h.n, tc.wantN)
			}
			got, err := io.ReadAll(io.NewSectionReader(h, 0, h.n))
			if err != nil || !bytes.Equal(got, data[:tc.wantN]) {
				t.Fatalf("read back %d bytes (%v), want the %d held", len(got), err, tc.wantN)
			}
			for _, off := range []int64{0, chunkSize - 3, chunkSize, h.n - 1} {
				if off < 0 || off >= h.n {
					continue
				}
				p := make([]byte, 10)
				n, err := h.ReadAt(p, off)
				want := data[off:min(off+10, h.n)]
				if !bytes.Equal(p[:n], want) || (n < len(p) && err != io.EOF) {
					t.Fatalf("ReadAt(10, %d) = %d, %v", off, n, err)
				}
			}
			h.release()
		})
	}
	failing := io.MultiReader(bytes.NewReader(data[:chunkSize+1]), iotest.ErrReader(io.ErrClosedPipe))
	if h, err := s.hold(failing, 4*chunkSize); h != nil || !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("hold of a failing body = %v, %v", h, err)
	}
}
