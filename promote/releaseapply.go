package promote

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/storage"
)

// releaseSkew: a member record is searched for in its tag's chain down to
// records this much older than the release, so a replica whose clock is
// behind the writer's still finds what the writer applied.
const releaseSkew = 5 * time.Minute

// runRelease writes the pending marker, then the release (the commit
// point), then applies it. Everything was validated and copied before.
func (s *Service) runRelease(ctx context.Context, d releaseDoc) (Release, error) {
	d.At = s.opts.Now().UTC()
	d.ID = newID(d.At)
	// The marker first: a release without a marker would be finished only
	// by a reader asking for it, never by the background loop.
	if _, err := s.store.PutIfAbsent(ctx, pendingKey(d.ID), http.NoBody, 0); err != nil {
		return Release{}, storeError(err)
	}
	if err := s.writeRelease(ctx, &d); errors.Is(err, storage.ErrPreconditionFailed) {
		// recoverReleases took this release for dead and fenced it off.
		return Release{}, errorf(http.StatusConflict, CodeConflict, "release %s took too long to start; nothing was promoted, try again", d.ID)
	} else if err != nil {
		// Not written, or written without our knowing: either way the
		// release is whole or absent, and recovery settles it.
		return Release{}, storeError(err)
	}
	// Committed: finish even if the caller goes away.
	if err := s.finishRelease(context.WithoutCancel(ctx), &d); err != nil {
		return Release{}, err
	}
	if d.State == ReleaseAborted {
		e := errorf(http.StatusConflict, CodeConflict, "release %s was aborted: %s", d.ID, d.Error)
		return d.release(), e
	}
	return d.release(), nil
}

// finishRelease brings a committed release to complete (or, when a member
// turned out impossible, to aborted), and deletes its marker. It is
// idempotent: every replica may run it on the same release at once, and a
// writer killed anywhere in it leaves what the next run finishes.
func (s *Service) finishRelease(ctx context.Context, d *releaseDoc) error {
	st, ok := s.stage(d.Stage)
	if !ok {
		// The stage left the configuration after the commit point: its
		// fixed tags are unknown now; the release is still finished.
		st = config.Stage{Name: d.Stage}
	}
	for range maxAttempts {
		var err error
		switch d.State {
		case ReleaseComplete, ReleaseAborted:
			if err := s.store.Delete(ctx, pendingKey(d.ID)); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return storeError(err)
			}
			return nil
		case ReleasePending:
			var members []Record
			var impossible error
			members, impossible, err = s.applyMembers(ctx, d, st)
			if err != nil {
				return err
			}
			next := *d
			if impossible != nil {
				next.State, next.Error = releaseAborting, impossible.Error()
			} else {
				next.State, next.Members = ReleaseComplete, members
			}
			err = s.writeRelease(ctx, &next)
			if err == nil {
				*d = next
			}
		case releaseAborting:
			var members []Record
			members, err = s.compensate(ctx, d, st)
			if err != nil {
				return err
			}
			next := *d
			next.State, next.Members = ReleaseAborted, members
			err = s.writeRelease(ctx, &next)
			if err == nil {
				*d = next
			}
		default:
			return fmt.Errorf("release %s has the unknown state %q", d.ID, d.State)
		}
		if errors.Is(err, storage.ErrPreconditionFailed) {
			// Another finisher moved the release on: take its version.
			fresh, err := s.readRelease(ctx, d.ID)
			if err != nil {
				return storeError(err)
			}
			*d = *fresh
			continue
		}
		if err != nil {
			return storeError(err)
		}
	}
	return errorf(http.StatusConflict, CodeConflict, "release %s is being finished by too many others at once; try again", d.ID)
}

