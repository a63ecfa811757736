package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
	"github.com/slipway/slipway/storage/s3"
)

// importSource is the opened stock registry storage.
type importSource struct {
	store storage.Store // read-only
	name  string        // the folder, or s3://bucket/root
	// S3 only: the endpoint (host[:port]), bucket and rootdirectory.
	endpoint, bucket, root string
}

// openSource opens --from read-only: a folder (nothing created in it), or
// an S3 bucket and root directory with Slipway's credentials when the
// endpoint is Slipway's, else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY. A
// missing folder, missing credentials or an unreachable bucket is an
// error naming it, before anything is written anywhere.
func openSource(ctx context.Context, f importFlags, dst config.Storage, env config.LookupEnv) (importSource, error) {
	rest, isS3 := strings.CutPrefix(f.from, "s3://")
	if !isS3 {
		if f.endpoint != "" {
			return importSource{}, fmt.Errorf("--from-endpoint is for an s3:// source, not the folder %s", f.from)
		}
		fi, err := os.Stat(f.from)
		if err == nil && !fi.IsDir() {
			err = errors.New("not a directory")
		}
		if err != nil {
			return importSource{}, fmt.Errorf("source folder %s: %w", f.from, err)
		}
		s, err := fs.NewReadOnly(f.from)
		if err != nil {
			return importSource{}, fmt.Errorf("source folder %s: %w", f.from, err)
		}
		return importSource{store: s, name: f.from}, nil
	}
	bucket, root, _ := strings.Cut(rest, "/")
	root = strings.Trim(root, "/")
	if bucket == "" {
		return importSource{}, fmt.Errorf("--from %s: want s3://BUCKET/ROOTDIR", f.from)
	}
	src := importSource{name: "s3://" + bucket + "/" + root, bucket: bucket, root: root}
	ep := f.endpoint
	same := dst.S3 != nil && (ep == "" || s3.EndpointHost(ep) == s3.EndpointHost(dst.S3.Endpoint))
	cfg := s3.Config{Endpoint: ep, Bucket: bucket, Root: root}
	switch {
	case same:
		c := dst.S3
		cfg.Endpoint, cfg.Region, cfg.Secure = c.Endpoint, c.Region, c.Secure
		cfg.AccessKey, cfg.SecretKey = c.AccessKey, c.SecretKey
	case ep == "":
		return importSource{}, fmt.Errorf("--from %s: --from-endpoint is required (Slipway's storage is not on S3)", f.from)
	default:
		cfg.AccessKey, _ = env("AWS_ACCESS_KEY_ID")
		cfg.SecretKey, _ = env("AWS_SECRET_ACCESS_KEY")
		if cfg.AccessKey == "" || cfg.SecretKey == "" {
			return importSource{}, fmt.Errorf("source %s on endpoint %s: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", src.name, ep)
		}
	}
	src.endpoint = s3.EndpointHost(cfg.Endpoint)
	octx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	// Read-only: no probe, no bucket creation, every write refused.
	s, err := s3.NewReadOnly(octx, cfg)
	if err != nil {
		return importSource{}, fmt.Errorf("source %s on endpoint %s: %w", src.name, src.endpoint, err)
	}
	src.store = s
	return src, nil
}

// slipwayPrefixes are the top-level key prefixes Slipway writes and its
// collector and purge walk (docs/architecture.md §3); docker/ is
// reserved for a stock layout sharing the bucket.
var slipwayPrefixes = []string{
	registry.DataPrefix, registry.BlobsPrefix, registry.ManifestsPrefix, registry.UploadsPrefix,
	registry.RepositoriesPrefix, "catalog/", "ledger/", "outbox/", "outbox-dead/", "auth/", "gc/", "_slipway/",
}

// errNoBucketView: the source is Slipway's own bucket, but Slipway's
// store cannot read outside keys; the import copies (a note, not a
// failure).
var errNoBucketView = errors.New("the source is Slipway's own bucket, but this storage cannot name data outside Slipway's keys: copying instead of referencing")

// referenceMode decides same-bucket reference mode (§7.2–7.4): the
// source is Slipway's own endpoint and bucket, --mode is auto, and
// Slipway's store can read outside keys (storage.BucketViewer). It
// returns the stock key → bucket key mapping then, nil otherwise (with
// errNoBucketView when only the store's capability is missing); an
// error when the stock layout lies under one of Slipway's prefixes,
// where the collector's orphan stage or purge would free the stock
// registry's data.
func referenceMode(f importFlags, src importSource, dst config.Storage, store storage.Store) (func(string) string, error) {
	if f.mode != "auto" || dst.S3 == nil || src.bucket == "" || src.endpoint != s3.EndpointHost(dst.S3.Endpoint) || src.bucket != dst.S3.Bucket {
		return nil, nil
	}
	if err := checkOutsideSlipway(src.root, dst.S3.Root); err != nil {
		return nil, err
	}
	if _, ok := store.(storage.BucketViewer); !ok {
		return nil, errNoBucketView
	}
	prefix := ""
	if src.root != "" {
		prefix = src.root + "/"
	}
	return func(key string) string { return prefix + key }, nil
}

// checkOutsideSlipway refuses a stock root whose layout
// (<stockRoot>/docker/…) falls under one of Slipway's prefixes below
// Slipway's root.
func checkOutsideSlipway(stockRoot, slipwayRoot string) error {
	layout := strings.TrimLeft(strings.Trim(stockRoot, "/")+"/docker/", "/")
	rel := layout
	if r := strings.Trim(slipwayRoot, "/"); r != "" {
		var under bool
		if rel, under = strings.CutPrefix(layout, r+"/"); !under {
			return nil
		}
	}
	for _, p := range slipwayPrefixes {
		if strings.HasPrefix(rel, p) {
			return fmt.Errorf("the stock layout %s lies under Slipway's %s (storage.s3.root %q): Slipway's collector would free the stock registry's data there; "+
				"refusing a same-bucket reference (--mode=copy copies it instead, but the stock registry's data stays at risk: move it out of Slipway's keys)", layout, p, slipwayRoot)
		}
	}
	return nil
}
