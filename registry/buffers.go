package registry

// Blob bodies go out through copyBufferSize buffers, one per GET; at most
// copyBufferCount of them are kept between requests. Bodies coming in are
// handed to the store as they arrive (writeSegment): whatever buffering a
// write needs (storage/s3's part buffers) is the store's.
const (
	copyBufferSize  = 1 << 20
	copyBufferCount = 32
)

func (r *Registry) getBuffer() []byte {
	select {
	case b := <-r.copyBuffers:
		return b
	default:
		return make([]byte, copyBufferSize)
	}
}

func (r *Registry) putBuffer(b []byte) {
	select {
	case r.copyBuffers <- b:
	default: // enough kept; let the GC have it
	}
}