// applyMembers applies every planned member, each as its tag's chain
// commit (a record with Release = d.ID). Members whose target is a fixed
// tag that did not exist at validation go first, one at a time: only
// they can turn out impossible (a racing promotion created the tag with
// another digest), and then nothing else has moved yet. impossible is that
// refusal; err is a failure to retry (the release stays pending).
func (s *Service) applyMembers(ctx context.Context, d *releaseDoc, st config.Stage) (members []Record, impossible, err error) {
	members = make([]Record, len(d.Plan))
	var risky, rest []int
	for i, p := range d.Plan {
		if st.IsFixedTag(p.Tag) && p.PreviousDigest == "" {
			risky = append(risky, i)
		} else {
			rest = append(rest, i)
		}
	}
	// step applies member i; a fixed-tag refusal is the member being
	// impossible, anything else a failure to retry.
	step := func(i int) error {
		rec, err := s.applyMember(ctx, d, i, st)
		var pe *Error
		if errors.As(err, &pe) && pe.Code == CodeFixedTag {
			return &memberImpossible{pe.Message} // it names the target
		}
		members[i] = rec
		return err
	}
	split := func(err error) ([]Record, error, error) {
		var mi *memberImpossible
		if errors.As(err, &mi) {
			return nil, mi, nil
		}
		return nil, nil, err
	}
	for _, i := range risky {
		if err := step(i); err != nil {
			return split(err)
		}
	}
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(releaseParallel)
	for _, i := range rest {
		g.Go(func() error { return step(i) })
	}
	if err := g.Wait(); err != nil {
		return split(err)
	}
	return members, nil, nil
}

// memberImpossible: a member of a committed release cannot be applied.
type memberImpossible struct{ msg string }

func (m *memberImpossible) Error() string { return m.msg }

// errMemberDone stops a member's commit that finds the member applied.
var errMemberDone = errors.New("release member already applied")

// applyMember writes member i's record and moves its tag, unless its
// tag's chain already holds a record of the release (a re-run). The
// check is the commit's guard, so it runs under the tag's lock, after
// any unapplied head was rolled forward, and again after a lost claim:
// two finishers never both write the member.
func (s *Service) applyMember(ctx context.Context, d *releaseDoc, i int, st config.Stage) (Record, error) {
	p := d.Plan[i]
	rec := Record{
		Source: p.Source, Digest: p.Digest, Repository: p.Repository, Tag: p.Tag, Stage: d.Stage, App: p.App,
		Reason: d.Reason, Actor: d.Actor, Evidence: p.Evidence, RollbackOf: p.RollbackOf, Release: d.ID,
	}
	var done Record
	rec, err := s.commit(ctx, rec, st, func(_ digest.Digest, _ bool, head *Record) error {
		recs, newer, err := s.releaseRecordsBelow(ctx, head, p.Repository, p.Tag, d.ID, d.At)
		if err != nil {
			return storeError(err)
		}
		switch {
		case len(recs) > 0:
			done = recs[len(recs)-1] // the oldest: later ones compensate it
			return errMemberDone
		case newer != nil:
			// A release committed after this one moved the tag first: it
			// wins, whichever order the two are applied in, so two
			// releases racing over the same tags end with every tag at
			// the later one, never a mix. This member is recorded as
			// superseded, without a ledger record of its own.
			done = rec
			done.Target, done.Outcome, done.At = rec.Repository+":"+rec.Tag, OutcomeSuperseded, newer.At
			done.PreviousDigest = ""
			return errMemberDone
		}
		return nil
	})
	if errors.Is(err, errMemberDone) {
		return done, nil
	}
	return rec, err
}

// releaseRecords returns the records of release id in the chain of
// repo:tag, newest first, searching down to records older than at; and
// newer, a record of a release committed after id (releaseAfter), if the
// chain holds one.
func (s *Service) releaseRecords(ctx context.Context, repo, tag, id string, at time.Time) (out []Record, newer *Record, err error) {
	after := ""
	for {
		page, err := s.store.List(ctx, storage.ListOptions{Prefix: chainPrefix(repo, tag), StartAfter: after, MaxKeys: 16})
		if err != nil {
			return nil, nil, err
		}
		keys := make([]string, len(page.Objects))
		for i, o := range page.Objects {
			keys[i] = o.Key
		}
		recs, err := s.fetchRecords(ctx, keys)
		if err != nil {
			return nil, nil, err
		}
		if searchRelease(recs, id, at, &out, &newer) {
			return out, newer, nil
		}
		if !page.Truncated || len(keys) == 0 {
			return out, newer, nil
		}
		after = keys[len(keys)-1]
	}
}

