// Command s3cost measures what one S3 request of each kind Slipway issues
// costs the object store, relative to the 256 KiB PUT that bench/run-s3.sh's
// push-256k row is made of: requests per second of each kind, by itself,
// with the row's 8 parallel workers, straight to the bucket with minio-go.
// BENCHMARKS.md ("What a push costs MinIO") uses it to explain a push's
// throughput by the requests it makes.
//
//	s3cost -endpoint 127.0.0.1:9000 -access-key … -secret-key … [-bucket s3cost] [-duration 3s] [-reps 3]
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

var errDone = errors.New("nothing left to do")

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:9000", "MinIO host:port (plain HTTP)")
	access := flag.String("access-key", "", "access key")
	secret := flag.String("secret-key", "", "secret key")
	bucket := flag.String("bucket", "s3cost", "bucket (created if missing)")
	duration := flag.Duration("duration", 3*time.Second, "time per measurement")
	reps := flag.Int("reps", 3, "repetitions (the median is printed)")
	workers := flag.Int("workers", 8, "parallel requests")
	flag.Parse()

	mc, err := minio.New(*endpoint, &minio.Options{Creds: credentials.NewStaticV4(*access, *secret, ""), Region: "us-east-1"})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if ok, err := mc.BucketExists(ctx, *bucket); err != nil {
		log.Fatal(err)
	} else if !ok {
		if err := mc.MakeBucket(ctx, *bucket, minio.MakeBucketOptions{}); err != nil {
			log.Fatal(err)
		}
	}
	data := make([]byte, 256<<10)
	_, _ = rand.Read(data)
	small := make([]byte, 300) // an upload session or blob descriptor
	plain := minio.PutObjectOptions{DisableContentSha256: true}
	absent := minio.PutObjectOptions{DisableContentSha256: true}
	absent.SetMatchETagExcept("*")
	put := func(key string, b []byte, o minio.PutObjectOptions) error {
		_, err := mc.PutObject(ctx, *bucket, key, bytes.NewReader(b), int64(len(b)), o)
		return err
	}
	if err := put("tag", small, plain); err != nil {
		log.Fatal(err)
	}

	var written atomic.Int64 // objects the PUT 300 B row wrote
	type kind struct {
		name string
		op   func(prefix string, i int64) error
	}
	kinds := []kind{
		{"PUT 256 KiB (the unit)", func(p string, i int64) error { return put(fmt.Sprintf("%s/%d", p, i), data, plain) }},
		{"PUT 300 B", func(p string, i int64) error { return put(fmt.Sprintf("%s/%d", p, i), small, plain) }},
		{"PUT 0 B (a link)", func(p string, i int64) error { return put(fmt.Sprintf("%s/%d", p, i), nil, plain) }},
		{"PUT 300 B If-None-Match", func(p string, i int64) error { return put(fmt.Sprintf("%s/%d", p, i), small, absent) }},
		{"DELETE 300 B", func(p string, i int64) error {
			// Deletes what the 300 B row of this repetition wrote (and
			// stops when they are gone: deleting nothing is cheaper).
			if i > written.Load() {
				return errDone
			}
			return mc.RemoveObject(ctx, *bucket, fmt.Sprintf("%s/%d", p[:len(p)-len("DELETE 300 B")]+"PUT 300 B", i), minio.RemoveObjectOptions{})
		}},
		{"GET 300 B", func(p string, i int64) error {
			o, err := mc.GetObject(ctx, *bucket, "tag", minio.GetObjectOptions{})
			if err != nil {
				return err
			}
			defer o.Close()
			_, err = io.Copy(io.Discard, o)
			return err
		}},
	}
	rates := make([][]float64, len(kinds))
	for r := 0; r < *reps; r++ {
		prefix := fmt.Sprintf("r%d-%d/", r, time.Now().UnixNano())
		for k, kd := range kinds {
			var n, done atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for w := 0; w < *workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Since(start) < *duration {
						err := kd.op(prefix+kd.name, n.Add(1))
						if err == errDone {
							return
						}
						if err != nil {
							log.Fatalf("%s: %v", kd.name, err)
						}
						done.Add(1)
					}
				}()
			}
			wg.Wait()
			rates[k] = append(rates[k], float64(done.Load())/time.Since(start).Seconds())
			if kd.name == "PUT 300 B" {
				written.Store(done.Load())
			}
		}
	}
	median := func(v []float64) float64 {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	unit := median(rates[0])
	fmt.Printf("| Request (%d workers, median of %d × %s) | req/s | cost in 256 KiB PUTs |\n| --- | ---: | ---: |\n", *workers, *reps, *duration)
	for k, kd := range kinds {
		m := median(rates[k])
		fmt.Printf("| %s | %.0f | %.2f |\n", kd.name, m, unit/m)
	}
}
