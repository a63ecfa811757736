package main

// Scenarios of bench/run-gc.sh, continued (see gc.go):
//
//	gc-bucket  lists -s3-bucket with minio-go (no registry involved) and
//	           reports its objects and bytes by class, for either layout:
//	             blob_data   layer and config bytes: Slipway data/…, the
//	                         stock registry's blobs/sha256/<hh>/<hex>/data
//	                         whose digest is not a manifest of gc-populate
//	             manifest    manifest bytes: Slipway manifests/… (media
//	                         type line + the manifest), stock blob data
//	                         whose digest is a manifest of gc-populate
//	             descriptor  Slipway blobs/… (blob descriptors)
//	             repository  links, tags, tag journal/index, stock's
//	                         repositories/… (links, tags, upload dirs)
//	             gc          Slipway gc/… (tombstones, sweeps, reports)
//	             other       everything else (catalog/, probes, …)
//	           Without gc-populate state in -state, stock blob data all
//	           counts as blob_data.
//	gc-push    -workers (8) clients push small images for -duration, each
//	           to a fresh repository <prefix>/gcpush-<run>-<worker>-<n>:
//	           one 4 KiB random layer, its config, the manifest by tag
//	           (docker-style, token per repository as docker fetches it);
//	           images/s and the latency of one image push.

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

const stockRoot = "docker/registry/v2/"

type gcBucket struct{}

func (gcBucket) setup(context.Context, *client, *config) error { return nil }

// gcClass is the class of key (see the file comment); manifests are the
// digests of gc-populate's manifests.
func gcClass(key string, manifests map[string]bool) string {
	if rest, ok := strings.CutPrefix(key, stockRoot); ok {
		switch {
		case strings.HasPrefix(rest, "blobs/") && strings.HasSuffix(rest, "/data"):
			parts := strings.Split(rest, "/") // blobs sha256 hh hex data
			if len(parts) == 5 && manifests[parts[1]+":"+parts[3]] {
				return "manifest"
			}
			return "blob_data"
		case strings.HasPrefix(rest, "repositories/"):
			return "repository"
		}
		return "other"
	}
	for _, p := range [][2]string{{"data/", "blob_data"}, {"blobs/", "descriptor"}, {"manifests/", "manifest"}, {"repositories/", "repository"}, {"gc/", "gc"}} {
		if strings.HasPrefix(key, p[0]) {
			return p[1]
		}
	}
	return "other"
}

func (gcBucket) run(ctx context.Context, _ *client, cfg *config) (*Result, error) {
	manifests := map[string]bool{}
	if st, err := loadGCState(cfg); err == nil {
		for _, r := range st.Repos {
			for _, img := range r.Images {
				manifests[img.Manifest.Digest] = true
			}
		}
	}
	mc, err := newMinio(cfg)
	if err != nil {
		return nil, err
	}
	classes := map[string]*Counts{}
	var total Counts
	start := time.Now()
	for o := range mc.ListObjects(ctx, cfg.s3.bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list %s: %w", cfg.s3.bucket, o.Err)
		}
		k := gcClass(o.Key, manifests)
		if classes[k] == nil {
			classes[k] = &Counts{}
		}
		classes[k].add(o.Size)
		total.add(o.Size)
	}
	return &Result{
		Metric: "bytes", Value: float64(total.Bytes), Seconds: time.Since(start).Seconds(), Ops: total.Objects,
		Extra: map[string]any{"bucket": cfg.s3.bucket, "classes": classes, "manifests_known": len(manifests)},
	}, nil
}

type gcPush struct{ workers int }

func (s *gcPush) setup(context.Context, *client, *config) error { return nil }

func (s *gcPush) run(ctx context.Context, c *client, cfg *config) (*Result, error) {
	run := randSuffix()[:8]
	rngs, next := make([]*rand.ChaCha8, s.workers), make([]int, s.workers)
	for w := range rngs {
		var seed [32]byte
		_, _ = crand.Read(seed[:])
		rngs[w] = rand.NewChaCha8(seed)
	}
	all, elapsed, err := hammer(ctx, s.workers, cfg.duration, func(ctx context.Context, w int) error {
		data := make([]byte, 4<<10)
		_, _ = rngs[w].Read(data)
		layer := newBlob(data)
		repo := fmt.Sprintf("%s/gcpush-%s-%d-%d", cfg.repoPrefix, run, w, next[w])
		next[w]++
		conf := gcConfig(repo, []blob{layer})
		if err := c.pushBlob(ctx, repo, layer, cfg.chunked); err != nil {
			return err
		}
		if err := c.pushBlob(ctx, repo, conf, cfg.chunked); err != nil {
			return err
		}
		_, err := c.putManifest(ctx, repo, "latest", ociManifest, gcManifest(conf, []blob{layer}))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Result{
		Metric: "images/s", Value: float64(len(all)) / elapsed.Seconds(), HigherIsBetter: true,
		Seconds: elapsed.Seconds(), Ops: int64(len(all)), Workers: s.workers,
		P50ms: percentile(all, 0.5), P99ms: percentile(all, 0.99),
		Extra: map[string]any{"layer_bytes": 4 << 10, "repo_prefix": cfg.repoPrefix + "/gcpush-" + run},
	}, nil
}
