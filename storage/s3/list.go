package s3

import (
	"context"
	"fmt"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/slipway/slipway/storage"
)

// maxListKeys is S3's page limit less the one entry List asks for beyond
// the page.
const maxListKeys = 1000 - 1

// List returns one page with one ListObjectsV2 request. Core.ListObjectsV2
// is used rather than Client.ListObjects because only it reports
// IsTruncated: the iterator would have to fetch the next page to tell.
//
// It asks for one entry more than the page holds and says Truncated when
// that entry came: versitygw (v1.8.0) reports IsTruncated on a full page
// that ends the listing when the prefix is not a whole "directory", so the
// caller would ask for a next page that is empty.
func (s *Store) List(ctx context.Context, opts storage.ListOptions) (storage.ListPage, error) {
	if opts.Delimiter != "" && opts.Delimiter != "/" {
		return storage.ListPage{}, fmt.Errorf("s3: list %q: delimiter %q: only \"\" and \"/\" are supported", opts.Prefix, opts.Delimiter)
	}
	n := opts.MaxKeys
	if n <= 0 || n > maxListKeys {
		n = maxListKeys
	}
	startAfter := ""
	if opts.StartAfter != "" {
		startAfter = s.root + opts.StartAfter
	}
	for {
		res, err := s.listV2(ctx, s.root+opts.Prefix, startAfter, opts.Delimiter, n+1)
		if err != nil {
			return storage.ListPage{}, s.fail(ctx, "list", opts.Prefix, err)
		}
		if len(res.Contents)+len(res.CommonPrefixes) > n {
			dropLast(&res)
			res.IsTruncated = true
		}
		page, last := s.page(res, startAfter)
		// A page can come out empty after filtering; the caller could not
		// continue from it, so go on from its last raw entry instead.
		if len(page.Objects)+len(page.CommonPrefixes) > 0 || !res.IsTruncated || last <= startAfter {
			return page, nil
		}
		startAfter = last
	}
}

// page converts a listing, dropping what is not a valid key under the root
// (objects written around Slipway), and returns the last raw entry.
func (s *Store) page(res minio.ListBucketV2Result, startAfter string) (storage.ListPage, string) {
	page := storage.ListPage{Truncated: res.IsTruncated}
	last := ""
	for _, o := range res.Contents {
		last = max(last, o.Key)
		if key, ok := strings.CutPrefix(o.Key, s.root); ok && storage.ValidKey(key) {
			o.ETag = strings.Trim(o.ETag, `"`)
			page.Objects = append(page.Objects, s.info(key, o))
		}
	}
	for _, p := range res.CommonPrefixes {
		last = max(last, p.Prefix)
		// S3 may repeat the group named StartAfter itself (the previous
		// page's last entry) when keys below it sort after it.
		if prefix, ok := strings.CutPrefix(p.Prefix, s.root); ok && p.Prefix > startAfter {
			page.CommonPrefixes = append(page.CommonPrefixes, prefix)
		}
	}
	return page, last
}

// dropLast removes the greatest entry of a listing (each list is sorted).
func dropLast(res *minio.ListBucketV2Result) {
	c, p := len(res.Contents), len(res.CommonPrefixes)
	if p == 0 || (c > 0 && res.Contents[c-1].Key > res.CommonPrefixes[p-1].Prefix) {
		res.Contents = res.Contents[:c-1]
	} else {
		res.CommonPrefixes = res.CommonPrefixes[:p-1]
	}
}

// listV2 runs Core.ListObjectsV2, which takes no context, so that the
// caller's cancellation is honoured: the request itself finishes in the
// background, bounded by the transport's timeouts.
func (s *Store) listV2(ctx context.Context, prefix, startAfter, delim string, n int) (minio.ListBucketV2Result, error) {
	type result struct {
		res minio.ListBucketV2Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := s.core.ListObjectsV2(s.bucket, prefix, startAfter, "", delim, n)
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		return r.res, r.err
	case <-ctx.Done():
		return minio.ListBucketV2Result{}, ctx.Err()
	}
}
