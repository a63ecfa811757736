package bufpool

import "testing"

func TestReuseUpToKeep(t *testing.T) {
	p := New(1024, 2)
	a, b, c := p.Get(), p.Get(), p.Get()
	if len(a) != 1024 || len(b) != 1024 || len(c) != 1024 || p.Size() != 1024 {
		t.Fatalf("buffers of %d, %d, %d bytes, want 1024", len(a), len(b), len(c))
	}
	a[0], b[0] = 'a', 'b'
	p.Put(a[:10]) // a shortened slice comes back whole
	p.Put(b)
	p.Put(c)                // beyond keep: dropped
	p.Put(make([]byte, 10)) // too small: dropped
	got := map[byte]bool{}
	for range 2 {
		x := p.Get()
		if len(x) != 1024 {
			t.Fatalf("reused buffer of %d bytes", len(x))
		}
		got[x[0]] = true
	}
	if !got['a'] || !got['b'] {
		t.Fatalf("kept buffers not reused: %v", got)
	}
	if x := p.Get(); x[0] != 0 {
		t.Fatal("a pool holding nothing returned a used buffer")
	}
}
