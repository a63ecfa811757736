package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// s3OpsScenario counts the S3 requests a registry issues for one
// docker-style operation each, reading (and resetting) the counts of an
// s3count proxy between the registry and S3 (-s3-counter host:port):
// push one 16 MiB blob; pull it; push a config blob and a manifest by tag;
// GET the manifest by tag (the first GET, then the mean of the next 10);
// HEAD it. Presigned GETs the client sends after a redirect pass through
// the proxy too and are counted (marked "presigned").
type s3OpsScenario struct{}

func (s3OpsScenario) setup(context.Context, *client, *config) error { return nil }

func takeCounts(ctx context.Context, ctl string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ctl+"/take", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	return m, json.NewDecoder(resp.Body).Decode(&m)
}

func (s3OpsScenario) run(ctx context.Context, c *client, cfg *config) (*Result, error) {
	if cfg.s3.counter == "" {
		return nil, fmt.Errorf("s3-ops needs -s3-counter")
	}
	repo := cfg.repoPrefix + "/s3ops-" + randSuffix()
	if err := c.authorize(ctx, repo); err != nil {
		return nil, err
	}
	time.Sleep(200 * time.Millisecond) // let background S3 work settle
	if _, err := takeCounts(ctx, cfg.s3.counter); err != nil {
		return nil, err
	}
	out := map[string]any{}
	step := func(name string, fn func() error) error {
		if err := fn(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		time.Sleep(300 * time.Millisecond) // anything the registry does right after
		m, err := takeCounts(ctx, cfg.s3.counter)
		if err != nil {
			return err
		}
		out[name] = m
		return nil
	}
	layer := genBlobs(1, 16<<20)[0]
	if err := step("blob_push", func() error { return c.pushBlob(ctx, repo, layer, true) }); err != nil {
		return nil, err
	}
	buf := make([]byte, 256<<10)
	if err := step("blob_pull", func() error { return c.pullBlob(ctx, repo, layer.digest, 16<<20, true, buf) }); err != nil {
		return nil, err
	}
	if err := step("blob_pull_again", func() error { return c.pullBlob(ctx, repo, layer.digest, 16<<20, true, buf) }); err != nil {
		return nil, err
	}
	var digest string
	var m []byte
	if err := step("image_push_config_and_manifest", func() error {
		var err error
		digest, m, err = pushImageWithLayers(ctx, c, cfg, repo, "latest", layer)
		return err
	}); err != nil {
		return nil, err
	}
	get := func(method string) error {
		req, _ := http.NewRequestWithContext(ctx, method, c.url("/v2/"+repo+"/manifests/latest"), nil)
		req.Header.Set("Accept", manifestAccept)
		resp, err := c.do(req, http.StatusOK)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return checkManifestResponse(resp, digest, int64(len(m)), ociManifest)
	}
	if err := step("manifest_get_first", func() error { return get(http.MethodGet) }); err != nil {
		return nil, err
	}
	if err := step("manifest_get_next_10", func() error {
		for range 10 {
			if err := get(http.MethodGet); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := step("manifest_head_next_10", func() error {
		for range 10 {
			if err := get(http.MethodHead); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return &Result{Metric: "S3 requests", Value: 0, Extra: out}, nil
}
