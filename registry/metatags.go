package registry

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// A tag object holds the digest it names, optionally followed by a stamp
// line: "<digest>" or "<digest>\n<stamp>\n". The registry reads only the
// digest. The stamp belongs to whoever wrote the tag with SetTag (the
// promotion service) and is opaque here: it exists so that two writes of
// the same digest are different bytes, because on S3 an ETag is a hash
// of the bytes and a compare-and-set on the ETag (SetTag) cannot tell two
// writes of the same bytes apart. A /v2/ push writes no stamp.
const maxTagObject = 256

// maxStamp bounds a stamp (a digest takes at most 7+128 of maxTagObject).
const maxStamp = 64

// TagState is a tag as stored: the digest it names, the stamp of its
// writer ("" for a /v2/ push), and the version to compare against when
// replacing it.
type TagState struct {
	Digest  digest.Digest
	Stamp   string
	ETag    string
	ModTime time.Time
}

// parseTag reads a tag object (see maxTagObject for its format).
func parseTag(b []byte) (d digest.Digest, stamp string, err error) {
	first, rest, _ := strings.Cut(string(b), "\n")
	if d, err = digest.Parse(strings.TrimSpace(first)); err != nil {
		return "", "", err
	}
	return d, strings.TrimSpace(rest), nil
}

// tagStateOf is the state of a tag object read from the store with info;
// key names it in errors.
func tagStateOf(key string, b []byte, info storage.Info) (TagState, error) {
	d, stamp, err := parseTag(b)
	if err != nil {
		return TagState{}, fmt.Errorf("tag %s is corrupt: %w", key, err)
	}
	return TagState{Digest: d, Stamp: stamp, ETag: info.ETag, ModTime: info.ModTime}, nil
}

// tag resolves a tag to a digest: a read of the store that began after
// the call did, shared with concurrent calls for the same tag (readGroup).
func (m *Metadata) tag(ctx context.Context, name, tag string) (digest.Digest, error) {
	return m.tags.do(ctx, tagKey(name, tag))
}

func (m *Metadata) readTag(ctx context.Context, key string) (digest.Digest, error) {
	b, info, err := m.readSmall(ctx, key, maxTagObject)
	if err != nil {
		return "", err
	}
	st, err := tagStateOf(key, b, info)
	return st.Digest, err
}

// Tag reads a tag (storage.ErrNotFound when absent).
func (m *Metadata) Tag(ctx context.Context, repo, tag string) (TagState, error) {
	key := tagKey(repo, tag)
	b, info, err := m.readSmall(ctx, key, maxTagObject)
	if err != nil {
		return TagState{}, err
	}
	return tagStateOf(key, b, info)
}

// setTag points a tag at d, whatever it named before (a /v2/ push). The
// manifest must already be linked in the repository. The tag is then
// protected (protectTag).
func (m *Metadata) setTag(ctx context.Context, name, tag string, d digest.Digest) error {
	b := []byte(d.String())
	info, err := m.store.Put(ctx, tagKey(name, tag), bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return err
	}
	return m.protectTag(ctx, name, tag, d, info.ETag)
}

// SetTag writes repo:tag → d with the caller's stamp (see maxTagObject;
// "" for none), only if the tag is still at version etag ("": only if it
// does not exist). Losing that race is storage.ErrPreconditionFailed. The
// manifest must already be linked in repo (LinkManifest; a tag never
// names a manifest its repository lacks — Verify checks it). The tag is
// then protected (protectTag): a manifest being garbage-collected is
// storage.ErrNotFound (and tombstone.ErrCollected).
func (m *Metadata) SetTag(ctx context.Context, repo, tag string, d digest.Digest, stamp, etag string) error {
	if !names.ValidTag(tag) {
		return fmt.Errorf("invalid tag %q", tag)
	}
	if len(stamp) > maxStamp || strings.ContainsAny(stamp, "\r\n\t ") {
		return fmt.Errorf("invalid tag stamp %q", stamp)
	}
	b := []byte(d.String())
	if stamp != "" {
		b = []byte(d.String() + "\n" + stamp + "\n")
	}
	var info storage.Info
	var err error
	if etag == "" {
		info, err = m.store.PutIfAbsent(ctx, tagKey(repo, tag), bytes.NewReader(b), int64(len(b)))
	} else {
		info, err = m.store.PutIfMatch(ctx, tagKey(repo, tag), bytes.NewReader(b), int64(len(b)), etag)
	}
	if err != nil {
		return err
	}
	if err := m.protectTag(ctx, repo, tag, d, info.ETag); err != nil {
		return fmt.Errorf("%w: %w", storage.ErrNotFound, err)
	}
	return nil
}

