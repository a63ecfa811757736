package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/storage"
)

// Metadata is the registry's metadata layer for in-process users (the
// promotion service): manifests, repository links, tags and referrers,
// with the same keys, caches and write order as /v2/. Nothing here moves
// blob data.
type Metadata struct {
	r *Registry
	m *meta
}

// Metadata returns the registry's metadata layer.
func (r *Registry) Metadata() *Metadata { return &Metadata{r: r, m: r.meta} }

// Manifest is a stored manifest: its digest, media type and exact bytes.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Raw       []byte
}

// ErrNotManifest: a digest names a blob, not a manifest.
var ErrNotManifest = errors.New("registry: not a manifest")

// IsIndex reports whether the manifest lists other manifests.
func (m Manifest) IsIndex() bool { return indexTypes[m.MediaType] }

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
	for _, ref := range parsed.References() {
		d := v1.Descriptor{MediaType: ref.MediaType, Digest: ref.Digest, Size: ref.Size, Platform: ref.Platform}
		switch {
		case m.IsIndex():
			out.Children = append(out.Children, d)
		case nonDistributable[ref.MediaType]:
		default:
			out.Blobs = append(out.Blobs, d)
		}
	}
	return out, nil
}

// Resolve finds the manifest a reference (tag or digest) names in a
// repository. A missing tag or manifest is storage.ErrNotFound; a digest
// of a blob of the repository is ErrNotManifest.
func (md *Metadata) Resolve(ctx context.Context, repo, ref string) (Manifest, error) {
	rec, err := md.r.resolve(ctx, repo, ref)
	var ae *apiError
	if errors.As(err, &ae) {
		if _, d, perr := parseRef(ref); perr == nil && d != "" {
			if _, berr := md.m.blobInRepo(ctx, repo, d); berr == nil {
				return Manifest{}, ErrNotManifest
			}
		}
		if ae.status == http.StatusNotFound {
			return Manifest{}, fmt.Errorf("%s:%s: %w", repo, ref, storage.ErrNotFound)
		}
		return Manifest{}, err
	}
	if err != nil {
		return Manifest{}, err
	}
	return Manifest{Digest: rec.Digest, MediaType: rec.MediaType, Raw: rec.Raw}, nil
}

// ManifestInRepo returns a manifest linked in repo.
func (md *Metadata) ManifestInRepo(ctx context.Context, repo string, d digest.Digest) (Manifest, error) {
	rec, err := md.m.manifestInRepo(ctx, repo, d)
	if err != nil {
		return Manifest{}, err
	}
	return Manifest{Digest: rec.Digest, MediaType: rec.MediaType, Raw: rec.Raw}, nil
}

// HasManifest reports whether repo links manifest d.
func (md *Metadata) HasManifest(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	_, err := md.m.store.Stat(ctx, manifestLinkKey(repo, d))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// LinkBlob makes a blob the registry already holds part of repo. Only the
// small link object is written; a blob the registry lacks is
// storage.ErrNotFound. Call AddRepository for repo first: LinkBlob leaves
// the catalog alone, so that many links written at once do not all race
// to create the same catalog entry.
func (md *Metadata) LinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	if _, err := md.m.blob(ctx, d); err != nil {
		return err
	}
	if _, err := md.m.store.Stat(ctx, blobLinkKey(repo, d)); err == nil {
		return nil
	}
	return md.m.putSmall(ctx, blobLinkKey(repo, d), nil)
}

// AddRepository records repo in the catalog (once; an existing entry is
// fine).
func (md *Metadata) AddRepository(ctx context.Context, repo string) error {
	return md.m.addToCatalog(ctx, repo)
}

// LinkManifest adds a manifest the registry already stores (in any
// repository) to repo, with its referrer index entry when it has a
// subject. Everything it references must already be in repo (link it
// first, children before parents): that is /v2/'s invariant that a linked
// manifest can be served whole, which Verify checks. It is not re-checked
// here: the caller has just linked those, and a check would cost a
// request per reference.
func (md *Metadata) LinkManifest(ctx context.Context, repo string, m Manifest) error {
	var f manifestFields
	if err := json.Unmarshal(m.Raw, &f); err != nil {
		return fmt.Errorf("manifest %s: %w", m.Digest, err)
	}
	rec := &manifestRecord{Digest: m.Digest, MediaType: m.MediaType, Raw: m.Raw}
	if err := md.m.putManifest(ctx, rec); err != nil {
		return err
	}
	if err := md.m.linkManifest(ctx, repo, m.Digest); err != nil {
		return err
	}
	if f.Subject != nil {
		if err := f.Subject.Digest.Validate(); err != nil {
			return fmt.Errorf("manifest %s: subject: %w", m.Digest, err)
		}
		return md.r.putReferrer(ctx, repo, rec, &f)
	}
	return nil
}

// Referrers lists the manifests of repo whose subject is d.
func (md *Metadata) Referrers(ctx context.Context, repo string, d digest.Digest) ([]v1.Descriptor, error) {
	keys, _, err := md.m.listKeys(ctx, referrersPrefix(repo, d), "", 0)
	if err != nil {
		return nil, err
	}
	out := make([]v1.Descriptor, 0, len(keys))
	for _, k := range keys {
		b, _, err := md.m.readSmall(ctx, k, 1<<20)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var desc v1.Descriptor
		if err := json.Unmarshal(b, &desc); err != nil {
			return nil, fmt.Errorf("referrer %s: %w", k, err)
		}
		out = append(out, desc)
	}
	return out, nil
}

