package registry

import (
	"bytes"
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
}

// firstSegmentKey is where the first chunk of the session id goes when it
// fits one Put: a key derived from the (signed, 64-character) id, written
// with put-if-absent, and no session object. So docker's PATCH + PUT
// writes the data, then the descriptor and link: two small writes instead
// of four (the session object at the PATCH, closing it at the PUT) plus
// the session's delete (bench/run-s3.sh push-256k).
//
// The data object then is the session's stored state: a replica without
// the session in memory finds it by this key and rebuilds the hash state by
// reading it back (uploads.load). The second chunk, or any close that commits
// more than this one segment, writes the session object as before. What
// keeps it safe, since a PUT on any replica may commit the segment without
// a compare-and-set: it can only ever be committed alone as the blob
// Digest, and it is deleted only once that blob's descriptor exists and
// names other data (unusedFirstSegment), or by purge after the id expired.
func firstSegmentKey(id string) string { return dataKey(id) }

// defaultPartSize is how much of a request body is buffered per multipart
// part on stores with a minimum part size (S3).
const defaultPartSize = 16 << 20

// writeSegment streams one request body into a new data object. size may be
// -1 (chunked transfer). With first set (firstSegmentKey), a body that fits
// one Put is written there, put-if-absent; a larger one (multipart: S3
// cannot complete one conditionally) gets a new key as usual.
//
// On stores without a minimum part size the body is one Put; otherwise a
// body that fits in one part (up to PartSize bytes, whether its size is
// known or not) is one Put, and a larger one is a multipart upload of
// partSize parts completed before returning.
// On error nothing is left visible.
func (r *Registry) writeSegment(ctx context.Context, body io.Reader, size int64, first string) (segment, error) {
	key := first
	if key == "" {
		key = dataKey(newUploadID())
	}
	put := func(rd io.Reader, n int64) error {
		var err error
		if key == first {
			_, err = r.store.PutIfAbsent(ctx, key, rd, n)
		} else {
			_, err = r.store.Put(ctx, key, rd, n)
		}
		return err
	}
	cr := &countingReader{r: body}
	if r.store.MinPartSize() == 0 || (size >= 0 && size <= r.opts.PartSize) {
		if err := put(cr, size); err != nil {
			return segment{}, bodyError(err)
		}
		return segment{Key: key, Size: cr.n}, nil
	}
	// A body of unknown size (docker's chunked PATCH) is read into a
	// pooled 1 MiB buffer first: most such bodies are small layers or
	// configs, and a part-sized buffer (16 MiB, zeroed) for each of them
	// cost more CPU than the upload itself (bench/run-s3.sh push-256k).
	small := r.getBuffer()
	defer r.putBuffer(small)
	head := small[:min(int64(len(small)), r.opts.PartSize)]
	n, err := io.ReadFull(cr, head)
	if err == nil && int64(n) < r.opts.PartSize {
		buf := make([]byte, r.opts.PartSize)
		copy(buf, head[:n])
		var m int
		m, err = io.ReadFull(cr, buf[n:])
		n += m
		head = buf
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if size >= 0 && int64(n) != size {
			return segment{}, bodyError(io.ErrUnexpectedEOF)
		}
		if err := put(bytes.NewReader(head[:n]), int64(n)); err != nil {
			return segment{}, err
		}
		return segment{Key: key, Size: int64(n)}, nil
	}
	if err != nil {
		return segment{}, bodyError(err)
	}
	// head is a whole part: the part-sized buffer, or (PartSize at most
	// 1 MiB) the pooled one, which writeMultipart is done with before the
	// deferred putBuffer. A body of unknown size may end right there (a
	// 16 MiB layer, with the default part size): then it is one Put, not a
	// multipart upload of one part (three requests, and no implicit first
	// segment).
	var rest io.Reader = cr
	if size < 0 {
		var one [1]byte
		k, err := io.ReadFull(cr, one[:])
		if errors.Is(err, io.EOF) {
			if err := put(bytes.NewReader(head), int64(len(head))); err != nil {
				return segment{}, err
			}
			return segment{Key: key, Size: int64(len(head))}, nil
		}
		if err != nil {
			return segment{}, bodyError(err)
		}
		rest = io.MultiReader(bytes.NewReader(one[:k]), cr)
	}
	if key == first {
		key = dataKey(newUploadID())
	}
	return r.writeMultipart(ctx, key, cr, rest, head, size)
}

// writeMultipart uploads a body larger than one part: buf holds the first
// part already, rest is the remainder of the body, cr counts all of it.
func (r *Registry) writeMultipart(ctx context.Context, key string, cr *countingReader, rest io.Reader, buf []byte, size int64) (seg segment, err error) {
	id, err := r.store.CreateMultipart(ctx, key)
	if err != nil {
		return segment{}, err
	}
	defer func() {
		if err != nil {
			_ = r.store.AbortMultipart(context.WithoutCancel(ctx), key, id)
		}
	}()
	var parts []storage.Part
	n := len(buf)
	for {
		p, err := r.store.PutPart(ctx, key, id, len(parts)+1, bytes.NewReader(buf[:n]), int64(n))
		if err != nil {
			return segment{}, err
		}
		parts = append(parts, p)
		n, err = io.ReadFull(rest, buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return segment{}, bodyError(err)
		}
		if err != nil { // short read: the last part
			p, err := r.store.PutPart(ctx, key, id, len(parts)+1, bytes.NewReader(buf[:n]), int64(n))
			if err != nil {
				return segment{}, err
			}
			parts = append(parts, p)
			break
		}
	}
	if size >= 0 && cr.n != size {
		return segment{}, bodyError(io.ErrUnexpectedEOF)
	}
	if _, err := r.store.CompleteMultipart(ctx, key, id, parts); err != nil {
		return segment{}, err
	}
	return segment{Key: key, Size: cr.n}, nil
}

// segmentsReader reads length bytes from offset start of a blob made of
// segs, opening each segment only when the reader reaches it.
type segmentsReader struct {
	ctx    context.Context
	store  storage.Store
	segs   []segment
	start  int64 // offset within the remaining segments
	remain int64
	cur    io.ReadCloser
	left   int64 // bytes still expected from cur
}

func newSegmentsReader(ctx context.Context, store storage.Store, segs []segment, start, length int64) *segmentsReader {
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
