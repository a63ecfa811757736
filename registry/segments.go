package registry

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

// A blob's bytes are one or more segments: data objects written once, each
// by one request (a monolithic upload, or one PATCH of a chunked upload).
// Committing a blob lists its segments in the descriptor; no byte is ever
// copied to assemble them. docker, containerd and crane send a layer in one
// request, so nearly every blob is one segment (and can be redirected to a
// presigned URL); a client that sends many chunks gets as many segments,
// read back in sequence.
type segment struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
	// Digest is set on a session's implicit first segment only (see
	// firstSegmentKey): the digest of its bytes, the one blob it can be
	// committed as without a compare-and-set.
	Digest digest.Digest `json:"digest,omitempty"`
	// etag is the version the write answered (memory only): what a hash
	// hint of the segment is bound to (hashhint.go).
	etag string
}

// firstSegmentKey is where the first chunk of the session id goes: a key
// derived from the (signed, 64-character) id, written with put-if-absent,
// and no session object. So docker's PATCH + PUT writes the data, then the
// descriptor and link: two small writes instead of four (the session
// object at the PATCH, closing it at the PUT) plus the session's delete.
// It holds for chunks of any size: the store checks put-if-absent
// atomically with the write however it cuts the body (storage/s3 completes
// its multipart upload with If-None-Match, which MinIO and versitygw
// honour: storagetest's LargePutIfAbsent).
//
// The data object then is the session's stored state: a replica without
// the session in memory finds it by this key and rebuilds the hash state by
// reading it back (uploads.load), the whole chunk. That is the price of a
// large first chunk here rather than under a new key with a session
// object holding the hash state: a read of the chunk whenever the PUT
// reaches another replica than the PATCH (never behind a balancer that
// keeps a connection on one replica, since docker sends both on one
// keep-alive connection; up to every push behind one that spreads
// requests), against three more requests (session object, its close and
// delete) on every push. The second chunk, or any close that commits
// more than this one segment, writes the session object as before. What
// keeps it safe, since a PUT on any replica may commit the segment without
// a compare-and-set: it can only ever be committed alone as the blob
// Digest, and it is deleted only once that blob's descriptor exists and
// names other data (unusedFirstSegment), or by purge after the id expired.
func firstSegmentKey(id string) string { return dataKey(id) }

// writeSegment streams one request body into a new data object: one Put
// (PutIfAbsent at first, when first is set: see firstSegmentKey) of the
// body as it arrives. size may be -1 (chunked transfer). How the body is
// cut into requests, and what is buffered, is the store's business. On
// error nothing is left visible.
func (r *Registry) writeSegment(ctx context.Context, body io.Reader, size int64, first string) (segment, error) {
	key := first
	var info storage.Info
	var err error
	if key != "" {
		info, err = r.store.PutIfAbsent(ctx, key, body, size)
	} else {
		key = dataKey(newObjectID())
		info, err = r.store.Put(ctx, key, body, size)
	}
	if errors.Is(err, storage.ErrPreconditionFailed) {
		return segment{}, err
	}
	if err != nil {
		return segment{}, bodyError(err)
	}
	return segment{Key: key, Size: info.Size, etag: info.ETag}, nil
}

// objectReader opens objects or ranges of them: the store for segments,
// the bucket view for outside data (outside.go).
type objectReader interface {
	Get(ctx context.Context, key string, opts storage.GetOptions) (io.ReadCloser, storage.Info, error)
}

// segmentsReader reads length bytes from offset start of a blob made of
// segs, opening each segment only when the reader reaches it.
type segmentsReader struct {
	ctx    context.Context
	store  objectReader
	segs   []segment
	start  int64 // offset within the remaining segments
	remain int64
	cur    io.ReadCloser
	left   int64 // bytes still expected from cur
}

func newSegmentsReader(ctx context.Context, store objectReader, segs []segment, start, length int64) *segmentsReader {
	return &segmentsReader{ctx: ctx, store: store, segs: segs, start: start, remain: length}
}

func (s *segmentsReader) Read(p []byte) (int, error) {
	for s.remain > 0 {
		if s.cur == nil {
			for len(s.segs) > 0 && s.start >= s.segs[0].Size {
				s.start -= s.segs[0].Size
				s.segs = s.segs[1:]
			}
			if len(s.segs) == 0 {
				return 0, fmt.Errorf("blob segments end %d bytes early", s.remain)
			}
			seg := s.segs[0]
			n := min(seg.Size-s.start, s.remain)
			rc, _, err := s.store.Get(s.ctx, seg.Key, storage.GetOptions{Offset: s.start, Length: n})
			if err != nil {
				return 0, err
			}
			s.cur, s.left, s.segs, s.start = rc, n, s.segs[1:], 0
		}
		if int64(len(p)) > s.left {
			p = p[:s.left]
		}
		n, err := s.cur.Read(p)
		s.remain -= int64(n)
		s.left -= int64(n)
		if s.left == 0 || errors.Is(err, io.EOF) {
			s.cur.Close()
			s.cur = nil
			if s.left > 0 {
				return n, fmt.Errorf("blob segment ended %d bytes early: %w", s.left, io.ErrUnexpectedEOF)
			}
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.EOF
}

func (s *segmentsReader) Close() error {
	if s.cur != nil {
		return s.cur.Close()
	}
	return nil
}