// protectTag runs after a write of repo:tag → d (version written): it
// protects the manifest's tree from garbage collection (protectManifest),
// since the tag may have been written after the collector's second look
// decided the manifest was garbage. When that fails with ErrCollected an
// object of the tree is going away, and the tag names a manifest that
// cannot be pulled; left there it would fail every pull, forever, and be
// a root naming something broken. So it is deleted, once the deletion
// finished, if it is still the version this call wrote and the collected
// object is still absent:
//   - every other write of tag → d since the collector listed the
//     repository is a failing writer's too (a successful one would have
//     rescued the object), except a re-push that re-created the object
//     after its deletion; such a push writes the object before the tag,
//     so the absence check, made after the version check, sees it and
//     keeps the tag;
//   - a write of the tag to another digest changes the version (a /v2/
//     write of the same bytes may keep the ETag on S3: then it names d
//     and is one of the cases above);
//   - the store has no conditional delete: a write landing between the
//     checks and the delete is undone. That window is one round trip, in
//     a path that only a collection racing a write of this very tag
//     reaches; it loses a tag write, never a blob a tag relies on.
func (m *Metadata) protectTag(ctx context.Context, repo, tag string, d digest.Digest, written string) error {
	err := m.protectManifest(ctx, repo, d)
	ce, collected := collectedKey(err)
	if !collected {
		return err
	}
	cleanup := context.WithoutCancel(ctx)
	if gone, werr := tombstone.AwaitGone(cleanup, m.store, ce.Key, awaitDeletion, awaitPoll); werr != nil || !gone {
		return err
	}
	st, rerr := m.Tag(cleanup, repo, tag)
	if rerr != nil || st.Digest != d || st.ETag != written {
		return err
	}
	if back, xerr := m.exists(cleanup, ce.Key); xerr != nil || back {
		return err
	}
	_ = m.deleteTag(cleanup, repo, tag)
	return err
}

// deleteTag removes a tag.
func (m *Metadata) deleteTag(ctx context.Context, name, tag string) error {
	return m.store.Delete(ctx, tagKey(name, tag))
}

// untag removes every tag of the repository that names d.
func (m *Metadata) untag(ctx context.Context, name string, d digest.Digest) error {
	keys, _, err := m.listKeys(ctx, tagsPrefix(name), "", 0)
	if err != nil {
		return err
	}
	for _, k := range keys {
		b, _, err := m.readSmall(ctx, k, maxTagObject)
		if err != nil {
			continue
		}
		if td, _, err := parseTag(b); err == nil && td == d {
			if err := m.store.Delete(ctx, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// tagPage lists up to n of a repository's tags in order, after the tag
// last ("" : from the first); more tells whether others follow.
func (m *Metadata) tagPage(ctx context.Context, name, last string, n int) (tags []string, more bool, err error) {
	prefix := tagsPrefix(name)
	startAfter := ""
	if last != "" {
		startAfter = prefix + last
	}
	keys, more, err := m.listKeys(ctx, prefix, startAfter, n)
	if err != nil {
		return nil, false, err
	}
	tags = make([]string, len(keys))
	for i, k := range keys {
		tags[i] = strings.TrimPrefix(k, prefix)
	}
	return tags, more, nil
}

// Tags lists repo's tags in order (all of them).
func (m *Metadata) Tags(ctx context.Context, repo string) ([]string, error) {
	return m.TagsWithPrefix(ctx, repo, "")
}

// TagsWithPrefix lists repo's tags that start with prefix (one listing:
// cosign's sha256-<hex>.sig/.att/.sbom tags of a digest).
func (m *Metadata) TagsWithPrefix(ctx context.Context, repo, prefix string) ([]string, error) {
	base := tagsPrefix(repo)
	keys, _, err := m.listKeys(ctx, base+prefix, "", 0)
	if err != nil {
		return nil, err
	}
	tags := make([]string, len(keys))
	for i, k := range keys {
		tags[i] = strings.TrimPrefix(k, base)
	}
	return tags, nil
}
