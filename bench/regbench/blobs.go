package main

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// genBlobs makes count distinct random blobs of size bytes and their
// digests, using every CPU. It runs before any timing starts.
func genBlobs(count, size int) []blob {
	out := make([]blob, count)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var seed [32]byte
			_, _ = crand.Read(seed[:])
			rng := rand.NewChaCha8(seed)
			for {
				i := int(next.Add(1) - 1)
				if i >= count {
					return
				}
				data := make([]byte, size)
				_, _ = rng.Read(data)
				out[i] = newBlob(data)
			}
		}()
	}
	wg.Wait()
	return out
}

// parallel runs fn(i) for i in [0, n) on workers goroutines and returns the
// first error; after an error the remaining items are skipped.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, worker, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, w, i); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// pushScenario: workers push count distinct random blobs of size bytes,
// docker-style. MiB/s = total bytes / wall time of all uploads.
type pushScenario struct {
	size, count, workers int
}

func (s *pushScenario) setup(ctx context.Context, c *client, cfg *config) error { return nil }

func (s *pushScenario) run(ctx context.Context, c *client, cfg *config) (*Result, error) {
	repo := cfg.repoPrefix + "/" + cfg.scenario
	blobs := genBlobs(s.count, s.size)
	if err := c.authorize(ctx, repo); err != nil {
		return nil, err
	}
	lat := make([][]time.Duration, s.workers)
	start := time.Now()
	err := parallel(ctx, len(blobs), s.workers, func(ctx context.Context, w, i int) error {
		t := time.Now()
		if err := c.pushBlob(ctx, repo, blobs[i], cfg.chunked); err != nil {
			return err
		}
		lat[w] = append(lat[w], time.Since(t))
		return nil
	})
	elapsed := time.Since(start)
	if err != nil {
		return nil, err
	}
	// Untimed spot check that what we pushed is there.
	for _, i := range []int{0, len(blobs) - 1} {
		ok, err := c.headBlob(ctx, repo, blobs[i].digest)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("HEAD %s after push: 404", blobs[i].digest)
		}
	}
	return blobResult(s.size, s.count, s.workers, elapsed, lat, map[string]any{"chunked": cfg.chunked, "repo": repo}), nil
}

func blobResult(size, count, workers int, elapsed time.Duration, lat [][]time.Duration, extra map[string]any) *Result {
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sortDurations(all)
	total := int64(size) * int64(count)
	return &Result{
		Metric:         "MiB/s",
		Value:          float64(total) / (1 << 20) / elapsed.Seconds(),
		HigherIsBetter: true,
		Seconds:        elapsed.Seconds(),
		Bytes:          total,
		Ops:            int64(count),
		Workers:        workers,
		P50ms:          percentile(all, 0.50),
		P99ms:          percentile(all, 0.99),
		Extra:          extra,
	}
}

// pullState is what a pull scenario's setup pushed.
type pullState struct {
	Repo    string   `json:"repo"`
	Size    int64    `json:"size"`
	Digests []string `json:"digests"`
}

// pullScenario: workers GET count blobs of size bytes pushed by setup.
type pullScenario struct {
	size, count, workers int
}

func (s *pullScenario) setup(ctx context.Context, c *client, cfg *config) error {
	var st pullState
	ok, err := loadState(cfg, &st)
	if err != nil {
		return err
	}
	if ok && st.Size == int64(s.size) && len(st.Digests) == s.count {
		// Reuse the blobs of an earlier setup if they are still there.
		first, err := c.headBlob(ctx, st.Repo, st.Digests[0])
		if err != nil {
			return err
		}
		last, err := c.headBlob(ctx, st.Repo, st.Digests[len(st.Digests)-1])
		if err != nil {
			return err
		}
		if first && last {
			return nil
		}
	}
	repo := cfg.repoPrefix + "/" + cfg.scenario
	blobs := genBlobs(s.count, s.size)
	err = parallel(ctx, len(blobs), s.workers, func(ctx context.Context, w, i int) error {
		return c.pushBlob(ctx, repo, blobs[i], cfg.chunked)
	})
	if err != nil {
		return err
	}
	st = pullState{Repo: repo, Size: int64(s.size)}
	for _, b := range blobs {
		st.Digests = append(st.Digests, b.digest)
	}
	return saveState(cfg, st)
}

func (s *pullScenario) run(ctx context.Context, c *client, cfg *config) (*Result, error) {
	var st pullState
	err := setupState(cfg, &st)
	if err != nil {
		return nil, err
	}
	bufs := make([][]byte, s.workers)
	for i := range bufs {
		bufs[i] = make([]byte, 256<<10)
	}
	if err := c.authorize(ctx, st.Repo); err != nil {
		return nil, err
	}
	lat := make([][]time.Duration, s.workers)
	start := time.Now()
	err = parallel(ctx, len(st.Digests), s.workers, func(ctx context.Context, w, i int) error {
		t := time.Now()
		if err := c.pullBlob(ctx, st.Repo, st.Digests[i], st.Size, cfg.verifyPull, bufs[w]); err != nil {
			return err
		}
		lat[w] = append(lat[w], time.Since(t))
		return nil
	})
	elapsed := time.Since(start)
	if err != nil {
		return nil, err
	}
	return blobResult(int(st.Size), len(st.Digests), s.workers, elapsed, lat, map[string]any{"verify": cfg.verifyPull, "repo": st.Repo}), nil
}
