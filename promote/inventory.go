package promote

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// Limits of Repositories.
const (
	defaultRepos = 100
	maxRepos     = 1000
)

// shape is what the inventory shows of a manifest: it never changes for a
// digest, so it is computed once and cached.
type shape struct {
	MediaType string
	Size      int64
	Platforms []string
}

func newShapes() *lru.Cache[digest.Digest, shape] {
	c, _ := lru.New[digest.Digest, shape](1 << 14)
	return c
}

// newRecords caches the ledger records the inventory shows, by key.
func newRecords() *lru.Cache[string, Record] {
	c, _ := lru.New[string, Record](1 << 15)
	return c
}

// Repositories lists the repositories the caller may pull, in name order.
func (s *Service) Repositories(ctx context.Context, q RepositoryQuery) (RepositoryPage, error) {
	if err := s.requireCaller(ctx); err != nil {
		return RepositoryPage{}, err
	}
	limit := q.Limit
	switch {
	case limit < 0 || limit > maxRepos:
		return RepositoryPage{}, invalid("limit must be between 1 and %d", maxRepos)
	case limit == 0:
		limit = defaultRepos
	}
	if q.Stage != "" {
		if _, ok := s.stage(q.Stage); !ok {
			return RepositoryPage{}, invalid("unknown stage %q", q.Stage)
		}
	}
	may, err := s.permissions(ctx)
	if err != nil {
		return RepositoryPage{}, err
	}
	page := RepositoryPage{Repositories: []RepositoryInfo{}}
	after := q.Cursor
	for {
		names, more, err := s.meta.Repositories(ctx, after, 1000)
		if err != nil {
			return RepositoryPage{}, storeError(err)
		}
		for _, name := range names {
			after = name
			info := s.repoInfo(name)
			if (q.Search != "" && !strings.Contains(name, q.Search)) || (q.Stage != "" && info.Stage != q.Stage) ||
				!may(name, actionPull) {
				continue
			}
			if len(page.Repositories) == limit {
				page.NextCursor = page.Repositories[limit-1].Name
				return page, nil
			}
			page.Repositories = append(page.Repositories, info)
		}
		if !more {
			return page, nil
		}
	}
}

func (s *Service) repoInfo(name string) RepositoryInfo {
	if st, ok := config.StageOf(s.opts.Stages, name); ok {
		return RepositoryInfo{Name: name, Stage: st.Name, App: strings.TrimPrefix(name, st.Prefix)}
	}
	return RepositoryInfo{Name: name, App: name}
}

// StageCounts counts the repositories of each stage the caller may pull.
func (s *Service) StageCounts(ctx context.Context) (map[string]int, error) {
	if err := s.requireCaller(ctx); err != nil {
		return nil, err
	}
	may, err := s.permissions(ctx)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, st := range s.opts.Stages {
		counts[st.Name] = 0
	}
	after := ""
	for {
		names, more, err := s.meta.Repositories(ctx, after, 1000)
		if err != nil {
			return nil, storeError(err)
		}
		for _, name := range names {
			after = name
			if info := s.repoInfo(name); info.Stage != "" && may(name, actionPull) {
				counts[info.Stage]++
			}
		}
		if !more {
			return counts, nil
		}
	}
}

// Tags describes every tag of a repository: digest, size, platforms, when
// it was written, which stages hold the digest, and the promotion that set
// it.
func (s *Service) Tags(ctx context.Context, repo string) ([]TagInfo, error) {
	if err := s.requireCaller(ctx); err != nil {
		return nil, err
	}
	if !names.ValidRepository(repo) {
		return nil, invalid("invalid repository name %q", repo)
	}
	notFound := errorf(http.StatusNotFound, CodeNotFound, "repository %s does not exist or you may not see it", repo)
	info := s.repoInfo(repo)
	if info.Stage != "" {
		all, err := s.AppTags(ctx, info.App)
		if err != nil {
			return nil, err
		}
		tags, ok := all[info.Stage]
		if !ok {
			return nil, notFound
		}
		return tags, nil
	}
	// A repository under no stage: only its own tags.
	if !s.may(ctx, repo, actionPull) {
		return nil, notFound
	}
	states, exists, err := s.repoTags(ctx, repo)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, notFound
	}
	return s.tagInfos(ctx, repo, states, nil, false)
}

// TagDigest is what repo:tag names now; ok is false when the tag (or the
// repository) does not exist or the caller may not pull it. One read, for
// a confirmation page that needs one tag, not a whole listing.
func (s *Service) TagDigest(ctx context.Context, repo, tag string) (d digest.Digest, ok bool, err error) {
	if err := s.requireCaller(ctx); err != nil {
		return "", false, err
	}
	if !names.ValidRepository(repo) || !names.ValidTag(tag) {
		return "", false, invalid("invalid repository or tag %q:%q", repo, tag)
	}
	if !s.may(ctx, repo, actionPull) {
		return "", false, nil
	}
	st, exists, err := s.tagState(ctx, repo, tag)
	if err != nil || !exists {
		return "", false, storeError(err)
	}
	return st.Digest, true, nil
}

