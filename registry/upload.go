package registry

import (
	"context"
	"encoding"
	"errors"
	"io"
	"slices"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// The operations of upload sessions: open, status, append, commit, cancel,
// and the one-request forms (putWhole, mount). Each returns the session's
// progress and an error of sessionstore.go (or the store's).

// chunk is the bytes one request adds to a session.
type chunk struct {
	body   io.Reader
	length int64 // the request's Content-Length; -1: unknown
	// ranged: the request says where its bytes go (Content-Range), from
	// first to last; valid false: a range no session can satisfy.
	ranged, valid bool
	first, last   int64
	// hint is the session's hash state as the request's URL carries it
	// (hashhint.go): used only if this replica does not know the session.
	hint string
}

// placement is where a chunk goes: start is -1 without a range (wherever
// the session ends); size is -1 when unknown (read to EOF).
type placement struct{ start, size int64 }

// place returns where the chunk goes in a session holding offset bytes;
// false when its range does not start there or disagrees with its length.
func (c chunk) place(offset int64) (placement, bool) {
	if !c.ranged {
		return placement{start: -1, size: c.length}, true
	}
	if !c.valid || c.first != offset || (c.length >= 0 && c.last-c.first+1 != c.length) {
		return placement{}, false
	}
	return placement{start: c.first, size: c.last - c.first + 1}, true
}

// open starts a session of name that hashes with alg. Nothing is stored:
// the signed id is the session until data arrives.
func (u *uploads) open(name string, alg digest.Algorithm) progress {
	now := time.Now().UTC()
	s := newSession(u.ids.mint(name, alg, now), name, alg, now.Truncate(time.Second))
	u.remember(s)
	return s.progress()
}

// status is the progress of a session that takes data, read from the
// store: another replica may have moved it. hint is the request's hash
// hint (hashhint.go); the progress carries one again when it can.
func (u *uploads) status(ctx context.Context, name, id, hint string) (progress, error) {
	s, err := u.loadOpen(ctx, name, id, hint, fromStore)
	p := s.progress()
	if err == nil {
		p.hint = u.hintOf(s)
	}
	return p, err
}

// closed reports whether s was committed or cancelled.
func closed(s *session) bool { return !s.state.takesData() }

// loadOpen loads a session that takes data: a committed or cancelled one
// is errNotOpen (after checking a remembered one in the store).
func (u *uploads) loadOpen(ctx context.Context, name, id, hint string, from origin) (*session, error) {
	s, err := u.load(ctx, name, id, hint, from)
	if err == nil {
		s, err = u.confirm(ctx, s, closed)
	}
	if err != nil {
		return nil, err
	}
	if closed(s) {
		return nil, errNotOpen
	}
	return s, nil
}

// placeChunk checks that ch continues s (a remembered s that it does not
// continue is checked again in the store) and returns the session it goes
// in and where. errRangeInvalid comes with the session it does not
// continue.
func (u *uploads) placeChunk(ctx context.Context, s *session, ch chunk) (*session, placement, error) {
	misplaced := func(s *session) bool { _, ok := ch.place(s.offset); return !ok }
	s, err := u.confirm(ctx, s, misplaced)
	if err != nil {
		return nil, placement{}, err
	}
	if closed(s) {
		return nil, placement{}, errNotOpen
	}
	at, ok := ch.place(s.offset)
	if !ok {
		return s, placement{}, errRangeInvalid
	}
	return s, at, nil
}

// append adds one chunk to session id of name, for account acct (the
// per-account bounds, opensessions.go).
func (u *uploads) append(ctx context.Context, acct, name, id string, ch chunk) (progress, error) {
	s, err := u.loadOpen(ctx, name, id, ch.hint, fromMemory)
	if err != nil {
		return progress{}, err
	}
	s, at, err := u.placeChunk(ctx, s, ch)
	if err != nil {
		return s.progress(), err
	}
	settle, err := u.slotForChunk(ctx, acct, s, at.size)
	if err != nil {
		return s.progress(), err
	}
	s, err = u.appendChunk(ctx, s, ch.body, at)
	settle(s, err)
	p := s.progress()
	if err == nil {
		p.hint = u.hintOf(s)
	}
	return p, err
}

// hintOf is the hash hint of a session that is only its implicit first
// segment, as this replica wrote or found it ("" for any other, or when
// the segment's ETag is not known here).
func (u *uploads) hintOf(s *session) string {
	if s.state != sessionNew || len(s.segs) != 1 || s.segs[0].Key != firstSegmentKey(s.id) {
		return ""
	}
	return u.hints.seal(s.repo, s.id, s.segs[0], s.hasher)
}

func lostRace(err error) bool { return errors.Is(err, storage.ErrPreconditionFailed) }

// appendChunk writes a chunk as a new segment and records it in the
// session with compare-and-set. It returns the session as stored.
//
// A session's first chunk goes to its implicit first segment
// (firstSegmentKey), put-if-absent, and is its stored state by itself.
// Losing that put means another request wrote the first chunk: a race, or
// this replica's guess of an empty session is stale. The body is spent, so
// the chunk cannot be rebased like a later one; the guess is dropped, so a
// retry continues from the store. (A chunk with a Content-Range never gets
// there: its range already told the guess was stale.)
//
// A later chunk lost to a stale guess is rebased (retryStale) if its
// Content-Range, or for a chunk without one the absence of a write by this
// replica since the guess, allows. Otherwise (a request racing on the same
// session) the loser drops its segment and gets errUploadConflict.
func (u *uploads) appendChunk(ctx context.Context, s *session, body io.Reader, at placement) (*session, error) {
	if at.size == 0 {
		return s, nil
	}
	before, err := s.hasher.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return s, err
	}
	first := ""
	if s.state == sessionNew && len(s.segs) == 0 && signedForm(s.id) {
		first = firstSegmentKey(s.id) // signed ids only: see uploadid.go
	}
	seg, err := u.write(ctx, io.TeeReader(body, s.hasher), at.size, first)
	if lostRace(err) {
		u.forget(s.id)
		return s, errUploadConflict
	}
	if err != nil {
		return s, err
	}
	if seg.Size == 0 {
		u.deleteSegments(ctx, []segment{seg})
		return s, s.hasher.(encoding.BinaryUnmarshaler).UnmarshalBinary(before)
	}
	if seg.Key == first {
		seg.Digest = digest.NewDigest(s.alg, s.hasher)
		s = s.with([]segment{seg})
		u.remember(s)
		return s, nil
	}
	startedAt := s.etag
	record := func(s *session) (*session, error) {
		next := s.with([]segment{seg})
		err := u.save(ctx, next, sessionOpen)
		if lostRace(err) && s.origin == fromMemory && at.start < 0 {
			if e, ok := u.memory.Get(s.id); ok && e.etag != startedAt {
				// Another request of this replica wrote it meanwhile.
				return s, errUploadConflict
			}
		}
		if err != nil {
			return s, err
		}
		return next, nil
	}
	s, err = u.retryStale(ctx, s, []segment{seg}, at.start, record, lostRace)
	if err != nil {
		u.deleteSegments(ctx, []segment{seg})
		if lostRace(err) {
			err = errUploadConflict
		}
	}
	return s, err
}

