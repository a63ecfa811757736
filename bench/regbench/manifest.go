package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

const (
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
	ociConfig   = "application/vnd.oci.image.config.v1+json"
	ociLayer    = "application/vnd.oci.image.layer.v1.tar"
)

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type imageManifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

// pushImage pushes layers (as uncompressed tar layers, so diff_id = digest),
// a matching config and an OCI image manifest under tag; it returns the
// manifest digest and bytes. Layers go up workers at a time.
func pushImage(ctx context.Context, c *client, cfg *config, repo, tag string, layers []blob, workers int) (string, []byte, error) {
	return pushImageOpt(ctx, c, cfg, repo, tag, layers, workers, false)
}

// pushImageWithLayers pushes an image whose layer is already in repo, as
// docker does: HEAD the layer (present: not uploaded), push the config,
// put the manifest.
func pushImageWithLayers(ctx context.Context, c *client, cfg *config, repo, tag string, layer blob) (string, []byte, error) {
	return pushImageOpt(ctx, c, cfg, repo, tag, []blob{layer}, 1, true)
}

func pushImageOpt(ctx context.Context, c *client, cfg *config, repo, tag string, layers []blob, workers int, headFirst bool) (string, []byte, error) {
	diffIDs := make([]string, len(layers))
	descs := make([]descriptor, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.digest
		descs[i] = descriptor{MediaType: ociLayer, Digest: l.digest, Size: int64(len(l.data))}
	}
	configJSON, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      time.Now().UTC().Format(time.RFC3339Nano),
		"config":       map[string]any{"Cmd": []string{"/bin/true"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return "", nil, err
	}
	configBlob := newBlob(configJSON)
	all := append([]blob{configBlob}, layers...)
	if err := parallel(ctx, len(all), workers, func(ctx context.Context, _, i int) error {
		if headFirst {
			if ok, err := c.headBlob(ctx, repo, all[i].digest); err != nil || ok {
				return err
			}
		}
		return c.pushBlob(ctx, repo, all[i], cfg.chunked)
	}); err != nil {
		return "", nil, err
	}
	m, err := json.Marshal(imageManifest{
		SchemaVersion: 2,
		MediaType:     ociManifest,
		Config:        descriptor{MediaType: ociConfig, Digest: configBlob.digest, Size: int64(len(configJSON))},
		Layers:        descs,
	})
	if err != nil {
		return "", nil, err
	}
	digest, err := c.putManifest(ctx, repo, tag, ociManifest, m)
	return digest, m, err
}

// manifestState is the small image manifest-head/-get hammer.
type manifestState struct {
	Repo      string `json:"repo"`
	Tag       string `json:"tag"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type"`
}

// manifestScenario: cfg.clients clients send HEAD (or GET) by tag in a loop
// for cfg.duration; req/s and latency percentiles.
type manifestScenario struct {
	get bool
}

func (s *manifestScenario) setup(ctx context.Context, c *client, cfg *config) error {
	repo, tag := cfg.repoPrefix+"/manifest", "latest"
	layer := genBlobs(1, 4<<10)
	digest, m, err := pushImage(ctx, c, cfg, repo, tag, layer, 2)
	if err != nil {
		return err
	}
	return saveState(cfg, manifestState{Repo: repo, Tag: tag, Digest: digest, Size: int64(len(m)), MediaType: ociManifest})
}

func (s *manifestScenario) run(ctx context.Context, c *client, cfg *config) (*Result, error) {
	var st manifestState
	if err := setupState(cfg, &st); err != nil {
		return nil, err
	}
	method := http.MethodHead
	if s.get {
		method = http.MethodGet
	}
	u := c.url("/v2/" + st.Repo + "/manifests/" + st.Tag)
	one := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", manifestAccept)
		resp, err := c.do(req, http.StatusOK)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := checkManifestResponse(resp, st.Digest, st.Size, st.MediaType); err != nil {
			return fmt.Errorf("%s %s: %w", method, u, err)
		}
		if !s.get {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return fmt.Errorf("GET %s: %w", u, err)
		}
		sum := sha256.Sum256(b)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != st.Digest {
			return fmt.Errorf("GET %s: body digest %s, want %s (%d bytes)", u, got, st.Digest, len(b))
		}
		return nil
	}

	// Warm up one connection per client (untimed; the token too), then
	// start together.
	if err := c.authorize(ctx, st.Repo); err != nil {
		return nil, err
	}
	clients := cfg.clients
	if err := parallel(ctx, clients, clients, func(ctx context.Context, _, _ int) error { return one(ctx) }); err != nil {
		return nil, err
	}

	all, elapsed, err := hammer(ctx, clients, cfg.duration, func(ctx context.Context, _ int) error { return one(ctx) })
	if err != nil {
		return nil, err
	}
	return &Result{
		Metric:         "req/s",
		Value:          float64(len(all)) / elapsed.Seconds(),
		HigherIsBetter: true,
		Seconds:        elapsed.Seconds(),
		Ops:            int64(len(all)),
		Workers:        clients,
		P50ms:          percentile(all, 0.50),
		P99ms:          percentile(all, 0.99),
		Extra:          map[string]any{"method": method, "manifest_bytes": st.Size},
	}, nil
}

// hammer runs op on workers goroutines, started together, each in a loop
// until d has passed; it returns every op's latency (sorted) and the wall
// time. The first error stops every worker and is returned.
func hammer(ctx context.Context, workers int, d time.Duration, op func(ctx context.Context, worker int) error) ([]time.Duration, time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		lat      = make([][]time.Duration, workers)
	)
	startGate := make(chan struct{})
	for w := 0; w < workers; w++ {
		lat[w] = make([]time.Duration, 0, 1<<16)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGate
			deadline := time.Now().Add(d)
			for ctx.Err() == nil {
				t := time.Now()
				if !t.Before(deadline) {
					return
				}
				if err := op(ctx, w); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
				lat[w] = append(lat[w], time.Since(t))
			}
		}()
	}
	start := time.Now()
	close(startGate)
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return nil, elapsed, firstErr
	}
	if ctx.Err() != nil {
		return nil, elapsed, ctx.Err()
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sortDurations(all)
	return all, elapsed, nil
}

// randomLayerSizes returns n sizes uniformly in [lo, hi] bytes.
func randomLayerSizes(n, lo, hi int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = lo + rand.IntN(hi-lo+1)
	}
	return out
}
