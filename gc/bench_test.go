package gc

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway/slipway/registry"
)

// peakHeap samples the heap in use while f runs and returns the peak
// above what was in use before.
func peakHeap(f func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
				peak.Store(ms.HeapAlloc - base)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	f()
	close(stop)
	wg.Wait()
	return peak.Load()
}

// synthRun collects a synthetic store of repos repositories. It returns
// the peak heap sampled during the run (garbage not yet collected
// included: what the process holds) and the largest live heap after a
// stage (what the collector keeps), above what was in use before.
func synthRun(tb testing.TB, repos int) (rep Report, peak, live uint64, objects int) {
	store := newSynthStore(repos)
	reg := registry.New(store, registry.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var base uint64
	c := New(store, reg.Metadata(), nil, Options{Fence: -1, LinkTTL: -1, Progress: func(Report) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > base && ms.HeapAlloc-base > live {
			live = ms.HeapAlloc - base
		}
	}})
	var err error
	peak = peakHeap(func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base = ms.HeapAlloc
		rep, err = c.Run(context.Background())
	})
	if err != nil {
		tb.Fatal(err)
	}
	return rep, peak, live, store.objects()
}

// The synthetic store is collected as a real one would be: the untagged
// manifests of every repository go with their links, descriptors and
// data; the tagged ones stay.
func TestSynthStore(t *testing.T) {
	const repos = 50
	rep, _, _, objects := synthRun(t, repos)
	// per repository: 2 of 4 manifests (link + record), their 8 blob
	// links, descriptors and data.
	// Each object is examined once, in its stage's listing; the data
	// stage 2 deleted with its descriptors is not listed by stage 3.
	want := int64(repos * (2*2 + 8*3))
	examined := int64(objects - repos*8)
	if rep.Freed.Objects != want || rep.Examined.Objects != examined || rep.Freed.Bytes < repos*8*layerSize {
		t.Errorf("freed %d objects (%d bytes) of %d examined, want %d of %d", rep.Freed.Objects, rep.Freed.Bytes, rep.Examined.Objects, want, examined)
	}
}

// BenchmarkCollect1M collects a synthetic store of about a million
// objects (17,000 repositories) and reports the collector's heap (the
// issue's bound: 100 MB): peak sampled, and live after each stage. Run
// with -bench Collect1M -benchtime 1x.
func BenchmarkCollect1M(b *testing.B) {
	for i := 0; i < b.N; i++ {
		rep, peak, live, objects := synthRun(b, 17000)
		b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
		b.ReportMetric(float64(live)/1e6, "live-heap-MB")
		b.ReportMetric(float64(objects), "objects")
		b.ReportMetric(float64(rep.Freed.Objects), "freed")
	}
}
