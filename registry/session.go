package registry

import (
	"encoding"
	"encoding/json"
	"fmt"
	"hash"
	"time"

	"github.com/opencontainers/go-digest"
)

// sessionState is where an upload session is in its life, and with it
// which compare-and-set the next write of its object uploads/<id> is.
type sessionState int

const (
	// sessionNew takes data and has no session object: the id's initial
	// state (a POST stores nothing, uploadid.go), or its implicit first
	// segment alone (firstSegmentKey). Its next write is put-if-absent.
	sessionNew sessionState = iota
	// sessionOpen takes data; its object is at etag (put-if-match next).
	sessionOpen
	// sessionClosed was committed as closedAs by a PUT that won the
	// close. It takes no data and nothing drops its segments (a committed
	// blob may name them); a PUT with closedAs commits again (idempotent),
	// so a PUT cut short between closing and committing can be retried.
	sessionClosed
	// sessionCancelled was cancelled (DELETE, or a final digest that did
	// not match): requests on its id get 404 until purge removes it.
	sessionCancelled
)

// takesData reports whether chunks may be added.
func (s sessionState) takesData() bool { return s == sessionNew || s == sessionOpen }

// origin is where a session value was read from.
type origin int

const (
	// fromStore: read from the store (or written to it) by this request.
	fromStore origin = iota
	// fromMemory: this replica's memory of a state it wrote or issued.
	// Only ever a guess: every use ends in a compare-and-set against the
	// store, and a doubt about it sends the request to the store
	// (uploads.confirm, uploads.retryStale).
	fromMemory
)

// session is an upload session, stored so that any replica (or this one
// after a restart) can continue it. Each PATCH writes its bytes once, into
// a new segment (segments.go); the session lists the segments and carries
// the hash state, so finishing is a descriptor write.
type session struct {
	id       string
	repo     string
	alg      digest.Algorithm
	started  time.Time
	segs     []segment
	offset   int64
	hasher   hash.Hash // the digest state of the bytes at offset
	state    sessionState
	closedAs digest.Digest // sessionClosed: the blob it was committed as
	etag     string        // version of uploads/<id> (not sessionNew)
	origin   origin
	// hint is the hash hint of the request that loaded s (hashhint.go),
	// for when a guess from memory turns out stale and the session is
	// loaded again from the store.
	hint string
}

// progress is what a client is told of a session: where it is and how
// many bytes it holds.
type progress struct {
	id     string
	offset int64
	// hint is the session's hash state for another replica (hashhint.go),
	// when the answer can carry it.
	hint string
}

func (s *session) progress() progress {
	if s == nil {
		return progress{}
	}
	return progress{id: s.id, offset: s.offset}
}

// sessionRecord is the stored form (JSON) of a session. Its field names
// and values are the format every replica reads: "closed" is "" while the
// session takes data, the digest it was committed as, or "cancelled".
type sessionRecord struct {
	ID        string           `json:"id"`
	Repo      string           `json:"repo"`
	Segments  []segment        `json:"segments,omitempty"`
	Offset    int64            `json:"offset"`
	Algorithm digest.Algorithm `json:"algorithm"`
	HashState []byte           `json:"hash_state,omitempty"`
	Started   time.Time        `json:"started"`
	Closed    string           `json:"closed,omitempty"`
}

const closedCancelled = "cancelled"

func newSession(id, repo string, alg digest.Algorithm, started time.Time) *session {
	return &session{id: id, repo: repo, alg: alg, started: started, hasher: alg.Hash()}
}

// encode is the record of s with its state written as to.
func (s *session) encode(to sessionState) ([]byte, error) {
	hs, err := s.hasher.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	rec := sessionRecord{ID: s.id, Repo: s.repo, Segments: s.segs, Offset: s.offset,
		Algorithm: s.alg, HashState: hs, Started: s.started}
	switch to {
	case sessionClosed:
		rec.Closed = s.closedAs.String()
	case sessionCancelled:
		rec.Closed = closedCancelled
	}
	return json.Marshal(rec)
}

// decodeSession reads a record; stored tells an open record that exists
// as uploads/<id> from a remembered one that was never written.
func decodeSession(b []byte, id string, stored bool) (*session, error) {
	var rec sessionRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("upload state %s: %w", id, err)
	}
	s := newSession(rec.ID, rec.Repo, rec.Algorithm, rec.Started)
	s.segs, s.offset = rec.Segments, rec.Offset
	if len(rec.HashState) > 0 {
		if err := s.hasher.(encoding.BinaryUnmarshaler).UnmarshalBinary(rec.HashState); err != nil {
			return nil, fmt.Errorf("upload state %s: hash: %w", id, err)
		}
	}
	switch {
	case rec.Closed == closedCancelled:
		s.state = sessionCancelled
	case rec.Closed != "":
		s.state, s.closedAs = sessionClosed, digest.Digest(rec.Closed)
	case stored:
		s.state = sessionOpen
	}
	return s, nil
}

// with returns a copy of s holding segs after its own (the hash state is
// shared: the caller fed it their bytes).
func (s *session) with(segs []segment) *session {
	next := *s
	next.segs = append(append([]segment(nil), s.segs...), segs...)
	for _, seg := range segs {
		next.offset += seg.Size
	}
	return &next
}

// implicitFirst returns the session's implicit first segment, if it has one.
func (s *session) implicitFirst() (segment, bool) {
	if len(s.segs) > 0 && s.segs[0].Digest != "" {
		return s.segs[0], true
	}
	return segment{}, false
}
