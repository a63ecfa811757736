package main

import (
	"hash"
	"io"
)

// freeList keeps body buffers for reuse, so that holding a body costs
// neither an allocation nor the page faults of touching fresh memory: the
// floor measures the work of a push, not of the Go allocator.
type freeList struct {
	free chan []byte
	size int
}

// newFreeList returns a list holding n buffers of size bytes, each written
// once so its pages are resident; it keeps at most n returned buffers.
func newFreeList(n, size int) *freeList {
	l := &freeList{free: make(chan []byte, n), size: size}
	for range n {
		b := make([]byte, size)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		l.free <- b[:0]
	}
	return l
}

// get returns an empty buffer, from the list if one is free.
func (l *freeList) get() []byte {
	select {
	case b := <-l.free:
		return b
	default:
		return make([]byte, 0, l.size)
	}
}

// put gives b back (emptied); beyond the list's capacity it is dropped.
func (l *freeList) put(b []byte) {
	select {
	case l.free <- b[:0]:
	default:
	}
}

// readPiece bounds each Read so that the bytes just read are still in the
// CPU cache when h hashes them.
const readPiece = 256 << 10

// readAll appends all of r to buf (growing it, doubling, when full) and
// writes every piece read to h as well, if h is not nil. It returns the
// bytes read, in buf's array or a grown one, also on error.
func readAll(r io.Reader, buf []byte, h hash.Hash) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), max(2*cap(buf), readPiece))
			copy(grown, buf)
			buf = grown
		}
		end := min(cap(buf), len(buf)+readPiece)
		n, err := r.Read(buf[len(buf):end])
		if n > 0 && h != nil {
			h.Write(buf[len(buf) : len(buf)+n])
		}
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
