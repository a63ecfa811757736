package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// copyImage is one source image copy-10's setup pushed.
type copyImage struct {
	Repo   string   `json:"repo"`
	Tag    string   `json:"tag"`
	Digest string   `json:"digest"`
	Blobs  []string `json:"blobs"` // config and layers
	Bytes  int64    `json:"bytes"`
}

// copyScenario: push `copies` images of `layers` random 1-4 MiB layers,
// each to its own fresh repository (untimed); then, one after the other,
// time crane.Copy of each to another fresh repository of the same registry.
// The result is the median copy time of the run (each copy touches only
// its own blobs, so every one starts from the cold cache the driver left).
// go-containerregistry mounts each blob across repositories (POST
// ?mount=&from=) and falls back to uploading it if the registry answers
// 202 instead of 201; the result counts both.
type copyScenario struct {
	layers, copies int
}

func (s *copyScenario) setup(ctx context.Context, c *client, cfg *config) error {
	var imgs []copyImage
	for range s.copies {
		repo, tag := cfg.repoPrefix+"/copy-src-"+randSuffix(), "v1"
		sizes := randomLayerSizes(s.layers, 1<<20, 4<<20)
		layers := make([]blob, 0, s.layers)
		var total int64
		for _, sz := range sizes {
			layers = append(layers, genBlobs(1, sz)...)
			total += int64(sz)
		}
		digest, _, err := pushImage(ctx, c, cfg, repo, tag, layers, 4)
		if err != nil {
			return err
		}
		img := copyImage{Repo: repo, Tag: tag, Digest: digest, Bytes: total}
		for _, l := range layers {
			img.Blobs = append(img.Blobs, l.digest)
		}
		imgs = append(imgs, img)
	}
	return saveState(cfg, imgs)
}

func (s *copyScenario) run(ctx context.Context, c *client, cfg *config) (*Result, error) {
	var imgs []copyImage
	err := setupState(cfg, &imgs)
	if err == nil && len(imgs) == 0 {
		err = fmt.Errorf("no images in %s: run -phase setup first", stateFile(cfg))
	}
	if err != nil {
		return nil, err
	}

	// crane's own default transport, wrapped to count what it sends.
	// With token auth, each copy's token (pull on the source, pull+push on
	// the destination) is fetched before its timer starts and added to
	// every request, so crane's ping sees 200 and does no token dance.
	bt := &bearerTransport{next: remote.DefaultTransport.(*http.Transport).Clone()}
	ct := &countingTransport{next: bt, counts: map[string]int{}}
	opts := []crane.Option{
		crane.WithContext(ctx),
		crane.WithAuth(authn.Anonymous),
		crane.WithTransport(ct),
	}
	if c.base.Scheme == "http" {
		opts = append(opts, crane.Insecure)
	}

	var (
		times []time.Duration
		total time.Duration
		bytes int64
	)
	for _, img := range imgs {
		dstRepo := cfg.repoPrefix + "/copy-dst-" + randSuffix()
		src := c.base.Host + "/" + img.Repo + ":" + img.Tag
		dst := c.base.Host + "/" + dstRepo + ":" + img.Tag
		if c.auth != nil {
			scope := "repository:" + img.Repo + ":pull " + repoScope(dstRepo)
			if bt.token, err = c.auth.token(ctx, c.hc, scope); err != nil {
				return nil, err
			}
		}
		start := time.Now()
		err = crane.Copy(src, dst, opts...)
		elapsed := time.Since(start)
		if err != nil {
			return nil, fmt.Errorf("crane.Copy %s %s: %w", src, dst, err)
		}
		times = append(times, elapsed)
		total += elapsed
		bytes += img.Bytes
		if err := checkCopy(ctx, c, img, dstRepo); err != nil {
			return nil, err
		}
	}
	ms := make([]float64, len(times))
	for i, t := range times {
		ms[i] = float64(t.Microseconds()) / 1000
	}
	counts := ct.snapshot()
	extra := map[string]any{
		"layers":      s.layers,
		"copies":      len(imgs),
		"copy_ms":     ms,
		"bytes_each":  imgs[0].Bytes,
		"requests":    counts,
		"mounted":     counts["POST mount 201"],
		"uploaded":    counts["PUT upload 201"],
		"blobs_total": len(imgs) * (s.layers + 1),
	}
	sorted := append([]time.Duration(nil), times...)
	sortDurations(sorted)
	return &Result{
		Metric:         "ms",
		Value:          median(ms),
		HigherIsBetter: false,
		Seconds:        total.Seconds(),
		Bytes:          bytes,
		Ops:            int64(len(imgs)),
		P50ms:          percentile(sorted, 0.5),
		P99ms:          percentile(sorted, 0.99),
		Extra:          extra,
	}, nil
}

// checkCopy verifies (untimed) that the copy is complete and identical.
func checkCopy(ctx context.Context, c *client, img copyImage, dstRepo string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.url("/v2/"+dstRepo+"/manifests/"+img.Tag), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return err
	}
	drain(resp)
	if got := resp.Header.Get("Docker-Content-Digest"); got != img.Digest {
		return fmt.Errorf("copied manifest digest %q, want %s", got, img.Digest)
	}
	for _, d := range img.Blobs {
		ok, err := c.headBlob(ctx, dstRepo, d)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("blob %s missing in %s after copy", d, dstRepo)
		}
	}
	return nil
}

// countingTransport counts requests by method, kind and status.
type countingTransport struct {
	next   http.RoundTripper
	mu     sync.Mutex
	counts map[string]int
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	kind := "other"
	p := req.URL.Path
	switch {
	case p == "/v2/" || p == "/v2":
		kind = "ping"
	case strings.Contains(p, "/blobs/uploads/") && req.Method == http.MethodPost && req.URL.Query().Get("mount") != "":
		kind = "mount"
	case strings.Contains(p, "/blobs/uploads/"):
		kind = "upload"
	case strings.Contains(p, "/blobs/"):
		kind = "blob"
	case strings.Contains(p, "/manifests/"):
		kind = "manifest"
	}
	resp, err := t.next.RoundTrip(req)
	key := req.Method + " " + kind + " "
	if err != nil {
		key += "error"
	} else {
		key += fmt.Sprint(resp.StatusCode)
	}
	t.mu.Lock()
	t.counts[key]++
	t.mu.Unlock()
	return resp, err
}

func (t *countingTransport) snapshot() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.counts))
	keys := make([]string, 0, len(t.counts))
	for k := range t.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out[k] = t.counts[k]
	}
	return out
}