// AppTags describes the tags of an app's repository in every stage (the
// admin page's stages side by side), by stage name; a stage without that
// repository, or whose repository the caller may not pull, has no entry.
// Each stage's tags are read once for all of them.
func (s *Service) AppTags(ctx context.Context, app string) (map[string][]TagInfo, error) {
	if err := s.requireCaller(ctx); err != nil {
		return nil, err
	}
	if !names.ValidRepository(app) {
		return nil, invalid("invalid app name %q", app)
	}
	may, err := s.permissions(ctx)
	if err != nil {
		return nil, err
	}
	// What each stage's repository has under a tag: that is what "in
	// production" means to a person (a digest a rollback moved away from
	// stays linked, but is no longer released).
	states := map[string]map[string]registry.TagState{}
	held := map[string]map[digest.Digest]bool{}
	for _, st := range s.opts.Stages {
		repo := st.Prefix + app
		if !may(repo, actionPull) {
			continue
		}
		m, exists, err := s.repoTags(ctx, repo)
		if err != nil {
			return nil, err
		}
		if !exists {
			continue
		}
		states[st.Name] = m
		set := make(map[digest.Digest]bool, len(m))
		for _, ts := range m {
			set[ts.Digest] = true
		}
		held[st.Name] = set
	}
	out := make(map[string][]TagInfo, len(states))
	for _, st := range s.opts.Stages {
		m, ok := states[st.Name]
		if !ok {
			continue
		}
		tags, err := s.tagInfos(ctx, st.Prefix+app, m, held, len(st.PromoteFrom) > 0)
		if err != nil {
			return nil, err
		}
		out[st.Name] = tags
	}
	return out, nil
}

// repoTags reads every tag of repo with what it names (a few requests
// whatever the number of tags: registry.Metadata.TagStates); exists is
// false for a repository nothing was ever pushed or promoted to.
func (s *Service) repoTags(ctx context.Context, repo string) (map[string]registry.TagState, bool, error) {
	m, err := s.meta.TagStates(ctx, repo)
	if err != nil {
		return nil, false, storeError(err)
	}
	if len(m) == 0 {
		ok, err := s.meta.RepositoryExists(ctx, repo)
		if err != nil || !ok {
			return nil, false, storeError(err)
		}
	}
	return m, true, nil
}

// tagInfos describes repo's tags (states), in tag order; held says which
// digests each stage has under a tag.
func (s *Service) tagInfos(ctx context.Context, repo string, states map[string]registry.TagState, held map[string]map[digest.Digest]bool, promotable bool) ([]TagInfo, error) {
	names := make([]string, 0, len(states))
	for tag := range states {
		names = append(names, tag)
	}
	slices.Sort(names)
	out := make([]TagInfo, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, tag := range names {
		g.Go(func() error {
			ti, err := s.tagInfo(gctx, repo, tag, states[tag], promotable)
			if errors.Is(err, storage.ErrNotFound) {
				return nil // deleted while listing
			}
			if err != nil {
				return err
			}
			for _, st := range s.opts.Stages {
				if held[st.Name][ti.Digest] {
					ti.Stages = append(ti.Stages, st.Name)
				}
			}
			out[i] = ti
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, storeError(err)
	}
	return slices.DeleteFunc(out, func(t TagInfo) bool { return t.Tag == "" }), nil
}

func (s *Service) tagInfo(ctx context.Context, repo, tag string, st registry.TagState, promotable bool) (TagInfo, error) {
	sh, err := s.shape(ctx, repo, st.Digest, 0)
	if err != nil {
		return TagInfo{}, err
	}
	ti := TagInfo{Tag: tag, Digest: st.Digest, MediaType: sh.MediaType, Size: sh.Size, Platforms: sh.Platforms, UpdatedAt: st.ModTime.UTC(), Stages: []string{}}
	if seq, _ := seqOf(st); promotable && seq > 0 {
		// The tag names the record that wrote it: one read, no listing.
		if rec, err := s.promotedBy(ctx, chainKey(repo, tag, seq)); err == nil {
			ti.Promoted = &rec
		}
	}
	return ti, nil
}

// promotedBy reads the ledger record at key, once per process: records
// are written once (PutIfAbsent) and never replaced or deleted.
func (s *Service) promotedBy(ctx context.Context, key string) (Record, error) {
	if rec, ok := s.records.Get(key); ok {
		return rec, nil
	}
	rec, err := s.readRecord(ctx, key)
	if err == nil {
		s.records.Add(key, rec)
	}
	return rec, err
}

// shape computes (once per digest) a manifest's media type, total size
// and platforms.
func (s *Service) shape(ctx context.Context, repo string, d digest.Digest, depth int) (shape, error) {
	if sh, ok := s.shapes.Get(d); ok {
		return sh, nil
	}
	m, err := s.meta.ManifestInRepo(ctx, repo, d)
	if err != nil {
		return shape{}, err
	}
	sh := shape{MediaType: m.MediaType, Size: int64(len(m.Raw))}
	refs, err := m.References()
	if err != nil {
		s.shapes.Add(d, sh) // unparseable (an artifact type we do not know): size of the manifest only
		return sh, nil
	}
	for _, b := range refs.Blobs {
		sh.Size += b.Size
	}
	if refs.Config != nil && !slices.ContainsFunc(refs.Blobs, func(b v1.Descriptor) bool { return b.Digest == refs.Config.Digest }) {
		sh.Size += refs.Config.Size
	}
	for _, c := range refs.Children {
		if c.Platform != nil {
			sh.Platforms = append(sh.Platforms, platformString(*c.Platform))
		}
		if depth < maxDepth {
			if cs, err := s.shape(ctx, repo, c.Digest, depth+1); err == nil {
				sh.Size += cs.Size
			}
		}
	}
	if refs.Config != nil && len(refs.Children) == 0 && refs.Config.Size <= 1<<20 && isImageConfig(refs.Config.MediaType) {
		if b, err := s.meta.ReadBlob(ctx, refs.Config.Digest, 1<<20); err == nil {
			var p v1.Platform
			if json.Unmarshal(b, &p) == nil && p.OS != "" {
				sh.Platforms = []string{platformString(p)}
			}
		}
	}
	s.shapes.Add(d, sh)
	return sh, nil
}

func isImageConfig(mt string) bool {
	return mt == v1.MediaTypeImageConfig || mt == "application/vnd.docker.container.image.v1+json"
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}
