package promote

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// maxReason bounds a promotion's free-text reason.
const maxReason = 1024

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
		if err != nil || !names.ValidRepository(repo) {
			return ref{}, invalid("source %q is not repository@digest with a valid digest", s)
		}
		return ref{Repo: repo, Digest: dg}, nil
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.Contains(s[i:], "/") {
		return ref{}, invalid("source %q needs a tag or digest: staging/app:1.4.2 or staging/app@sha256:…", s)
	}
	repo, tag := s[:i], s[i+1:]
	if !names.ValidRepository(repo) || !names.ValidTag(tag) {
		return ref{}, invalid("source %q is not a valid repository:tag", s)
	}
	return ref{Repo: repo, Tag: tag}, nil
}

// Promote promotes req.Source to stage req.To. created is false when the
// target tag already named the digest (a no-op, recorded as such).
func (s *Service) Promote(ctx context.Context, req Request) (rec Record, created bool, err error) {
	if err := s.requireCaller(ctx); err != nil {
		return Record{}, false, err
	}
	// A release whose writer died is finished before anything else moves.
	s.recoverReleases(ctx)
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
	if !names.ValidTag(tag) {
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
	// Gates are checked on the source, before anything is written: the
	// evidence they find is what copyTree carries into the target.
	failures, evidence, err := s.checkGates(ctx, toStage, src.String(), src.Repo, m)
	if err != nil {
		return Record{}, false, err
	}
	if len(failures) > 0 {
		return Record{}, false, gateFailed(toStage.Name, failures)
	}
	if err := s.copyTree(ctx, src.Repo, target, m); err != nil {
		return Record{}, false, err
	}
	rec = Record{
		Source: src.String(), Digest: m.Digest, Repository: target, Tag: tag, Stage: toStage.Name,
		App: strings.TrimPrefix(target, toStage.Prefix), Reason: req.Reason, Actor: s.actor(ctx),
		Evidence: evidence,
	}
	rec, err = s.commit(ctx, rec, toStage, func(prev digest.Digest, exists bool, _ *Record) error {
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
