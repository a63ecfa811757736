package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/storage"
)

// TagStates reads every tag of repo with what it names: one listing of
// the tag journal, one Stat of the tag index (a GET when it changed since
// this process last read it), and one read per tag with a journal record,
// whatever the number of tags. A repository without an index yet (never
// read this way) is read tag by tag once and its index written.
//
// Consistency: every tag write that completed before the call began is
// reflected. The journal is listed first, then the index read (order
// matters). A completed write whose record the listing shows is read
// again here, after the listing. A completed write whose record the
// listing does not show had its record deleted before the listing, and a
// record is deleted only after an index version that holds the tag's
// content read after the write completed was stored with compare-and-set
// (tagjournal.go). The index read here began after that store, and every
// later index version was built on it by compare-and-set, re-reading each
// tag it changes after its own journal listing: so the index read here
// holds that write's content or a newer one. Listings and reads after
// writes are strongly consistent on the stores Slipway supports (S3,
// MinIO, the file system); an object's ETag changes whenever its content
// changes (storage.Info), which is what makes caching the index by ETag
// safe.
//
// Every writer must journal: a tag written around it (by hand, or by a
// replica of a release before the journal during a rolling upgrade) is
// not seen here until that tag is written again through a registry, or
// repositories/<name>/_tagindex/tags is deleted (the next read rebuilds
// it from the tags themselves).
func (md *Metadata) TagStates(ctx context.Context, repo string) (map[string]TagState, error) {
	return md.tagIndex.read(ctx, md, repo, nil)
}

// TagStatesListed is TagStates on a listing of repo the caller made: the
// keys under its _tags/, _tagjournal/ and _tagindex/ (other keys are
// ignored), as the collector's walk of every repository lists them. The
// journal records, the index's ETag and, without an index, the tag keys
// come from it, so no list and no Stat is sent. Consistency is TagStates',
// with "before the call began" read as "before the listing began": the
// listing shows the journal and the index as they were at one time, which
// is all the argument above uses (the index version it shows holds every
// write whose record it does not show).
func (md *Metadata) TagStatesListed(ctx context.Context, repo string, listing []storage.Info) (map[string]TagState, error) {
	if listing == nil {
		listing = []storage.Info{}
	}
	return md.tagIndex.read(ctx, md, repo, listing)
}

// tagListing is what TagStates needs of a repository's listing.
type tagListing struct {
	journal []storage.Info // records under _tagjournal/
	tags    []string       // tag names under _tags/
	index   *storage.Info  // _tagindex/tags, nil if absent
}

func newTagListing(repo string, objs []storage.Info) *tagListing {
	l := &tagListing{}
	jp, tp, ik := journalPrefix(repo), tagsPrefix(repo), tagIndexKey(repo)
	for i, o := range objs {
		switch {
		case strings.HasPrefix(o.Key, jp):
			l.journal = append(l.journal, o)
		case strings.HasPrefix(o.Key, tp):
			l.tags = append(l.tags, strings.TrimPrefix(o.Key, tp))
		case o.Key == ik:
			l.index = &objs[i]
		}
	}
	return l
}

// indexEntry is one tag as the index holds it: the tag object's bytes
// (parsed only by parseTag), its ETag and modification time.
type indexEntry struct {
	Raw  string    `json:"raw"`
	ETag string    `json:"etag"`
	Mod  time.Time `json:"mod"`
}

type indexFile struct {
	Tags map[string]indexEntry `json:"tags"`
}

// parsedIndex is an index version as stored (entries) and parsed
// (states); neither map is modified once cached.
type parsedIndex struct {
	etag    string
	entries map[string]indexEntry
	states  map[string]TagState
}

// tagIndexes caches the last index version read of a few repositories,
// keyed by repository and checked against the stored ETag on every read.
type tagIndexes struct {
	cache *lru.Cache[string, *parsedIndex]
}

func newTagIndexes() *tagIndexes {
	c, _ := lru.New[string, *parsedIndex](16)
	return &tagIndexes{cache: c}
}

// read reads repo's tags; listed (nil: list here) is the caller's
// listing of the repository.
func (t *tagIndexes) read(ctx context.Context, m *Metadata, repo string, listed []storage.Info) (map[string]TagState, error) {
	var l *tagListing
	var recs []storage.Info
	if listed != nil {
		l = newTagListing(repo, listed)
		recs = l.journal
	} else {
		var err error
		if recs, err = listAll(ctx, m.store, journalPrefix(repo)); err != nil {
			return nil, err
		}
	}
	idx, err := t.load(ctx, m.store, repo, l)
	if err != nil {
		return nil, err
	}
	var changed map[string]*indexEntry
	switch {
	case idx == nil && l != nil:
		changed, err = readTagObjects(ctx, m, repo, l.tags)
	case idx == nil:
		changed, err = readTagKeys(ctx, m, repo)
	default:
		changed, err = readJournalTags(ctx, m, repo, recs)
	}
	if err != nil {
		return nil, err
	}
	base := idx
	if base == nil {
		base = &parsedIndex{} // nothing stored: changed holds every tag
	}
	out, err := overlay(base.states, changed, func(tag string, e indexEntry) (TagState, error) { return entryState(repo, tag, e) })
	if err != nil {
		return nil, err
	}
	var done []string
	for _, r := range recs {
		if r.Size == int64(len(journalDone)) {
			done = append(done, r.Key)
		}
	}
	// A repository without tags gets no index: listing it is as cheap.
	if (idx == nil && len(changed) > 0) || len(done) > 0 {
		t.fold(ctx, m.store, m.unjournaled, repo, idx == nil, base, changed, out, done)
	}
	return out, nil
}

