package main

// Scenarios of bench/run-gc.sh (garbage collection, issue 12). The same
// logical content goes to every registry, byte for byte (a function of
// -seed), so what each collector frees can be compared:
//
//	gc-populate  -n repositories (default 2000) <prefix>/gc-00000…, each
//	             with gcTags tags t0…t4; each tag is an OCI image of
//	             gcLayers layers: layer 0 shared by every tag of the
//	             repository, the others its own, and its own config; every
//	             layer 2–8 KiB of random bytes. -workers repositories (16)
//	             are pushed at a time, each repository's blobs and
//	             manifests one after the other (docker-style: POST, PATCH
//	             chunked, PUT). Then half the tags go, -workers at a time:
//	             DELETE /v2/<repo>/manifests/<tag> for every tag whose
//	             global index (repo × gcTags + tag) is odd, so every
//	             repository keeps at least 2 tags and its shared layer. The
//	             state (every digest and size, which tags went) is kept as
//	             gc-populate.json in -state for gc-bucket and gc-verify.
//	gc-verify    after a collection: every kept tag's manifest GET by tag
//	             (digest checked) and its config and layers HEAD 200, else
//	             fail; every deleted tag GET 404, else fail; and counts (not
//	             failures) of what the collector left of the deleted
//	             images: manifests still GET by digest, own layers and
//	             configs still HEAD 200.
//
// gc-bucket and gc-push are in gcbucket.go.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

const (
	gcTags     = 5
	gcLayers   = 3
	gcMinLayer = 2 << 10
	gcMaxLayer = 8 << 10
)

type gcBlob struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

type gcImage struct {
	Tag      string   `json:"tag"`
	Manifest gcBlob   `json:"manifest"`
	Config   gcBlob   `json:"config"`
	Layers   []gcBlob `json:"layers"` // Layers[0] is the repository's shared layer
	Deleted  bool     `json:"deleted"`
}

type gcRepo struct {
	Name   string    `json:"name"`
	Images []gcImage `json:"images"`
}

type gcState struct {
	Seed  int64    `json:"seed"`
	Repos []gcRepo `json:"repos"`
}

// gcStateFile is shared by the gc-* scenarios (stateFile is per scenario).
func gcStateFile(cfg *config) string { return cfg.stateDir + "/gc-populate.json" }

func loadGCState(cfg *config) (*gcState, error) {
	b, err := os.ReadFile(gcStateFile(cfg))
	if err != nil {
		return nil, fmt.Errorf("no gc-populate state (run gc-populate with the same -state first): %w", err)
	}
	var st gcState
	return &st, json.Unmarshal(b, &st)
}

// gcRand is the deterministic random source of one piece of content.
func gcRand(seed int64, parts ...int) *rand.ChaCha8 {
	h := sha256.New()
	_ = binary.Write(h, binary.LittleEndian, seed)
	for _, p := range parts {
		_ = binary.Write(h, binary.LittleEndian, int64(p))
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return rand.NewChaCha8(s)
}

// gcLayer is layer k of tag j of repository i (k = 0: the shared layer,
// the same for every j).
func gcLayer(seed int64, i, j, k int) blob {
	if k == 0 {
		j = -1
	}
	rng := gcRand(seed, i, j, k)
	data := make([]byte, gcMinLayer+int(rng.Uint64()%(gcMaxLayer-gcMinLayer+1)))
	_, _ = rng.Read(data)
	return newBlob(data)
}

// gcConfig is a deterministic image config for layers (json.Marshal sorts
// map keys; no timestamp of the push).
func gcConfig(label string, layers []blob) blob {
	ids := make([]string, len(layers))
	for i, l := range layers {
		ids[i] = l.digest
	}
	b, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
		"config": map[string]any{"Labels": map[string]string{"bench.gc": label}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": ids},
	})
	return newBlob(b)
}

