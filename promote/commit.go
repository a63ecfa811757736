package promote

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/storage"
)

// maxAttempts bounds the compare-and-set rounds of one promotion when many
// promotions of one tag race.
const maxAttempts = 200

// commit writes rec as the newest record of its tag's chain and points the
// tag at rec.Digest (see paths.go for the protocol). guard sees the digest
// the tag names just before the record is claimed, and the chain's head
// read with it (nil for an empty chain; applied: it is what the tag names).
func (s *Service) commit(ctx context.Context, rec Record, st config.Stage, guard func(prev digest.Digest, exists bool, head *Record) error) (Record, error) {
	unlock := s.locks.lock(rec.Repository + ":" + rec.Tag)
	defer unlock()
	rec.Target = rec.Repository + ":" + rec.Tag
	for attempt := 0; ; attempt++ {
		if attempt == maxAttempts {
			return Record{}, errorf(http.StatusConflict, CodeConflict, "%s is being promoted by too many others at once; try again", rec.Target)
		}
		if attempt > 0 {
			backoff(ctx, attempt)
		}
		state, exists, err := s.tagState(ctx, rec.Repository, rec.Tag)
		if err != nil {
			return Record{}, storeError(err)
		}
		head, hasHead, err := s.head(ctx, rec.Repository, rec.Tag)
		if err != nil {
			return Record{}, storeError(err)
		}
		// The newest record never reached the tag when the tag is still
		// what that record found: the previous record's write, or (for a
		// first record) no tag, or the pushed tag it replaced. Then its
		// writer died or is about to write it: finish it, then start over.
		// A tag changed outside the ledger (a push or a delete in a mutable
		// stage) is left as it is.
		//
		// Why the tag carries its record's Seq (tagState) rather than the
		// ledger alone knowing which tag version a record wrote: the tag
		// moves by compare-and-set on its ETag, read before the claim, and
		// on S3 an ETag is a hash of the bytes. Were the bytes only the
		// digest, A→B→A would bring the first ETag back: a writer that
		// claimed record n against tag A and stalled (or its finishLater)
		// would win its compare-and-set after record n was rolled forward
		// (A→B) and record n+1 applied (B→A), leaving the tag at B behind
		// the head. A record cannot hold the ETag of its own write (it is
		// claimed before that write), and holding the ETag it replaced
		// fails the same way. With the Seq in the bytes every ledger write
		// is distinct, so a stale compare-and-set always loses; and
		// head.Seq > state.Seq on a ledger-written tag says exactly that
		// the head has not been applied. Concurrent promotions on other
		// replicas are ordered by the chain claim (PutIfAbsent), not here.
		behind := exists && (state.Seq > 0 || state.Digest == head.PreviousDigest) || !exists && head.PreviousDigest == ""
		if hasHead && head.Seq > state.Seq && behind {
			if err := s.apply(ctx, head, state, exists); err != nil && !errors.Is(err, storage.ErrPreconditionFailed) {
				s.finishLater(head, state, exists)
				return Record{}, storeError(err)
			}
			continue
		}
		var headRec *Record
		if hasHead {
			headRec = &head
		}
		if err := guard(state.Digest, exists, headRec); err != nil {
			return Record{}, err
		}
		if exists && st.IsFixedTag(rec.Tag) && state.Digest != rec.Digest {
			return Record{}, errorf(http.StatusConflict, CodeFixedTag, "%s is a fixed tag in %s and already names %s; fixed tags are never re-pointed", rec.Target, st.Name, state.Digest)
		}
		rec.PreviousDigest = ""
		if exists {
			rec.PreviousDigest = state.Digest
		}
		switch {
		case exists && state.Digest == rec.Digest:
			rec.Outcome = OutcomeNoop
		case rec.RollbackOf != "":
			rec.Outcome = OutcomeRolledBack
		case rec.Outcome == OutcomeImported:
			// ImportTag's guard let it through: the tag does not exist.
		default:
			rec.Outcome = OutcomePromoted
		}
		rec.Seq = max(head.Seq, state.Seq) + 1
		rec.At = s.opts.Now().UTC()
		rec.ID = newID(rec.At)
		if err := s.claim(ctx, rec); errors.Is(err, storage.ErrPreconditionFailed) {
			continue
		} else if err != nil {
			return Record{}, storeError(err)
		}
		if err := s.apply(ctx, rec, state, exists); err != nil && !errors.Is(err, storage.ErrPreconditionFailed) {
			s.finishLater(rec, state, exists)
			return Record{}, storeError(err)
		}
		// Losing the tag write means a later record got there first (it
		// rolled ours forward before claiming); either way ours is in.
		return rec, s.verify(ctx, rec)
	}
}

