package registry

import "github.com/slipway/slipway/internal/bufpool"

// Blob bodies go out through copyBufferSize buffers, one per GET; at most
// copyBufferCount of them are kept between requests. Bodies coming in are
// handed to the store as they arrive (writeSegment): whatever buffering a
// write needs (storage/s3's held parts, from a bufpool like this one) is
// the store's.
const (
	copyBufferSize  = 1 << 20
	copyBufferCount = 32
)

func newCopyBuffers() *bufpool.Pool { return bufpool.New(copyBufferSize, copyBufferCount) }

func (r *Registry) getBuffer() []byte { return r.copyBuffers.Get() }

func (r *Registry) putBuffer(b []byte) { r.copyBuffers.Put(b) }