// TagState is a tag as stored: the digest it names, the ledger sequence
// number of the promotion that wrote it (0 for a push), and the version
// to compare against when replacing it.
type TagState struct {
	Digest  digest.Digest
	Seq     int64
	ETag    string
	ModTime time.Time
}

// Tag reads a tag (storage.ErrNotFound when absent).
func (md *Metadata) Tag(ctx context.Context, repo, tag string) (TagState, error) {
	b, info, err := md.m.readSmall(ctx, tagKey(repo, tag), 256)
	if err != nil {
		return TagState{}, err
	}
	d, seq, err := parseTag(b)
	if err != nil {
		return TagState{}, fmt.Errorf("tag %s:%s is corrupt: %w", repo, tag, err)
	}
	return TagState{Digest: d, Seq: seq, ETag: info.ETag, ModTime: info.ModTime}, nil
}

// SetTag writes repo:tag → d with the ledger sequence number seq, only if
// the tag is still at version etag ("" : only if it does not exist).
// Losing that race is storage.ErrPreconditionFailed. The manifest must
// already be linked in repo (LinkManifest; a tag never names a manifest
// its repository lacks — Verify checks it).
func (md *Metadata) SetTag(ctx context.Context, repo, tag string, d digest.Digest, seq int64, etag string) error {
	if !tagPattern.MatchString(tag) {
		return fmt.Errorf("invalid tag %q", tag)
	}
	b := []byte(d.String() + "\n" + strconv.FormatInt(seq, 10) + "\n")
	var err error
	if etag == "" {
		_, err = md.m.store.PutIfAbsent(ctx, tagKey(repo, tag), bytes.NewReader(b), int64(len(b)))
	} else {
		_, err = md.m.store.PutIfMatch(ctx, tagKey(repo, tag), bytes.NewReader(b), int64(len(b)), etag)
	}
	return err
}

// Tags lists repo's tags in order (all of them).
func (md *Metadata) Tags(ctx context.Context, repo string) ([]string, error) {
	return md.TagsWithPrefix(ctx, repo, "")
}

// TagsWithPrefix lists repo's tags that start with prefix (one listing:
// cosign's sha256-<hex>.sig/.att/.sbom tags of a digest).
func (md *Metadata) TagsWithPrefix(ctx context.Context, repo, prefix string) ([]string, error) {
	base := tagsPrefix(repo)
	keys, _, err := md.m.listKeys(ctx, base+prefix, "", 0)
	if err != nil {
		return nil, err
	}
	tags := make([]string, len(keys))
	for i, k := range keys {
		tags[i] = strings.TrimPrefix(k, base)
	}
	return tags, nil
}

// Manifests lists the digests of the manifests linked in repo.
func (md *Metadata) Manifests(ctx context.Context, repo string) ([]digest.Digest, error) {
	prefix := repoKey(repo) + "_manifests/"
	keys, _, err := md.m.listKeys(ctx, prefix, "", 0)
	if err != nil {
		return nil, err
	}
	out := make([]digest.Digest, 0, len(keys))
	for _, k := range keys {
		alg, hexs, ok := strings.Cut(strings.TrimPrefix(k, prefix), "/")
		if ok {
			out = append(out, digest.NewDigestFromEncoded(digest.Algorithm(alg), hexs))
		}
	}
	return out, nil
}

// Repositories lists repository names in order, after startAfter, at most
// n (n <= 0: all); more tells whether others follow.
func (md *Metadata) Repositories(ctx context.Context, startAfter string, n int) (names []string, more bool, err error) {
	after := ""
	if startAfter != "" {
		after = catalogKey(startAfter)
	}
	keys, more, err := md.m.listKeys(ctx, catalogPrefix, after, n)
	if err != nil {
		return nil, false, err
	}
	for _, k := range keys {
		if name, ok := nameFromCatalogKey(k); ok {
			names = append(names, name)
		}
	}
	return names, more, nil
}

// BlobSize is the size of a stored blob (storage.ErrNotFound if absent).
func (md *Metadata) BlobSize(ctx context.Context, d digest.Digest) (int64, error) {
	bd, err := md.m.blob(ctx, d)
	return bd.Size, err
}

// parseTag reads a tag object: "<digest>" (a push) or
// "<digest>\n<seq>\n" (a promotion).
func parseTag(b []byte) (digest.Digest, int64, error) {
	first, rest, _ := strings.Cut(string(b), "\n")
	d, err := digest.Parse(strings.TrimSpace(first))
	if err != nil {
		return "", 0, err
	}
	var seq int64
	if rest = strings.TrimSpace(rest); rest != "" {
		if seq, err = strconv.ParseInt(rest, 10, 64); err != nil || seq < 0 {
			return "", 0, fmt.Errorf("bad sequence number %q", rest)
		}
	}
	return d, seq, nil
}

// ReadBlob returns the content of a small stored blob (an image config),
// refusing blobs larger than limit.
func (md *Metadata) ReadBlob(ctx context.Context, d digest.Digest, limit int64) ([]byte, error) {
	bd, err := md.m.blob(ctx, d)
	if err != nil {
		return nil, err
	}
	if bd.Size > limit {
		return nil, fmt.Errorf("blob %s is %d bytes, more than %d", d, bd.Size, limit)
	}
	rd := newSegmentsReader(ctx, md.m.store, bd.segments(), 0, bd.Size)
	defer rd.Close()
	b := make([]byte, bd.Size)
	if _, err := io.ReadFull(rd, b); err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	return b, nil
}

// RepositoryExists reports whether anything was ever pushed to repo.
func (md *Metadata) RepositoryExists(ctx context.Context, repo string) (bool, error) {
	_, err := md.m.store.Stat(ctx, catalogKey(repo))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
