package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

// uploads runs blob upload sessions on a store shared by every replica. It
// knows nothing of HTTP: requests come as ids, bodies, sizes, ranges and
// digests (upload.go), and answers as progress and the errors below.
//
// Every write of a session object is a compare-and-set (put-if-absent for
// the first, put-if-match on the ETag the writer started from after), so
// two requests (on one replica or on several) racing on one session cannot
// both advance it. The object uploads/<id> is written only once the session
// holds more than its implicit first segment (uploadid.go,
// firstSegmentKey).
type uploads struct {
	store  storage.Store
	meta   *Metadata
	write  segmentWriter
	ids    uploadIDs
	hints  hashHints     // the hash hints in Locations (hashhint.go)
	ttl    time.Duration // an id that never stored data expires after it
	limits *sessionLimits
	logger *slog.Logger
	// memory remembers sessions this replica issued or wrote: a guess,
	// always checked by compare-and-set.
	memory *lru.Cache[string, sessionEntry]
	// background counts session deletes left running after a response.
	background sync.WaitGroup
}

// segmentWriter writes one body as a new segment (Registry.writeSegment).
type segmentWriter func(ctx context.Context, body io.Reader, size int64, first string) (segment, error)

// sessionEntry is what a replica remembers of a session: its record as
// written (or issued), its ETag, and whether the object exists.
type sessionEntry struct {
	record []byte
	etag   string
	stored bool
}

// sessionCacheEntries bounds the sessions a replica remembers (a few KiB
// each at most).
const sessionCacheEntries = 1 << 14

// The errors of upload sessions (the handlers answer them, uploads.go).
var (
	errUploadUnknown = errors.New("upload unknown to registry")
	// errNotOpen: the session was committed or cancelled.
	errNotOpen        = fmt.Errorf("upload is closed: %w", errUploadUnknown)
	errUploadConflict = errors.New("upload was changed by another request")
	// errRangeInvalid: the chunk does not start where the session ends;
	// the progress returned with it is the session's.
	errRangeInvalid = errors.New("chunk does not continue the upload")
)

// digestMismatchError: the bytes do not hash to the digest the client
// gave.
type digestMismatchError struct{ want, got digest.Digest }

func (e *digestMismatchError) Error() string {
	return "digest does not match content: expected " + e.want.String() + ", computed " + e.got.String()
}

func newUploads(store storage.Store, m *Metadata, write segmentWriter, opts Options) *uploads {
	u := &uploads{store: store, meta: m, write: write, ids: uploadIDs{key: opts.UploadKey}, hints: newHashHints(opts.UploadKey),
		ttl: opts.UploadTTL, limits: newSessionLimits(opts), logger: opts.Logger}
	u.memory, _ = lru.New[string, sessionEntry](sessionCacheEntries)
	return u
}

// remember keeps s, as just written (or issued), as this replica's guess.
func (u *uploads) remember(s *session) {
	b, err := s.encode(s.state)
	if err != nil {
		return
	}
	u.memory.Add(s.id, sessionEntry{record: b, etag: s.etag, stored: s.state != sessionNew})
}

func (u *uploads) forget(id string) { u.memory.Remove(id) }

// recall returns this replica's guess of a session of name.
func (u *uploads) recall(name, id string) (*session, bool) {
	e, ok := u.memory.Get(id)
	if !ok {
		return nil, false
	}
	s, err := decodeSession(e.record, id, e.stored)
	if err != nil || s.repo != name {
		return nil, false
	}
	s.etag, s.origin = e.etag, fromMemory
	return s, true
}

// load returns a session of name with its hash state: this replica's guess
// when from is fromMemory and it has one, else the stored state. A missing
// object is the initial state of a valid, young id (uploadid.go), with its
// implicit first segment if that was written (its hash state from hint
// when that verifies, hashhint.go).
func (u *uploads) load(ctx context.Context, name, id, hint string, from origin) (*session, error) {
	idInfo, ok := u.ids.parse(name, id)
	if !ok {
		return nil, errUploadUnknown
	}
	if from == fromMemory {
		if s, ok := u.recall(name, id); ok && (s.state != sessionNew || time.Since(idInfo.issued) <= u.ttl) {
			s.hint = hint
			return s, nil
		}
	}
	b, info, err := u.meta.readSmall(ctx, uploadKey(id), 4<<20)
	if errors.Is(err, storage.ErrNotFound) {
		u.forget(id)
		if !idInfo.signed || time.Since(idInfo.issued) > u.ttl {
			return nil, errUploadUnknown
		}
		s := newSession(id, name, idInfo.alg, idInfo.issued)
		s.hint = hint
		return s, u.loadFirstSegment(ctx, s, hint)
	}
	if err != nil {
		return nil, err
	}
	s, err := decodeSession(b, id, true)
	if err != nil {
		return nil, err
	}
	if s.repo != name {
		return nil, errUploadUnknown
	}
	s.etag = info.ETag
	return s, nil
}

// loadFirstSegment adds a session's implicit first segment to s (not
// stored), if it was written. Its hash state comes from the request's hint
// when that verifies for the segment as stored; else its bytes are hashed
// again: the one case where a replica reads a chunk back to continue a
// session (another replica took the first PATCH and the client did not
// send its Location back as given, or this one restarted since).
func (u *uploads) loadFirstSegment(ctx context.Context, s *session, hint string) error {
	key := firstSegmentKey(s.id)
	info, err := u.store.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	seg := segment{Key: key, Size: info.Size, etag: info.ETag}
	if h, ok := u.hints.open(s.repo, s.id, hint, s.alg, info); ok {
		s.hasher = h
	} else if err := u.rehash(ctx, s.hasher, seg); err != nil {
		return err
	}
	seg.Digest = digest.NewDigest(s.alg, s.hasher)
	s.segs, s.offset = []segment{seg}, seg.Size
	return nil
}

