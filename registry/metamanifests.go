package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/distribution/v3"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/storage"
)

// Manifest is a stored manifest: its digest, the media type it was pushed
// with and its exact bytes. Stored as "<media type>\n" + bytes under
// manifestKey (immutable, content-addressed).
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Raw       []byte
}

// ErrNotManifest: a digest names a blob, not a manifest.
var ErrNotManifest = errors.New("registry: not a manifest")

// References are what a manifest points at: for an index its child
// manifests, for an image its config and layers (non-distributable layers
// excluded: they are not stored here). Subject is the manifest it refers
// to, if any.
type References struct {
	Children []v1.Descriptor
	Blobs    []v1.Descriptor
	Subject  *v1.Descriptor
	Config   *v1.Descriptor
}

// References parses the manifest with distribution's schema packages.
func (m Manifest) References() (References, error) {
	var out References
	parsed, _, err := distribution.UnmarshalManifest(m.MediaType, m.Raw)
	if err != nil {
		return out, fmt.Errorf("manifest %s: %w", m.Digest, err)
	}
	var f manifestFields
	if err := json.Unmarshal(m.Raw, &f); err != nil {
		return out, fmt.Errorf("manifest %s: %w", m.Digest, err)
	}
	out.Subject, out.Config = f.Subject, f.Config
	index := indexTypes[m.MediaType]
	for _, ref := range parsed.References() {
		d := v1.Descriptor{MediaType: ref.MediaType, Digest: ref.Digest, Size: ref.Size, Platform: ref.Platform}
		switch {
		case index:
			out.Children = append(out.Children, d)
		case nonDistributable[ref.MediaType]:
		default:
			out.Blobs = append(out.Blobs, d)
		}
	}
	return out, nil
}

// manifest returns a stored manifest by digest (any repository).
func (m *Metadata) manifest(ctx context.Context, d digest.Digest) (Manifest, error) {
	if man, ok := m.manifests.Get(d); ok {
		return man, nil
	}
	b, _, err := m.readSmall(ctx, manifestKey(d), maxManifestSize+1024)
	if err != nil {
		return Manifest{}, err
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return Manifest{}, fmt.Errorf("manifest record %s is corrupt", d)
	}
	man := Manifest{Digest: d, MediaType: string(b[:i]), Raw: b[i+1:]}
	if len(man.Raw) <= maxCachedManifest {
		m.manifests.Add(d, man)
	}
	return man, nil
}

// ManifestInRepo returns a manifest linked in repository name
// (storage.ErrNotFound when it is not).
func (m *Metadata) ManifestInRepo(ctx context.Context, name string, d digest.Digest) (Manifest, error) {
	if _, err := m.store.Stat(ctx, manifestLinkKey(name, d)); err != nil {
		return Manifest{}, err
	}
	return m.manifest(ctx, d)
}

// HasManifest reports whether repo links manifest d.
func (m *Metadata) HasManifest(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	return m.exists(ctx, manifestLinkKey(repo, d))
}

// resolve finds the manifest that tag (or, when tag is "", digest d) names
// in repository name; storage.ErrNotFound when there is none.
func (m *Metadata) resolve(ctx context.Context, name, tag string, d digest.Digest) (Manifest, error) {
	if tag == "" {
		return m.ManifestInRepo(ctx, name, d)
	}
	d, err := m.tag(ctx, name, tag)
	if err != nil {
		return Manifest{}, err
	}
	// A tag always names a manifest linked in its repository: the link is
	// written before the tag, and a delete removes the tags before the
	// link (Verify checks it). So a tag read is the only read of mutable
	// state a pull by tag needs; the record is immutable and cached.
	return m.manifest(ctx, d)
}

// Resolve finds the manifest a reference (tag or digest) names in a
// repository. A missing tag or manifest is storage.ErrNotFound; a digest
// of a blob of the repository is ErrNotManifest.
func (m *Metadata) Resolve(ctx context.Context, repo, ref string) (Manifest, error) {
	tag, d, err := parseRef(ref)
	if err != nil {
		return Manifest{}, err
	}
	man, err := m.resolve(ctx, repo, tag, d)
	if errors.Is(err, storage.ErrNotFound) {
		if d != "" {
			if _, berr := m.blobInRepo(ctx, repo, d); berr == nil {
				return Manifest{}, ErrNotManifest
			}
		}
		return Manifest{}, fmt.Errorf("%s:%s: %w", repo, ref, storage.ErrNotFound)
	}
	return man, err
}

// LinkManifest adds a manifest to repo: its record (kept if it exists:
// same digest, same bytes), its link, the catalog entry, and its referrer
// index entry when it has a subject — in that order, the crash story of
// paths.go. Everything it references must already be in repo (link it
// first, children before parents): that is /v2/'s invariant that a linked
// manifest can be served whole, which Verify checks. The /v2/ PUT checks
// it before calling; promotion has just linked those, and a check here
// would cost a request per reference.
func (m *Metadata) LinkManifest(ctx context.Context, repo string, man Manifest) error {
	var f manifestFields
	if err := json.Unmarshal(man.Raw, &f); err != nil {
		return fmt.Errorf("manifest %s: %w", man.Digest, err)
	}
	if f.Subject != nil {
		if err := f.Subject.Digest.Validate(); err != nil {
			return fmt.Errorf("manifest %s: subject: %w", man.Digest, err)
		}
	}
	return m.linkManifest(ctx, repo, man, &f)
}