// commit finishes session id of name as the blob d, ch being its last
// chunk (size 0: none). In order: the last chunk is written as a segment
// of this request; the digest is verified; the session is closed as d with
// compare-and-set (what makes a remembered state safe to commit, and what
// keeps a cancel from dropping segments a blob now names); the descriptor
// and link are written; the session is forgotten.
func (u *uploads) commit(ctx context.Context, name, id string, d digest.Digest, ch chunk) (progress, error) {
	s, err := u.load(ctx, name, id, ch.hint, fromMemory)
	if err == nil {
		s, err = u.confirm(ctx, s, closed)
	}
	if err != nil {
		return progress{}, err
	}
	if closed(s) {
		return s.progress(), u.recommit(ctx, s, d)
	}
	s, at, err := u.placeChunk(ctx, s, ch)
	if err != nil {
		return s.progress(), err
	}
	last, err := u.writeLast(ctx, s, ch.body, at.size)
	if err != nil {
		return s.progress(), err
	}
	verifyAndClose := func(s *session) (*session, error) {
		if err := u.verify(ctx, s, last, d); err != nil {
			return s, err
		}
		return u.close(ctx, s, last, d)
	}
	mismatch := func(err error) bool { var m *digestMismatchError; return errors.As(err, &m) }
	s, err = u.retryStale(ctx, s, last, at.start, verifyAndClose,
		func(err error) bool { return lostRace(err) || mismatch(err) })
	switch {
	case errors.Is(err, errNotOpen): // closed meanwhile, by another request
		u.deleteSegments(ctx, last)
		return s.progress(), u.recommit(ctx, s, d)
	case mismatch(err):
		_ = u.drop(ctx, s, last, false)
		return s.progress(), err
	case err != nil:
		u.deleteSegments(ctx, last)
		if lostRace(err) {
			err = errUploadConflict
		}
		return s.progress(), err
	}
	// A failure from here leaves the session closed as d: a retried PUT
	// commits again.
	return s.progress(), u.finish(ctx, s, d)
}

// writeLast writes a PUT's chunk as a segment of this request, hashed into
// s.hasher; none for an empty body.
func (u *uploads) writeLast(ctx context.Context, s *session, body io.Reader, size int64) ([]segment, error) {
	if size == 0 {
		return nil, nil
	}
	seg, err := u.write(ctx, io.TeeReader(body, s.hasher), size, "")
	if err != nil {
		return nil, err
	}
	if seg.Size == 0 {
		u.deleteSegments(ctx, []segment{seg})
		return nil, nil
	}
	return []segment{seg}, nil
}

// verify checks that the session's bytes followed by last's are d.
func (u *uploads) verify(ctx context.Context, s *session, last []segment, d digest.Digest) error {
	got, err := u.digestOf(ctx, s, last, d.Algorithm())
	if err != nil {
		return err
	}
	if got != d {
		return &digestMismatchError{want: d, got: got}
	}
	return nil
}