// fold stores a new index version (the one read, idx, with changed; the
// first version when fresh) by compare-and-set and, once stored, deletes
// the done records listed before idx was read (through batch: not tag
// keys, so the journal need not see them, and many per request). Losing the race or failing
// leaves the journal as it was: the next reader folds it.
func (t *tagIndexes) fold(ctx context.Context, store, batch storage.Store, repo string, fresh bool, idx *parsedIndex, changed map[string]*indexEntry, states map[string]TagState, done []string) {
	entries, _ := overlay(idx.entries, changed, func(_ string, e indexEntry) (indexEntry, error) { return e, nil })
	b, err := json.Marshal(indexFile{Tags: entries})
	if err != nil {
		return
	}
	var info storage.Info
	if fresh {
		info, err = store.PutIfAbsent(ctx, tagIndexKey(repo), bytes.NewReader(b), int64(len(b)))
	} else {
		info, err = store.PutIfMatch(ctx, tagIndexKey(repo), bytes.NewReader(b), int64(len(b)), idx.etag)
	}
	if err != nil {
		return
	}
	t.cache.Add(repo, &parsedIndex{etag: info.ETag, entries: entries, states: maps.Clone(states)})
	_ = storage.DeleteAll(ctx, batch, done, 16)
}

// load returns the stored index (nil if there is none), from the cache
// when its ETag is still the stored one: Stat-ed here, or as l (the
// caller's listing, when not nil) shows it.
func (t *tagIndexes) load(ctx context.Context, store storage.Store, repo string, l *tagListing) (*parsedIndex, error) {
	key := tagIndexKey(repo)
	var info storage.Info
	var err error
	switch {
	case l != nil && l.index == nil:
		return nil, nil
	case l != nil:
		info = *l.index
	default:
		info, err = store.Stat(ctx, key)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if c, ok := t.cache.Get(repo); ok && c.etag == info.ETag {
		return c, nil
	}
	rc, info, err := store.Get(ctx, key, storage.GetOptions{})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var f indexFile
	if err := json.NewDecoder(rc).Decode(&f); err != nil {
		return nil, fmt.Errorf("tag index of %s is corrupt: %w", repo, err)
	}
	p := &parsedIndex{etag: info.ETag, entries: f.Tags, states: make(map[string]TagState, len(f.Tags))}
	if p.entries == nil {
		p.entries = map[string]indexEntry{}
	}
	for tag, e := range p.entries {
		if p.states[tag], err = entryState(repo, tag, e); err != nil {
			return nil, err
		}
	}
	t.cache.Add(repo, p)
	return p, nil
}

// overlay returns a copy of base with the changed tags replaced (nil:
// removed), each converted by conv.
func overlay[V any](base map[string]V, changed map[string]*indexEntry, conv func(string, indexEntry) (V, error)) (map[string]V, error) {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]V{}
	}
	for tag, e := range changed {
		if e == nil {
			delete(out, tag)
			continue
		}
		v, err := conv(tag, *e)
		if err != nil {
			return nil, err
		}
		out[tag] = v
	}
	return out, nil
}

// entryState is the state of a tag as the index holds it.
func entryState(repo, tag string, e indexEntry) (TagState, error) {
	return tagStateOf(tagKey(repo, tag), []byte(e.Raw), storage.Info{ETag: e.ETag, ModTime: e.Mod})
}

// readJournalTags reads the tags the journal records name (nil: deleted).
func readJournalTags(ctx context.Context, m *Metadata, repo string, recs []storage.Info) (map[string]*indexEntry, error) {
	prefix := journalPrefix(repo)
	var tags []string
	seen := map[string]bool{}
	for _, r := range recs {
		tag, _, ok := strings.Cut(strings.TrimPrefix(r.Key, prefix), "/")
		if ok && !seen[tag] {
			seen[tag] = true
			tags = append(tags, tag)
		}
	}
	return readTagObjects(ctx, m, repo, tags)
}

// readTagKeys reads every tag of repo, one read per tag: the index is
// built from it once.
func readTagKeys(ctx context.Context, m *Metadata, repo string) (map[string]*indexEntry, error) {
	base := tagsPrefix(repo)
	objs, err := listAll(ctx, m.store, base)
	if err != nil {
		return nil, err
	}
	tags := make([]string, len(objs))
	for i, o := range objs {
		tags[i] = strings.TrimPrefix(o.Key, base)
	}
	return readTagObjects(ctx, m, repo, tags)
}

func readTagObjects(ctx context.Context, m *Metadata, repo string, tags []string) (map[string]*indexEntry, error) {
	got := make([]*indexEntry, len(tags))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, tag := range tags {
		g.Go(func() error {
			b, info, err := m.readSmall(gctx, tagKey(repo, tag), 256)
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			got[i] = &indexEntry{Raw: string(b), ETag: info.ETag, Mod: info.ModTime}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[string]*indexEntry, len(tags))
	for i, tag := range tags {
		out[tag] = got[i]
	}
	return out, nil
}

// listAll lists every object under prefix.
func listAll(ctx context.Context, store storage.Store, prefix string) ([]storage.Info, error) {
	var out []storage.Info
	err := storage.Walk(ctx, store, prefix, func(o storage.Info) error {
		out = append(out, o)
		return nil
	})
	return out, err
}