// linkManifest is LinkManifest with the manifest's fields already parsed.
// After its writes it protects, from garbage collection, the record (when
// it existed before), the link, the referrer entry and the whole tree the
// manifest references in repo (manifestTreeKeys). Its own objects, if
// being deleted, are waited for and written again (recoverCollected); a
// referenced blob or child being collected is an error wrapping
// tombstone.ErrCollected, and the manifest stays linked but untagged
// (callers write no tag then), for the collector to free: unlinking it
// could undo a concurrent push of the same manifest that succeeded.
func (m *Metadata) linkManifest(ctx context.Context, repo string, man Manifest, f *manifestFields) error {
	own := map[string]bool{manifestKey(man.Digest): true, manifestLinkKey(repo, man.Digest): true}
	if f.Subject != nil {
		own[referrerKey(repo, f.Subject.Digest, man.Digest)] = true
	}
	for attempt := 0; ; attempt++ {
		created, err := m.writeManifest(ctx, repo, man, f)
		if err != nil {
			return err
		}
		err = m.guard.ProtectFunc(ctx, func() ([]string, error) {
			return m.linkedManifestKeys(ctx, repo, man, f, created)
		})
		if err == nil {
			return nil
		}
		if err := m.recoverCollected(ctx, err, attempt, func(k string) bool { return own[k] }); err != nil {
			return err
		}
	}
}

// linkedManifestKeys is what linkManifest protects: the manifest's own
// objects (its record only when this request did not create it: a new
// one is younger than the collector's grace), then its references' trees.
func (m *Metadata) linkedManifestKeys(ctx context.Context, repo string, man Manifest, f *manifestFields, created bool) ([]string, error) {
	keys := []string{manifestLinkKey(repo, man.Digest)}
	if !created {
		keys = append(keys, manifestKey(man.Digest))
	}
	if f.Subject != nil {
		keys = append(keys, referrerKey(repo, f.Subject.Digest, man.Digest))
	}
	refs, err := man.References()
	if err != nil {
		return nil, err
	}
	keys = append(keys, blobKeys(repo, refs.Blobs)...)
	seen := map[digest.Digest]bool{man.Digest: true}
	for _, c := range refs.Children {
		ck, err := m.manifestTreeKeys(ctx, repo, c.Digest, 1, seen)
		if err != nil {
			return nil, err
		}
		keys = append(keys, ck...)
	}
	return keys, nil
}

// writeManifest writes a manifest's record (put-if-absent; created tells
// whether this call wrote it), link, catalog entry and referrer entry.
func (m *Metadata) writeManifest(ctx context.Context, repo string, man Manifest, f *manifestFields) (created bool, err error) {
	if strings.ContainsRune(man.MediaType, '\n') {
		return false, fmt.Errorf("media type contains a newline")
	}
	b := make([]byte, 0, len(man.MediaType)+1+len(man.Raw))
	b = append(append(append(b, man.MediaType...), '\n'), man.Raw...)
	_, err = m.store.PutIfAbsent(ctx, manifestKey(man.Digest), bytes.NewReader(b), int64(len(b)))
	if err != nil && !errors.Is(err, storage.ErrPreconditionFailed) {
		return false, err
	}
	created = err == nil
	if err := m.putSmall(ctx, manifestLinkKey(repo, man.Digest), nil); err != nil {
		return created, err
	}
	if err := m.AddRepository(ctx, repo); err != nil {
		return created, err
	}
	if f.Subject == nil {
		return created, nil
	}
	desc := v1.Descriptor{
		MediaType:    man.MediaType,
		Digest:       man.Digest,
		Size:         int64(len(man.Raw)),
		ArtifactType: f.ArtifactType,
		Annotations:  f.Annotations,
	}
	if desc.ArtifactType == "" && f.Config != nil {
		desc.ArtifactType = f.Config.MediaType
	}
	rb, _ := json.Marshal(desc)
	return created, m.putSmall(ctx, referrerKey(repo, f.Subject.Digest, man.Digest), rb)
}

// unlinkManifest removes a manifest from a repository: its referrer index
// entry, then its link. The caller removes the tags naming it first, so no
// tag is ever left pointing at an unlinked manifest.
func (m *Metadata) unlinkManifest(ctx context.Context, name string, man Manifest) error {
	var f manifestFields
	if json.Unmarshal(man.Raw, &f) == nil && f.Subject != nil && f.Subject.Digest.Validate() == nil {
		if err := m.store.Delete(ctx, referrerKey(name, f.Subject.Digest, man.Digest)); err != nil {
			return err
		}
	}
	return m.store.Delete(ctx, manifestLinkKey(name, man.Digest))
}

// referrers reads the referrer index of subject d in repository name;
// corrupt lists the index entries that do not parse. An entry deleted
// while it is read is left out.
func (m *Metadata) referrers(ctx context.Context, name string, d digest.Digest) (descs []v1.Descriptor, corrupt []string, err error) {
	keys, _, err := m.listKeys(ctx, referrersPrefix(name, d), "", 0)
	if err != nil {
		return nil, nil, err
	}
	descs = make([]v1.Descriptor, 0, len(keys))
	for _, k := range keys {
		b, _, err := m.readSmall(ctx, k, 1<<20)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		var desc v1.Descriptor
		if err := json.Unmarshal(b, &desc); err != nil {
			corrupt = append(corrupt, k)
			continue
		}
		descs = append(descs, desc)
	}
	return descs, corrupt, nil
}

// Referrers lists the manifests of repo whose subject is d; a corrupt
// index entry is an error.
func (m *Metadata) Referrers(ctx context.Context, repo string, d digest.Digest) ([]v1.Descriptor, error) {
	descs, corrupt, err := m.referrers(ctx, repo, d)
	if err == nil && len(corrupt) > 0 {
		err = fmt.Errorf("referrer %s is corrupt", corrupt[0])
	}
	return descs, err
}