// close records that s with last appended is the blob d, with
// compare-and-set, and returns the closed session. A session not stored
// writes nothing when its only segments are this request's own, or when it
// is exactly its implicit first segment committed as that segment's digest
// (firstSegmentKey: the one commit allowed without compare-and-set); any
// other close of it is a put-if-absent of the session object.
func (u *uploads) close(ctx context.Context, s *session, last []segment, d digest.Digest) (*session, error) {
	next := s.with(last)
	if s.state == sessionNew && (len(s.segs) == 0 || (len(last) == 0 && len(s.segs) == 1 && s.segs[0].Digest == d)) {
		return next, nil
	}
	next.closedAs = d
	if err := u.save(ctx, next, sessionClosed); err != nil {
		return s, err
	}
	return next, nil
}

// recommit answers a PUT on a closed session: one closed as d is committed
// again (a retry of a PUT cut short), anything else is errNotOpen, as a
// finished upload is.
func (u *uploads) recommit(ctx context.Context, s *session, d digest.Digest) error {
	if s.state != sessionClosed || s.closedAs != d {
		return errNotOpen
	}
	return u.finish(ctx, s, d)
}

// finish commits a closed session's segments as d and ends the session.
func (u *uploads) finish(ctx context.Context, s *session, d digest.Digest) error {
	if err := u.commitBlob(ctx, s.repo, d, s.segs); err != nil {
		return err
	}
	u.endCommitted(s)
	return nil
}

// commitBlob makes written segments a blob of the repository: descriptor
// (dedupe on an existing digest), link, protection from garbage
// collection (Metadata.commitBlob). A blob that stays collected past the
// commit's retries, or whose data went with it, is BLOB_UPLOAD_UNKNOWN:
// the client uploads it again, which brings it back.
func (u *uploads) commitBlob(ctx context.Context, name string, d digest.Digest, segs []segment) error {
	_, err := u.meta.commitBlob(ctx, name, d, segs)
	if errors.Is(err, tombstone.ErrCollected) || errors.Is(err, errSegmentsCollected) {
		return oci(errcode.ErrorCodeBlobUploadUnknown, "blob is being garbage-collected: upload it again", d.String())
	}
	return err
}

// cancel ends session id of name: see drop.
func (u *uploads) cancel(ctx context.Context, name, id string) error {
	s, err := u.loadOpen(ctx, name, id, "", fromStore)
	if err != nil {
		return err
	}
	err = u.drop(ctx, s, nil, true)
	if lostRace(err) {
		err = errUploadConflict
	}
	return err
}

// drop forgets a session and its segments (plus last, this request's
// own): on cancel (keep: the cancelled session stays stored, so later
// requests on the id get 404 until purge removes it) and on a failed final
// verification (the session object is deleted). The session is first
// closed as cancelled with compare-and-set: if that loses, another request
// moved or closed the session and its segments are left alone.
//
// An implicit first segment (firstSegmentKey) may have been committed by a
// PUT elsewhere without compare-and-set: it stays listed in the cancelled
// state, and is deleted only when that is known safe (meta.deleteSegments),
// by purge otherwise. So such a session is recorded as cancelled even when
// it was not stored, and the record stays while the segment may.
func (u *uploads) drop(ctx context.Context, s *session, last []segment, keep bool) error {
	ctx = context.WithoutCancel(ctx)
	var implicit []segment
	for _, seg := range s.segs {
		if seg.Digest != "" {
			implicit = append(implicit, seg)
		}
	}
	record := s.state != sessionNew || len(implicit) > 0
	if record || keep {
		cancelled := *s
		cancelled.segs, cancelled.offset = implicit, 0
		if err := u.save(ctx, &cancelled, sessionCancelled); err != nil {
			u.deleteSegments(ctx, last)
			return err
		}
	}
	u.release(s.id)
	kept := u.deleteSegments(ctx, append(slices.Clone(s.segs), last...))
	if !keep && record && len(kept) == 0 {
		u.forget(s.id)
		_ = u.store.Delete(ctx, uploadKey(s.id))
	}
	return nil
}

// putWhole stores a whole blob sent in one request (POST ?digest=): no
// session.
func (u *uploads) putWhole(ctx context.Context, name string, d digest.Digest, body io.Reader, size int64) error {
	h := d.Algorithm().Hash()
	seg, err := u.write(ctx, io.TeeReader(body, h), size, "")
	if err != nil {
		return err
	}
	if got := digest.NewDigest(d.Algorithm(), h); got != d {
		u.deleteSegments(ctx, []segment{seg})
		return &digestMismatchError{want: d, got: got}
	}
	return u.commitBlob(ctx, name, d, []segment{seg})
}

// mount links blob d of repository from into name. It reports false when
// from cannot serve it (the caller falls back to an upload session).
func (u *uploads) mount(ctx context.Context, name, from string, d digest.Digest) (bool, error) {
	if _, err := u.meta.blobInRepo(ctx, from, d); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	// The link, then protection of it and of the descriptor; a blob being
	// collected is not mountable: the client uploads it instead.
	err := u.meta.protectLink(ctx, name, d, true)
	if errors.Is(err, tombstone.ErrCollected) {
		return false, nil
	}
	return err == nil, err
}
