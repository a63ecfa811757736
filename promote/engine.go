package promote

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// Actions checked by the service (auth's names).
const (
	actionPull    = "pull"
	actionPromote = "promote"
)

var (
	tagName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	// cosignTag names the signature, attestation and SBOM tags cosign
	// attaches to a digest.
	cosignSuffixes = []string{".sig", ".att", ".sbom"}
)

// maxReason bounds a promotion's free-text reason.
const maxReason = 1024

// maxAttempts bounds the compare-and-set rounds of one promotion when many
// promotions of one tag race.
const maxAttempts = 200

// ref is a parsed "repository:tag" or "repository@digest".
type ref struct {
	Repo   string
	Tag    string
	Digest digest.Digest
}

func (r ref) String() string {
	if r.Digest != "" {
		return r.Repo + "@" + r.Digest.String()
	}
	return r.Repo + ":" + r.Tag
}

func parseSource(s string) (ref, error) {
	if repo, d, ok := strings.Cut(s, "@"); ok {
		dg, err := digest.Parse(d)
		if err != nil || !registry.ValidName(repo) {
			return ref{}, invalid("source %q is not repository@digest with a valid digest", s)
		}
		return ref{Repo: repo, Digest: dg}, nil
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.Contains(s[i:], "/") {
		return ref{}, invalid("source %q needs a tag or digest: staging/app:1.4.2 or staging/app@sha256:…", s)
	}
	repo, tag := s[:i], s[i+1:]
	if !registry.ValidName(repo) || !tagName.MatchString(tag) {
		return ref{}, invalid("source %q is not a valid repository:tag", s)
	}
	return ref{Repo: repo, Tag: tag}, nil
}

func (s *Service) stage(name string) (config.Stage, bool) {
	for _, st := range s.opts.Stages {
		if st.Name == name {
			return st, true
		}
	}
	return config.Stage{}, false
}

// may reports whether the caller may take action on repo. For many
// checks in one call, use permissions.
func (s *Service) may(ctx context.Context, repo, action string) bool {
	perms, err := s.permissions(ctx)
	return err == nil && perms(repo, action)
}

// permissions looks the caller up once and answers for any repository.
func (s *Service) permissions(ctx context.Context) (func(repo, action string) bool, error) {
	if s.opts.Allowed == nil {
		return func(string, string) bool { return true }, nil
	}
	allowed, err := s.opts.Allowed(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	return func(repo, action string) bool { return slices.Contains(allowed(repo), action) }, nil
}

func (s *Service) requireCaller(ctx context.Context) error {
	if s.opts.Actor != nil && s.opts.Actor(ctx) == "" {
		return errorf(http.StatusUnauthorized, CodeUnauthorized, "authentication required")
	}
	return nil
}

func (s *Service) actor(ctx context.Context) string {
	if s.opts.Actor == nil {
		return ""
	}
	return s.opts.Actor(ctx)
}

// edge checks that images may go from the source repository's stage to
// stage to, and returns the target repository and the two stages.
func (s *Service) edge(sourceRepo, to string) (target string, from, toStage config.Stage, err error) {
	toStage, ok := s.stage(to)
	if !ok {
		return "", from, toStage, invalid("unknown stage %q", to)
	}
	from, ok = config.StageOf(s.opts.Stages, sourceRepo)
	if !ok {
		return "", from, toStage, errorf(http.StatusConflict, CodeEdgeNotAllowed, "%s is in no stage: only repositories under a stage prefix can be promoted", sourceRepo)
	}
	if !slices.Contains(toStage.PromoteFrom, from.Name) {
		return "", from, toStage, errorf(http.StatusConflict, CodeEdgeNotAllowed, "promotion from %s to %s is not configured (stage %s promotes from %v)", from.Name, to, to, toStage.PromoteFrom)
	}
	return toStage.Prefix + strings.TrimPrefix(sourceRepo, from.Prefix), from, toStage, nil
}

// CanPromote reports whether the caller may promote from sourceRepo to
// stage toStage: the edge is configured and checkPromote finds nothing
// missing.
func (s *Service) CanPromote(ctx context.Context, sourceRepo, toStage string) bool {
	target, _, _, err := s.edge(sourceRepo, toStage)
	if err != nil {
		return false
	}
	may, err := s.permissions(ctx)
	return err == nil && checkPromote(may, sourceRepo, target) == nil
}

// checkPromote: promoting needs pull and promote on the source, and
// promote on the target (a grant on the target repository is what allows
// the edge). Pull, because a promotion reads the source: without it, an
// account could promote what it may not pull into a repository where it
// may, and pull it there. A rollback is a promotion from and to its own
// repository (its earlier digest), so it needs both there.
func checkPromote(may func(repo, action string) bool, source, target string) *Error {
	if !may(source, actionPull) || !may(source, actionPromote) {
		verb := "promote"
		if source == target {
			verb = "rollback"
		}
		return errorf(http.StatusForbidden, CodeDenied, "%s needs pull and promote on %s", verb, source)
	}
	if !may(target, actionPromote) {
		return errorf(http.StatusForbidden, CodeDenied, "promote needs promote on %s (the target)", target)
	}
	return nil
}

// CanRollback reports whether the caller may roll back rec.
func (s *Service) CanRollback(ctx context.Context, rec Record) bool {
	st, ok := s.stage(rec.Stage)
	if !ok || rec.PreviousDigest == "" || rec.Outcome == OutcomeNoop || st.IsFixedTag(rec.Tag) {
		return false
	}
	may, err := s.permissions(ctx)
	return err == nil && checkPromote(may, rec.Repository, rec.Repository) == nil
}

// Promote promotes req.Source to stage req.To. created is false when the
// target tag already named the digest (a no-op, recorded as such).
func (s *Service) Promote(ctx context.Context, req Request) (rec Record, created bool, err error) {
	if err := s.requireCaller(ctx); err != nil {
		return Record{}, false, err
	}
	src, err := parseSource(req.Source)
	if err != nil {
		return Record{}, false, err
	}
	if req.To == "" {
		return Record{}, false, invalid("the target stage (to) is required")
	}
	tag := req.Tag
	if tag == "" {
		tag = src.Tag
	}
	if tag == "" {
		return Record{}, false, invalid("tag is required when the source is a digest")
	}
	if !tagName.MatchString(tag) {
		return Record{}, false, invalid("invalid tag %q", tag)
	}
	if len(req.Reason) > maxReason {
		return Record{}, false, invalid("reason is longer than %d bytes", maxReason)
	}
	if req.ExpectDigest != "" && req.ExpectDigest.Validate() != nil {
		return Record{}, false, invalid("expect_digest %q is not a digest", req.ExpectDigest)
	}
	var expectPrev digest.Digest
	switch p := req.ExpectPrevious; {
	case p == "" || p == "none":
	default:
		if expectPrev = digest.Digest(p); expectPrev.Validate() != nil {
			return Record{}, false, invalid("expect_previous %q is neither a digest nor \"none\"", p)
		}
	}
	target, _, toStage, err := s.edge(src.Repo, req.To)
	if err != nil {
		return Record{}, false, err
	}
	may, err := s.permissions(ctx)
	if err != nil {
		return Record{}, false, err
	}
	if err := checkPromote(may, src.Repo, target); err != nil {
		return Record{}, false, err
	}
	m, err := s.meta.Resolve(ctx, src.Repo, refString(src))
	switch {
	case errors.Is(err, registry.ErrNotManifest):
		return Record{}, false, errorf(http.StatusUnprocessableEntity, CodeNotManifest, "%s names a blob, not an image manifest or index", src)
	case errors.Is(err, storage.ErrNotFound):
		return Record{}, false, errorf(http.StatusNotFound, CodeNotFound, "%s does not exist", src)
	case err != nil:
		return Record{}, false, storeError(err)
	}
	if req.ExpectDigest != "" && req.ExpectDigest != m.Digest {
		return Record{}, false, errorf(http.StatusConflict, CodeGuardFailed, "%s is %s, not the expected %s", src, m.Digest, req.ExpectDigest)
	}
	if err := s.copyTree(ctx, src.Repo, target, m); err != nil {
		return Record{}, false, err
	}
	rec = Record{
		Source: src.String(), Digest: m.Digest, Repository: target, Tag: tag, Stage: toStage.Name,
		App: strings.TrimPrefix(target, toStage.Prefix), Reason: req.Reason, Actor: s.actor(ctx),
	}
	rec, err = s.commit(ctx, rec, toStage, func(prev digest.Digest, exists bool) error {
		if req.ExpectPrevious == "none" && exists {
			return errorf(http.StatusConflict, CodeGuardFailed, "%s:%s already exists (now %s); expected it not to", target, tag, prev)
		}
		if expectPrev != "" && prev != expectPrev {
			now := "does not exist"
			if exists {
				now = "is " + prev.String()
			}
			return errorf(http.StatusConflict, CodeGuardFailed, "%s:%s %s, not the expected %s", target, tag, now, expectPrev)
		}
		return nil
	})
	if err != nil {
		return Record{}, false, err
	}
	return rec, rec.Outcome != OutcomeNoop, nil
}

func refString(r ref) string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// Rollback re-points the tag of record id to the digest it named before,
// as a new record. Refused for fixed tags, for records that created their
// tag, and when the tag has moved since.
func (s *Service) Rollback(ctx context.Context, id, reason string) (Record, error) {
	old, err := s.Get(ctx, id)
	if err != nil {
		return Record{}, err
	}
	if len(reason) > maxReason {
		return Record{}, invalid("reason is longer than %d bytes", maxReason)
	}
	st, ok := s.stage(old.Stage)
	may, err := s.permissions(ctx)
	if err != nil {
		return Record{}, err
	}
	denied := checkPromote(may, old.Repository, old.Repository)
	switch {
	case !ok:
		return Record{}, errorf(http.StatusConflict, CodeEdgeNotAllowed, "stage %q is no longer configured", old.Stage)
	case denied != nil:
		return Record{}, denied
	case st.IsFixedTag(old.Tag):
		return Record{}, errorf(http.StatusConflict, CodeFixedTag, "%s is a fixed tag in %s: it is never re-pointed, so it cannot be rolled back", old.Tag, st.Name)
	case old.PreviousDigest == "":
		return Record{}, errorf(http.StatusConflict, CodeConflict, "%s did not exist before promotion %s: there is nothing to roll back to", old.Target, id)
	case old.Outcome == OutcomeNoop:
		return Record{}, errorf(http.StatusConflict, CodeConflict, "promotion %s changed nothing: there is nothing to roll back", id)
	}
	if ok, err := s.meta.HasManifest(ctx, old.Repository, old.PreviousDigest); err != nil {
		return Record{}, storeError(err)
	} else if !ok {
		return Record{}, errorf(http.StatusConflict, CodeConflict, "%s no longer holds %s", old.Repository, old.PreviousDigest)
	}
	rec := Record{
		Source: old.Repository + "@" + old.PreviousDigest.String(), Digest: old.PreviousDigest,
		Repository: old.Repository, Tag: old.Tag, Stage: old.Stage, App: old.App,
		Reason: reason, Actor: s.actor(ctx), RollbackOf: id,
	}
	rec, err = s.commit(ctx, rec, st, func(prev digest.Digest, _ bool) error {
		if prev != old.Digest {
			return errorf(http.StatusConflict, CodeGuardFailed, "%s has moved since promotion %s (now %s): roll back the newest record instead", old.Target, id, prev)
		}
		return nil
	})
	if err != nil {
		return Record{}, err
	}
	return rec, nil
}

// commit writes rec as the newest record of its tag's chain and points the
// tag at rec.Digest (see paths.go for the protocol). guard sees the digest
// the tag names just before the record is claimed.
func (s *Service) commit(ctx context.Context, rec Record, st config.Stage, guard func(prev digest.Digest, exists bool) error) (Record, error) {
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
		behind := exists && (state.Seq > 0 || state.Digest == head.PreviousDigest) || !exists && head.PreviousDigest == ""
		if hasHead && head.Seq > state.Seq && behind {
			if err := s.apply(ctx, head, state, exists); err != nil && !errors.Is(err, storage.ErrPreconditionFailed) {
				s.finishLater(head, state, exists)
				return Record{}, storeError(err)
			}
			continue
		}
		if err := guard(state.Digest, exists); err != nil {
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

// tagState reads the target tag; a missing tag is exists=false.
func (s *Service) tagState(ctx context.Context, repo, tag string) (registry.TagState, bool, error) {
	st, err := s.meta.Tag(ctx, repo, tag)
	if errors.Is(err, storage.ErrNotFound) {
		return registry.TagState{}, false, nil
	}
	return st, err == nil, err
}

// apply queues a claimed record's webhook event, writes its index copies,
// then the tag, compared
// against the tag state read before the record was claimed.
func (s *Service) apply(ctx context.Context, rec Record, state registry.TagState, exists bool) error {
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
	return s.meta.SetTag(ctx, rec.Repository, rec.Tag, rec.Digest, rec.Seq, etag)
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
func (s *Service) finishLater(rec Record, state registry.TagState, exists bool) {
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

// copyTree makes everything m references, m itself and its referrers part
// of the target repository: children before parents, so the target never
// links a manifest it cannot serve whole. Only links and manifest records
// are written; no blob data moves.
func (s *Service) copyTree(ctx context.Context, from, to string, m registry.Manifest) error {
	if err := s.meta.AddRepository(ctx, to); err != nil {
		return storeError(err)
	}
	seen := map[digest.Digest]bool{}
	return s.copyManifest(ctx, from, to, m, seen, 0)
}

// maxDepth bounds index nesting and referrer chains.
const maxDepth = 8

func (s *Service) copyManifest(ctx context.Context, from, to string, m registry.Manifest, seen map[digest.Digest]bool, depth int) error {
	if seen[m.Digest] {
		return nil
	}
	seen[m.Digest] = true
	if depth > maxDepth {
		return errorf(http.StatusUnprocessableEntity, CodeNotManifest, "%s nests indexes or referrers deeper than %d levels", m.Digest, maxDepth)
	}
	refs, err := m.References()
	if err != nil {
		return errorf(http.StatusUnprocessableEntity, CodeNotManifest, "%s@%s cannot be parsed: %v", from, m.Digest, err)
	}
	// A manifest the target already links has its whole tree there (links
	// are written children and blobs first): only referrers may be new.
	linked, err := s.meta.HasManifest(ctx, to, m.Digest)
	if err != nil {
		return storeError(err)
	}
	if !linked {
		for _, c := range refs.Children {
			child, err := s.meta.ManifestInRepo(ctx, from, c.Digest)
			if errors.Is(err, storage.ErrNotFound) {
				return errorf(http.StatusConflict, CodeConflict, "%s@%s lists %s, which %s does not hold", from, m.Digest, c.Digest, from)
			}
			if err != nil {
				return storeError(err)
			}
			if err := s.copyManifest(ctx, from, to, child, seen, depth+1); err != nil {
				return err
			}
		}
		if err := s.linkBlobs(ctx, from, to, m.Digest, refs.Blobs); err != nil {
			return err
		}
		if err := s.meta.LinkManifest(ctx, to, m); err != nil {
			return storeError(err)
		}
	} else {
		// The children are there, but something may refer to them since
		// (a signature of one platform's image).
		for _, c := range refs.Children {
			if !seen[c.Digest] {
				seen[c.Digest] = true
				if err := s.copyReferrers(ctx, from, to, c.Digest, seen, depth+1); err != nil {
					return err
				}
			}
		}
	}
	return s.copyReferrers(ctx, from, to, m.Digest, seen, depth)
}

// linkBlobs links a manifest's blobs into the target, a few at a time
// (each is a round trip on S3; their order does not matter, only that all
// are done before the manifest is linked).
func (s *Service) linkBlobs(ctx context.Context, from, to string, of digest.Digest, blobs []v1.Descriptor) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, b := range blobs {
		g.Go(func() error {
			err := s.meta.LinkBlob(gctx, to, b.Digest)
			if errors.Is(err, storage.ErrNotFound) {
				return errorf(http.StatusConflict, CodeConflict, "%s@%s references blob %s, which the registry does not hold", from, of, b.Digest)
			}
			if err != nil {
				return storeError(err)
			}
			return nil
		})
	}
	return g.Wait()
}

// copyReferrers brings along what refers to d: manifests whose subject is
// d (the referrers API) and cosign's sha256-<hex>.sig/.att/.sbom tags.
func (s *Service) copyReferrers(ctx context.Context, from, to string, d digest.Digest, seen map[digest.Digest]bool, depth int) error {
	descs, err := s.meta.Referrers(ctx, from, d)
	if err != nil {
		return storeError(err)
	}
	for _, desc := range descs {
		rm, err := s.meta.ManifestInRepo(ctx, from, desc.Digest)
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted since it was indexed
		}
		if err != nil {
			return storeError(err)
		}
		if err := s.copyManifest(ctx, from, to, rm, seen, depth+1); err != nil {
			return err
		}
	}
	// One listing finds all of them (usually none).
	prefix := string(d.Algorithm()) + "-" + d.Encoded() + "."
	tags, err := s.meta.TagsWithPrefix(ctx, from, prefix)
	if err != nil {
		return storeError(err)
	}
	for _, tag := range tags {
		if !slices.Contains(cosignSuffixes, strings.TrimPrefix(tag, prefix[:len(prefix)-1])) {
			continue
		}
		st, err := s.meta.Tag(ctx, from, tag)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return storeError(err)
		}
		sm, err := s.meta.ManifestInRepo(ctx, from, st.Digest)
		if err != nil {
			return storeError(err)
		}
		if err := s.copyManifest(ctx, from, to, sm, seen, depth+1); err != nil {
			return err
		}
		if err := s.setCarriedTag(ctx, to, tag, st.Digest); err != nil {
			return storeError(err)
		}
	}
	return nil
}

// setCarriedTag points a carried cosign tag at what the source's names
// (cosign re-signing replaces it, so it follows the source).
func (s *Service) setCarriedTag(ctx context.Context, repo, tag string, d digest.Digest) error {
	for range 10 {
		cur, exists, err := s.tagState(ctx, repo, tag)
		if err != nil {
			return err
		}
		if exists && cur.Digest == d {
			return nil
		}
		etag := ""
		if exists {
			etag = cur.ETag
		}
		err = s.meta.SetTag(ctx, repo, tag, d, 0, etag)
		if !errors.Is(err, storage.ErrPreconditionFailed) {
			return err
		}
	}
	return fmt.Errorf("tag %s:%s keeps changing", repo, tag)
}