// save writes s as state to, with compare-and-set on the version s was
// read (or last written) at: put-if-absent when it is sessionNew,
// put-if-match on its ETag otherwise. A lost race is
// storage.ErrPreconditionFailed and leaves s as it was.
func (u *uploads) save(ctx context.Context, s *session, to sessionState) error {
	b, err := s.encode(to)
	if err != nil {
		return err
	}
	var info storage.Info
	if s.state == sessionNew {
		info, err = u.store.PutIfAbsent(ctx, uploadKey(s.id), bytes.NewReader(b), int64(len(b)))
	} else {
		info, err = u.store.PutIfMatch(ctx, uploadKey(s.id), bytes.NewReader(b), int64(len(b)), s.etag)
	}
	if err != nil {
		if !errors.Is(err, storage.ErrPreconditionFailed) {
			u.forget(s.id)
		}
		// A lost race leaves the memory as it is: it may hold the
		// winner's write (append tells a race on this replica by it).
		return err
	}
	s.state, s.etag, s.origin = to, info.ETag, fromStore
	u.memory.Add(s.id, sessionEntry{record: b, etag: s.etag, stored: true})
	return nil
}

// confirm returns s, unless s is this replica's guess and doubt(s): then
// the state in the store. The caller checks what it gets again, so a guess
// never decides an answer by itself.
func (u *uploads) confirm(ctx context.Context, s *session, doubt func(*session) bool) (*session, error) {
	if s.origin != fromMemory || !doubt(s) {
		return s, nil
	}
	return u.load(ctx, s.repo, s.id, s.hint, fromStore)
}

// retryStale runs step on s: step records segs (written and hashed on s)
// with a compare-and-set and returns the session it wrote. When step fails
// with stale(err) and s is this replica's guess, the guess was out of date
// (another replica moved the session since): segs are rebased on the state
// in the store (their bytes are read back into its hash; a chunk with a
// Content-Range must still start where that state ends) and step runs once
// more, on that state. On error it returns the session step last ran on,
// or the fresh one a rebase refused (errNotOpen, errRangeInvalid).
func (u *uploads) retryStale(ctx context.Context, s *session, segs []segment, start int64,
	step func(*session) (*session, error), stale func(error) bool) (*session, error) {
	next, err := step(s)
	if err == nil || s.origin != fromMemory || !stale(err) {
		return next, err
	}
	fresh, err := u.load(ctx, s.repo, s.id, s.hint, fromStore)
	if err != nil {
		return s, err
	}
	if closed(fresh) {
		return fresh, errNotOpen
	}
	if start >= 0 && start != fresh.offset {
		return fresh, errRangeInvalid
	}
	for _, seg := range segs {
		if err := u.rehash(ctx, fresh.hasher, seg); err != nil {
			return fresh, err
		}
	}
	return step(fresh)
}

// rehash feeds a stored segment's bytes to h (rebasing a chunk on a state
// other than the one it was hashed with: rare, see retryStale).
func (u *uploads) rehash(ctx context.Context, h hash.Hash, seg segment) error {
	rd := newSegmentsReader(ctx, u.store, []segment{seg}, 0, seg.Size)
	defer rd.Close()
	_, err := io.Copy(h, rd)
	return err
}

// digestOf is the digest in alg of the session's bytes followed by
// last's (already fed to s.hasher).
func (u *uploads) digestOf(ctx context.Context, s *session, last []segment, alg digest.Algorithm) (digest.Digest, error) {
	if alg == s.alg {
		return digest.NewDigest(s.alg, s.hasher), nil
	}
	// The session hashed another algorithm: hash the stored bytes.
	segs := s.with(last).segs
	var size int64
	for _, seg := range segs {
		size += seg.Size
	}
	rd := newSegmentsReader(ctx, u.store, segs, 0, size)
	defer rd.Close()
	h := alg.Hash()
	if _, err := io.Copy(h, rd); err != nil {
		return "", err
	}
	return digest.NewDigest(alg, h), nil
}

// dropLater deletes a committed session's object after the response. The
// delete is off the response path because a session left behind (the
// process dies first, or the delete fails) is harmless: it is closed, so it
// takes no data and nothing drops its segments; a PUT with its digest
// commits again (idempotent); and purge removes it after
// uploads.purge_after like any untouched session. Once it is gone, a young
// id reads as a new, empty session (uploadid.go), also harmless.
func (u *uploads) dropLater(id string) {
	u.forget(id)
	u.background.Add(1)
	go func() {
		defer u.background.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := u.store.Delete(ctx, uploadKey(id)); err != nil {
			u.logger.Warn("deleting a finished upload session (purge will)", "upload", id, "error", err.Error())
		}
	}()
}

// deleteSegments drops data objects nobody will reference; an implicit
// first segment only when that is known safe (meta.deleteSegments). It
// returns the ones kept.
func (u *uploads) deleteSegments(ctx context.Context, segs []segment) []segment {
	return u.meta.deleteSegments(ctx, segs, false)
}
