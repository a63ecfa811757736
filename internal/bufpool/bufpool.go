// Package bufpool is a bounded free list of byte buffers of one size, for
// the bodies Slipway moves: a reused buffer costs no allocation, zeroing or
// page faults, and at most a fixed number of them stay allocated between
// uses. Unlike a sync.Pool, the GC does not empty it, so a steady stream of
// requests keeps reusing the same memory.
package bufpool

// Pool hands out buffers of Size bytes and keeps up to its capacity of
// returned ones. It is safe for concurrent use; the zero value is not
// usable (see New).
type Pool struct {
	size int
	free chan []byte
}

// New returns a pool of size-byte buffers that keeps at most keep of them.
func New(size, keep int) *Pool {
	return &Pool{size: size, free: make(chan []byte, keep)}
}

// Size is the length of every buffer Get returns.
func (p *Pool) Size() int { return p.size }

// Get returns a kept buffer, or a new one. Its content is undefined.
func (p *Pool) Get() []byte {
	select {
	case b := <-p.free:
		return b
	default:
		return make([]byte, p.size)
	}
}

// Put gives b back for reuse. b must have come from Get, and must not be
// used afterwards.
func (p *Pool) Put(b []byte) {
	if cap(b) < p.size {
		return
	}
	select {
	case p.free <- b[:p.size]:
	default: // enough kept; let the GC have it
	}
}