// gcManifest is the OCI image manifest of config and layers.
func gcManifest(config blob, layers []blob) []byte {
	descs := make([]descriptor, len(layers))
	for i, l := range layers {
		descs[i] = descriptor{MediaType: ociLayer, Digest: l.digest, Size: int64(len(l.data))}
	}
	m, _ := json.Marshal(imageManifest{
		SchemaVersion: 2, MediaType: ociManifest,
		Config: descriptor{MediaType: ociConfig, Digest: config.digest, Size: int64(len(config.data))},
		Layers: descs,
	})
	return m
}

func asGCBlob(b blob) gcBlob { return gcBlob{Digest: b.digest, Size: int64(len(b.data))} }

type gcPopulate struct{ repos, workers int }

func (s *gcPopulate) setup(context.Context, *client, *config) error { return nil }

// pushRepo pushes repository i: the shared layer once, then per tag its
// own layers, its config and its manifest by tag.
func (s *gcPopulate) pushRepo(ctx context.Context, c *client, cfg *config, i int) (gcRepo, error) {
	r := gcRepo{Name: fmt.Sprintf("%s/gc-%05d", cfg.repoPrefix, i)}
	shared := gcLayer(cfg.seed, i, 0, 0)
	if err := c.pushBlob(ctx, r.Name, shared, cfg.chunked); err != nil {
		return r, err
	}
	for j := 0; j < gcTags; j++ {
		layers := []blob{shared}
		for k := 1; k < gcLayers; k++ {
			layers = append(layers, gcLayer(cfg.seed, i, j, k))
		}
		tag := fmt.Sprintf("t%d", j)
		conf := gcConfig(r.Name+":"+tag, layers)
		for _, b := range append(layers[1:], conf) {
			if err := c.pushBlob(ctx, r.Name, b, cfg.chunked); err != nil {
				return r, err
			}
		}
		m := gcManifest(conf, layers)
		d, err := c.putManifest(ctx, r.Name, tag, ociManifest, m)
		if err != nil {
			return r, err
		}
		img := gcImage{Tag: tag, Manifest: gcBlob{Digest: d, Size: int64(len(m))}, Config: asGCBlob(conf),
			Deleted: (i*gcTags+j)%2 == 1}
		for _, l := range layers {
			img.Layers = append(img.Layers, asGCBlob(l))
		}
		r.Images = append(r.Images, img)
	}
	return r, nil
}

func (s *gcPopulate) run(ctx context.Context, c *client, cfg *config) (*Result, error) {
	st := gcState{Seed: cfg.seed, Repos: make([]gcRepo, s.repos)}
	var blobsPushed atomic.Int64
	start := time.Now()
	err := parallel(ctx, s.repos, s.workers, func(ctx context.Context, _, i int) error {
		r, err := s.pushRepo(ctx, c, cfg, i)
		st.Repos[i] = r
		blobsPushed.Add(int64(1 + len(r.Images)*gcLayers))
		return err
	})
	pushed := time.Since(start)
	if err != nil {
		return nil, err
	}
	type del struct{ repo, tag string }
	var dels []del
	freedData, freedManifests := Counts{}, Counts{}
	for _, r := range st.Repos {
		for _, img := range r.Images {
			if !img.Deleted {
				continue
			}
			dels = append(dels, del{r.Name, img.Tag})
			freedManifests.add(img.Manifest.Size)
			freedData.add(img.Config.Size)
			for _, l := range img.Layers[1:] {
				freedData.add(l.Size)
			}
		}
	}
	start = time.Now()
	err = parallel(ctx, len(dels), s.workers, func(ctx context.Context, _, i int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.url("/v2/"+dels[i].repo+"/manifests/"+dels[i].tag), nil)
		if err != nil {
			return err
		}
		resp, err := c.do(req, http.StatusAccepted, http.StatusOK, http.StatusNoContent)
		if err != nil {
			return err
		}
		drain(resp)
		return nil
	})
	deleted := time.Since(start)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(gcStateFile(cfg), b); err != nil {
		return nil, err
	}
	images := s.repos * gcTags
	return &Result{
		Metric: "images/s", Value: float64(images) / pushed.Seconds(), HigherIsBetter: true,
		Seconds: pushed.Seconds() + deleted.Seconds(), Ops: int64(images), Workers: s.workers,
		Extra: map[string]any{
			"repos": s.repos, "tags": gcTags, "layers": gcLayers, "seed": cfg.seed,
			"blobs_pushed": blobsPushed.Load(), "push_seconds": pushed.Seconds(),
			"tags_deleted": len(dels), "delete_seconds": deleted.Seconds(),
			// what a collector should free: the configs and own layers of
			// the untagged images (their bytes as pushed), and their manifests
			"expected_freed_blob_data": freedData, "expected_freed_manifests": freedManifests,
		},
	}, nil
}

