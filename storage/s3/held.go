package s3

import (
	"errors"
	"io"
)

// Bodies that S3 cannot take as a stream (unknown size, or a part of a
// larger one) are held in memory as chunks of chunkSize from the Store's
// bufpool: at most keptChunks of them stay allocated between writes, and
// a reused chunk costs no zeroing and no page faults, which a fresh
// part-sized buffer per body did (most of such a write's CPU besides
// reading and hashing it). A body never takes more chunks than its bytes
// need, so small bodies hold little memory whatever the part size.
const (
	chunkSize  = 1 << 20
	keptChunks = 64
)

// held is up to one part of a body, in chunks: every chunk is full but
// the last. It is an io.ReaderAt, so a request can be resent from it.
type held struct {
	s    *Store
	bufs [][]byte
	n    int64
}

// errEnded: hold met the end of the body before max bytes.
var errEnded = errors.New("body ended")

// hold reads up to max bytes of r into chunks. It returns errEnded (with
// what was read) when r ends first, and any other read error with nothing
// held.
func (s *Store) hold(r io.Reader, max int64) (*held, error) {
	h := &held{s: s}
	for h.n < max {
		b := s.chunks.Get()
		k, err := io.ReadFull(r, b[:min(int64(len(b)), max-h.n)])
		if k > 0 {
			h.bufs = append(h.bufs, b)
			h.n += int64(k)
		} else {
			s.chunks.Put(b)
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return h, errEnded
		case err != nil:
			h.release()
			return nil, err
		}
	}
	return h, nil
}

// body is the held bytes as a request body that can be resent.
func (h *held) body() *body { return &body{size: h.n, at: h} }

func (h *held) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) && off < h.n {
		i := off / chunkSize
		end := min(chunkSize, h.n-i*chunkSize)
		k := copy(p[n:], h.bufs[i][off-i*chunkSize:end])
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// release gives the chunks back; h must not be read afterwards. Call it
// only when no request is reading h any more: after a request that read it
// succeeded (S3 answers a PUT only once it has the whole body), or when no
// request was sent. After a failed request it is left to the GC instead:
// net/http may go on reading a request body after RoundTrip returned early
// (golang/go#51907), and a reused chunk would then be read and written at
// once.
func (h *held) release() {
	if h == nil {
		return
	}
	for _, b := range h.bufs {
		h.s.chunks.Put(b)
	}
	h.bufs, h.n = nil, 0
}