// apply queues a claimed record's webhook event, writes its index copies,
// then the tag, stamped with the record's Seq and compared against the tag
// state read before the record was claimed.
func (s *Service) apply(ctx context.Context, rec Record, state tagState, exists bool) error {
	// A promotion already claimed is finished even if the caller goes away.
	ctx = context.WithoutCancel(ctx)
	// The event is queued before the tag moves: a crash in between leaves
	// the tag behind the chain, and the roll forward queues it again
	// (same id, so once).
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.notify(gctx, rec) })
	g.Go(func() error { return s.index(gctx, rec) })
	if err := g.Wait(); err != nil {
		return err
	}
	etag := ""
	if exists {
		etag = state.ETag
	}
	return s.meta.SetTag(ctx, rec.Repository, rec.Tag, rec.Digest, seqStamp(rec.Seq), etag)
}

// verify checks that the target serves the promoted digest: the manifest
// is linked and its bytes hash to the digest, and the tag names it unless
// a newer record has already moved it on.
func (s *Service) verify(ctx context.Context, rec Record) error {
	m, err := s.meta.ManifestInRepo(ctx, rec.Repository, rec.Digest)
	if errors.Is(err, storage.ErrNotFound) {
		return errorf(http.StatusConflict, CodeConflict, "verification failed: %s does not serve %s: %v", rec.Repository, rec.Digest, err)
	} else if err != nil {
		// The store could not be asked (an outage after the tag moved):
		// unavailable, not a verdict on the promotion.
		return storeError(err)
	}
	if got := rec.Digest.Algorithm().FromBytes(m.Raw); got != rec.Digest {
		return errorf(http.StatusConflict, CodeConflict, "verification failed: %s@%s hashes to %s", rec.Repository, rec.Digest, got)
	}
	state, _, err := s.tagState(ctx, rec.Repository, rec.Tag)
	if err != nil {
		return storeError(err)
	}
	if state.Seq <= rec.Seq && state.Digest != rec.Digest {
		return errorf(http.StatusConflict, CodeConflict, "verification failed: %s names %s, not %s", rec.Target, state.Digest, rec.Digest)
	}
	return nil
}

// How finishLater retries: first after finishFirstWait, doubling up to
// finishMaxWait, for at most finishFor.
const (
	finishFirstWait = 200 * time.Millisecond
	finishMaxWait   = 10 * time.Second
	finishFor       = 10 * time.Minute
)

// finishLater keeps applying a claimed record whose apply failed (the
// store became unavailable between the claim and the tag write) until it
// is applied, a newer write to the tag wins (whoever made it rolled this
// record forward first, or the tag moved outside the ledger), or finishFor
// passes. The caller was told the promotion failed; it completes anyway,
// as a roll forward would, so a claimed record does not wait for the next
// promotion of its tag to move the tag and queue its webhook event. (A
// crash at that moment still leaves the record to that next promotion.)
func (s *Service) finishLater(rec Record, state tagState, exists bool) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), finishFor)
		defer cancel()
		log := s.log.With("promotion", rec.ID, "target", rec.Repository+":"+rec.Tag, "seq", rec.Seq)
		for wait := finishFirstWait; ; wait = min(2*wait, finishMaxWait) {
			select {
			case <-ctx.Done():
				log.Error("promotion: claimed but not applied; the next promotion of its tag will finish it")
				return
			case <-time.After(wait):
			}
			err := s.apply(ctx, rec, state, exists)
			if err == nil || errors.Is(err, storage.ErrPreconditionFailed) {
				log.Info("promotion: finished after the store came back", "superseded", err != nil)
				return
			}
		}
	}()
}

func backoff(ctx context.Context, attempt int) {
	d := time.Duration(min(attempt, 10)) * time.Millisecond
	d += time.Duration(rand.Int64N(int64(d) + 1))
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