// Counts is a number of objects and their bytes.
type Counts struct {
	Objects int64 `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

func (c *Counts) add(n int64) { c.Objects++; c.Bytes += n }

type gcVerify struct{ workers int }

func (s *gcVerify) setup(context.Context, *client, *config) error { return nil }

// status sends method to path (Accept: manifests) and returns the status
// and Docker-Content-Digest; want lists the statuses that are not errors.
func (s *gcVerify) status(ctx context.Context, c *client, method, path string, want ...int) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.do(req, want...)
	if err != nil {
		return 0, "", err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), nil
}

func (s *gcVerify) run(ctx context.Context, c *client, cfg *config) (*Result, error) {
	st, err := loadGCState(cfg)
	if err != nil {
		return nil, err
	}
	var kept, gone, leftManifests, leftBlobs atomic.Int64
	start := time.Now()
	err = parallel(ctx, len(st.Repos), s.workers, func(ctx context.Context, _, i int) error {
		r := st.Repos[i]
		for _, img := range r.Images {
			base := "/v2/" + r.Name
			if img.Deleted {
				if _, _, err := s.status(ctx, c, http.MethodGet, base+"/manifests/"+img.Tag, http.StatusNotFound); err != nil {
					return fmt.Errorf("deleted tag %s:%s: %w", r.Name, img.Tag, err)
				}
				gone.Add(1)
				code, _, err := s.status(ctx, c, http.MethodGet, base+"/manifests/"+img.Manifest.Digest, http.StatusOK, http.StatusNotFound)
				if err != nil {
					return err
				}
				if code == http.StatusOK {
					leftManifests.Add(1)
				}
				for _, b := range append([]gcBlob{img.Config}, img.Layers[1:]...) {
					ok, err := c.headBlob(ctx, r.Name, b.Digest)
					if err != nil {
						return err
					}
					if ok {
						leftBlobs.Add(1)
					}
				}
				continue
			}
			_, d, err := s.status(ctx, c, http.MethodGet, base+"/manifests/"+img.Tag, http.StatusOK)
			if err != nil {
				return fmt.Errorf("kept tag %s:%s: %w", r.Name, img.Tag, err)
			}
			if d != "" && d != img.Manifest.Digest {
				return fmt.Errorf("kept tag %s:%s: digest %s, want %s", r.Name, img.Tag, d, img.Manifest.Digest)
			}
			for _, b := range append([]gcBlob{img.Config}, img.Layers...) {
				ok, err := c.headBlob(ctx, r.Name, b.Digest)
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("kept tag %s:%s: blob %s is gone", r.Name, img.Tag, b.Digest)
				}
			}
			kept.Add(1)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Result{
		Metric: "kept tags intact", Value: float64(kept.Load()), HigherIsBetter: true,
		Seconds: time.Since(start).Seconds(), Ops: kept.Load() + gone.Load(), Workers: s.workers,
		Extra: map[string]any{
			"kept_tags_ok": kept.Load(), "deleted_tags_404": gone.Load(),
			"deleted_manifests_still_there": leftManifests.Load(),
			"deleted_blobs_still_there":     leftBlobs.Load(),
		},
	}, nil
}