// releaseRecordsBelow is releaseRecords for a commit's guard, which has
// read the chain's head (nil: the chain is empty) under the tag's lock: a
// claim made since then loses the commit's put-if-absent and the guard runs
// again with the new head. So an empty chain, or a head older than the
// search reaches (every record below it is older still), answers without
// listing the chain: the common case of a release moving a new tag, or a
// tag last moved long before.
func (s *Service) releaseRecordsBelow(ctx context.Context, head *Record, repo, tag, id string, at time.Time) (out []Record, newer *Record, err error) {
	switch {
	case head == nil:
		return nil, nil, nil
	case !head.At.Before(at.Add(-releaseSkew)):
		return s.releaseRecords(ctx, repo, tag, id, at)
	}
	searchRelease([]Record{*head}, id, at, &out, &newer)
	return out, newer, nil
}

// searchRelease adds to out the records of release id among recs (a
// chain's records, newest first) and sets newer to the first record of a
// release committed after id; it reports whether the search is over: a
// record older than at minus releaseSkew was reached.
func searchRelease(recs []Record, id string, at time.Time, out *[]Record, newer **Record) bool {
	for _, r := range recs {
		switch {
		case r.Release == id:
			*out = append(*out, r)
		case r.Release != "" && *newer == nil && releaseAfter(r.Release, id):
			*newer = &r
		}
		if r.At.Before(at.Add(-releaseSkew)) {
			return true
		}
	}
	return false
}

// releaseAfter: release a was committed after release b, by the time in
// their ids (ties by the ids' random part), so every finisher of either
// orders them alike.
func releaseAfter(a, b string) bool {
	ta, tb := idTime(a), idTime(b)
	return ta.After(tb) || ta.Equal(tb) && a > b
}

// compensate re-points every member an aborted release moved back to what
// its tag named before (a record with RollbackOf = the member record and
// Release = the release). A member that created its tag keeps it: a tag
// the ledger wrote is never deleted (its chain would roll it forward).
// Returns the release's records, members then compensations.
func (s *Service) compensate(ctx context.Context, d *releaseDoc, st config.Stage) ([]Record, error) {
	var out []Record
	for _, p := range d.Plan {
		recs, newer, err := s.releaseRecords(ctx, p.Repository, p.Tag, d.ID, d.At)
		if err != nil {
			return nil, storeError(err)
		}
		if len(recs) == 0 {
			continue // never moved
		}
		member := recs[len(recs)-1]
		out = append(out, member)
		if len(recs) > 1 {
			out = append(out, recs[0]) // compensated by an earlier run
			continue
		}
		// Nothing to undo, or a later release owns the tag now.
		if member.Outcome == OutcomeNoop || member.PreviousDigest == "" || newer != nil {
			continue
		}
		back := Record{
			Source: p.Repository + "@" + member.PreviousDigest.String(), Digest: member.PreviousDigest,
			Repository: p.Repository, Tag: p.Tag, Stage: d.Stage, App: p.App, Actor: d.Actor,
			Reason: "release " + d.ID + " aborted: " + d.Error, RollbackOf: member.ID, Release: d.ID,
		}
		var done Record
		rec, err := s.commit(ctx, back, st, func(_ digest.Digest, _ bool, head *Record) error {
			recs, _, err := s.releaseRecordsBelow(ctx, head, p.Repository, p.Tag, d.ID, d.At)
			if err != nil {
				return storeError(err)
			}
			if len(recs) > 1 {
				done = recs[0]
				return errMemberDone
			}
			return nil
		})
		if errors.Is(err, errMemberDone) {
			rec, err = done, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}
