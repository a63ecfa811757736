// Package storage defines the object-store seam under Slipway: a flat
// namespace of immutable-or-replaced objects addressed by '/'-separated keys,
// with the conditional writes that S3 offers. A write is one call with the
// whole body, of any size, known or not: how a backend cuts it (S3's
// multipart uploads, a filesystem's temp file) stays inside the backend.
// Backends live in subpackages (storage/fs, storage/s3);
// storage/storagetest is the suite every backend must pass.
//
// Key rules shared by every backend:
//   - keys are non-empty, '/'-separated, no empty, "." or ".." components,
//     and use only [A-Za-z0-9._:+=@-] in components;
//   - a key is never also a "directory" of another key (no object at "a/b"
//     while "a/b/c" exists): the layout in registry/paths.go guarantees it, and
//     the filesystem backend relies on it;
//   - List returns keys in byte-wise lexical order, as S3 does.
package storage

import (
	"context"
	"errors"
	"io"
	"net/url"
	"time"
)

// Typed errors every backend maps its failures to. Test with errors.Is.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrPreconditionFailed: a conditional write lost (PutIfAbsent found the
	// key, PutIfMatch found another ETag or no object). Never retried blindly.
	ErrPreconditionFailed = errors.New("storage: precondition failed")
	// ErrUnavailable: the backend cannot be reached or refused to serve;
	// callers answer 503.
	ErrUnavailable = errors.New("storage: unavailable")
	// ErrInvalidKey: the key breaks the key rules above.
	ErrInvalidKey = errors.New("storage: invalid key")
)

// Info describes one stored object.
type Info struct {
	Key     string
	Size    int64
	ETag    string // opaque version: changes whenever the object is replaced
	ModTime time.Time
}

// ListOptions selects a page of keys. Keys come back in lexical order.
type ListOptions struct {
	Prefix     string // only keys starting with Prefix
	Delimiter  string // "" (recursive) or "/" (group keys below Prefix into CommonPrefixes)
	StartAfter string // only keys strictly greater than StartAfter
	MaxKeys    int    // at most this many entries (objects + prefixes); <= 0 means 1000
}

// ListPage is one page of a listing.
type ListPage struct {
	Objects        []Info
	CommonPrefixes []string // with Delimiter "/": "prefix/sub/" groups, in lexical order
	// Truncated: more entries follow; continue with StartAfter = the last
	// key or prefix of this page.
	Truncated bool
}

// GetOptions narrows a read to a byte range.
type GetOptions struct {
	Offset int64 // first byte
	Length int64 // bytes to read; <= 0 means to the end
}

// Store is the object store every backend implements.
type Store interface {
	// Get opens an object (or a range of it). The Info is the whole object's.
	Get(ctx context.Context, key string, opts GetOptions) (io.ReadCloser, Info, error)
	// Stat returns an object's Info without its content.
	Stat(ctx context.Context, key string) (Info, error)
	// Put writes (or replaces) an object atomically: readers see the old
	// object or the whole new one, never a part. size is the body's length,
	// or -1 when unknown (read to EOF); bodies of any size are accepted.
	// A body that fails, or ends before size bytes, writes nothing (an old
	// object stays as it was); bytes past a known size are not read.
	Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error)
	// PutIfAbsent writes only if no object has the key; otherwise it returns
	// ErrPreconditionFailed and writes nothing. The check is atomic with
	// the write, whatever the body's size.
	PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (Info, error)
	// PutIfMatch replaces an object only if its current ETag is etag;
	// otherwise (other ETag, or no object) it returns ErrPreconditionFailed.
	PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (Info, error)
	// Delete removes an object. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns one page of keys.
	List(ctx context.Context, opts ListOptions) (ListPage, error)

	// Ping tells whether the store is reachable and usable (for /readyz).
	Ping(ctx context.Context) error
}

// Presigner is implemented by backends that can hand clients a time-limited
// URL to read an object directly (S3). The registry redirects blob reads to
// it when configured to.
type Presigner interface {
	PresignGet(ctx context.Context, key string, expiry time.Duration) (*url.URL, error)
	PresignHead(ctx context.Context, key string, expiry time.Duration) (*url.URL, error)
}

// ValidKey reports whether key follows the key rules.
func ValidKey(key string) bool {
	if key == "" || len(key) > 1024 {
		return false
	}
	start := 0
	for i := 0; i <= len(key); i++ {
		if i < len(key) && key[i] != '/' {
			if !keyChar(key[i]) {
				return false
			}
			continue
		}
		comp := key[start:i]
		if comp == "" || comp == "." || comp == ".." {
			return false
		}
		start = i + 1
	}
	return true
}

func keyChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '.', '_', ':', '+', '=', '@', '-':
		return true
	}
	return false
}

// StaleMultipartAborter is implemented by backends that cut large writes
// into multipart uploads (S3): it finds the uploads nobody completed (a
// process died inside a write) and aborts them, so their parts stop
// costing storage.
type StaleMultipartAborter interface {
	// AbortStaleMultipart aborts the uploads under prefix started before
	// cutoff and returns how many it aborted.
	AbortStaleMultipart(ctx context.Context, prefix string, cutoff time.Time) (int, error)
}

// Wrapped returns wrapper (a Store that wraps inner, usually by embedding
// it) with the optional capabilities of inner (Presigner,
// StaleMultipartAborter), served by inner directly, and wrapper's own
// BatchDeleter if it has one (inner's is never forwarded: see
// BatchDeleter). Callers find those by type assertion, which embedding
// inner in wrapper's own type would hide.
func Wrapped(wrapper, inner Store) Store {
	p, presigns := inner.(Presigner)
	a, aborts := inner.(StaleMultipartAborter)
	b, batches := wrapper.(BatchDeleter)
	switch {
	case presigns && aborts && batches:
		return struct {
			Store
			Presigner
			StaleMultipartAborter
			BatchDeleter
		}{wrapper, p, a, b}
	case presigns && aborts:
		return struct {
			Store
			Presigner
			StaleMultipartAborter
		}{wrapper, p, a}
	case presigns && batches:
		return struct {
			Store
			Presigner
			BatchDeleter
		}{wrapper, p, b}
	case aborts && batches:
		return struct {
			Store
			StaleMultipartAborter
			BatchDeleter
		}{wrapper, a, b}
	case presigns:
		return struct {
			Store
			Presigner
		}{wrapper, p}
	case aborts:
		return struct {
			Store
			StaleMultipartAborter
		}{wrapper, a}
	}
	return wrapper
}
