package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The raw-* scenarios are the limit for the S3 benchmark: minio-go
// PutObject / GetObject straight to the bucket, with the sizes and
// parallelism of push-16m, push-256k, pull-16m and pull-256k, and no
// registry in between. PUTs go as UNSIGNED-PAYLOAD without Content-MD5
// (rawPut): no pass over the body besides sending it, which is the real
// limit of a PUT (a signed payload would cost the client a SHA-256 of every
// byte, and MinIO a second one to check it).
//
//	regbench -scenario raw-push-16m -s3-endpoint 127.0.0.1:9100 -s3-bucket raw -s3-access-key … -s3-secret-key …

type s3flags struct {
	endpoint, bucket, accessKey, secretKey string
	counter                                string // s3count control address (s3-ops)
}

func newMinio(cfg *config) (*minio.Client, error) {
	ep := strings.TrimPrefix(strings.TrimPrefix(cfg.s3.endpoint, "http://"), "https://")
	return minio.New(ep, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.s3.accessKey, cfg.s3.secretKey, ""),
		Secure:    strings.HasPrefix(cfg.s3.endpoint, "https://"),
		Region:    "us-east-1",
		Transport: newTransport(),
	})
}

// rawPut is how the raw scenarios send objects: one PUT of the whole body,
// UNSIGNED-PAYLOAD, no Content-MD5.
var rawPut = minio.PutObjectOptions{ContentType: "application/octet-stream", DisableContentSha256: true, SendContentMd5: false}

type rawScenario struct {
	pull                 bool
	size, count, workers int
}

func (s *rawScenario) bucket(ctx context.Context, mc *minio.Client, cfg *config) error {
	ok, err := mc.BucketExists(ctx, cfg.s3.bucket)
	if err != nil {
		return err
	}
	if !ok {
		return mc.MakeBucket(ctx, cfg.s3.bucket, minio.MakeBucketOptions{})
	}
	return nil
}

func (s *rawScenario) setup(ctx context.Context, _ *client, cfg *config) error {
	mc, err := newMinio(cfg)
	if err != nil {
		return err
	}
	if err := s.bucket(ctx, mc, cfg); err != nil {
		return err
	}
	if !s.pull {
		return nil
	}
	var st pullState
	if ok, err := loadState(cfg, &st); err != nil {
		return err
	} else if ok && st.Size == int64(s.size) && len(st.Digests) == s.count {
		return nil
	}
	blobs := genBlobs(s.count, s.size)
	prefix := cfg.repoPrefix + "/" + cfg.scenario + "/"
	if err := parallel(ctx, len(blobs), s.workers, func(ctx context.Context, _, i int) error {
		_, err := mc.PutObject(ctx, cfg.s3.bucket, prefix+blobs[i].digest, bytes.NewReader(blobs[i].data), int64(s.size), rawPut)
		return err
	}); err != nil {
		return err
	}
	st = pullState{Repo: prefix, Size: int64(s.size)}
	for _, b := range blobs {
		st.Digests = append(st.Digests, b.digest)
	}
	return saveState(cfg, st)
}

func (s *rawScenario) run(ctx context.Context, _ *client, cfg *config) (*Result, error) {
	mc, err := newMinio(cfg)
	if err != nil {
		return nil, err
	}
	// Warm (untimed): one request per worker opens the connections.
	if err := parallel(ctx, s.workers, s.workers, func(ctx context.Context, _, _ int) error {
		_, err := mc.BucketExists(ctx, cfg.s3.bucket)
		return err
	}); err != nil {
		return nil, err
	}
	lat := make([][]time.Duration, s.workers)
	if !s.pull {
		blobs := genBlobs(s.count, s.size)
		prefix := cfg.repoPrefix + "/" + cfg.scenario + "/" + randSuffix() + "/"
		start := time.Now()
		err := parallel(ctx, len(blobs), s.workers, func(ctx context.Context, w, i int) error {
			t := time.Now()
			_, err := mc.PutObject(ctx, cfg.s3.bucket, prefix+blobs[i].digest, bytes.NewReader(blobs[i].data), int64(s.size), rawPut)
			if err != nil {
				return fmt.Errorf("PutObject: %w", err)
			}
			lat[w] = append(lat[w], time.Since(t))
			return nil
		})
		elapsed := time.Since(start)
		if err != nil {
			return nil, err
		}
		return blobResult(s.size, s.count, s.workers, elapsed, lat, map[string]any{"raw": "minio-go PutObject, UNSIGNED-PAYLOAD", "bucket": cfg.s3.bucket}), nil
	}
	var st pullState
	if err := setupState(cfg, &st); err != nil {
		return nil, err
	}
	bufs := make([][]byte, s.workers)
	for i := range bufs {
		bufs[i] = make([]byte, 256<<10)
	}
	start := time.Now()
	err = parallel(ctx, len(st.Digests), s.workers, func(ctx context.Context, w, i int) error {
		t := time.Now()
		obj, err := mc.GetObject(ctx, cfg.s3.bucket, st.Repo+st.Digests[i], minio.GetObjectOptions{})
		if err != nil {
			return fmt.Errorf("GetObject: %w", err)
		}
		n, err := io.CopyBuffer(io.Discard, onlyReader{obj}, bufs[w])
		obj.Close()
		if err != nil {
			return fmt.Errorf("GetObject %s: after %d bytes: %w", st.Digests[i], n, err)
		}
		if n != st.Size {
			return fmt.Errorf("GetObject %s: %d bytes, want %d", st.Digests[i], n, st.Size)
		}
		lat[w] = append(lat[w], time.Since(t))
		return nil
	})
	elapsed := time.Since(start)
	if err != nil {
		return nil, err
	}
	return blobResult(int(st.Size), len(st.Digests), s.workers, elapsed, lat, map[string]any{"raw": "minio-go GetObject", "bucket": cfg.s3.bucket}), nil
}
