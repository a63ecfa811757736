package stocklayout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/storage"
)

// Tag is a tag of a repository and the manifest it names now.
type Tag struct {
	Name   string
	Digest digest.Digest
}

// Blob is where a blob's bytes are in the stock registry's storage.
type Blob struct {
	Digest digest.Digest
	Key    string // BlobKey(Digest), a key of the store
	Size   int64
}

// Repositories lists every repository, in lexical order: every directory
// below repositories/ that holds a "_manifests" directory, as the stock
// registry's catalog finds them (nested repositories included; no
// directory whose name starts with '_' is entered). A repository whose
// name is not a valid repository name is a problem, not a result.
func (l *Layout) Repositories(ctx context.Context) (repos []string, problems []error, err error) {
	var walk func(rel string) error
	walk = func(rel string) error {
		dirs, err := subdirs(ctx, l.store, reposPrefix+rel, 0)
		if err != nil {
			return fmt.Errorf("stock registry layout: list %s: %w", reposPrefix+rel, err)
		}
		for _, d := range dirs {
			child := strings.TrimSuffix(strings.TrimPrefix(d, reposPrefix+rel), "/")
			switch {
			case child == "_manifests" && rel == "":
				problems = append(problems, corrupt(d, "a _manifests directory right below repositories/ (no repository name)"))
			case child == "_manifests":
				name := strings.TrimSuffix(rel, "/")
				if names.ValidRepository(name) {
					repos = append(repos, name)
				} else {
					problems = append(problems, corrupt(d, "repository name %q is not a valid name", name))
				}
			case strings.HasPrefix(child, "_"):
				// _layers, _uploads: never part of a name.
			default:
				if err := walk(rel + child + "/"); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, nil, err
	}
	slices.Sort(repos)
	return repos, problems, nil
}

// Tags lists a repository's tags in lexical order with the digest each
// names now (its current/link). A tag directory with an invalid name, or
// without a readable current/link, is a problem.
func (l *Layout) Tags(ctx context.Context, repo string) (tags []Tag, problems []error, err error) {
	prefix := tagsPrefix(repo)
	dirs, err := subdirs(ctx, l.store, prefix, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("stock registry layout: list %s: %w", prefix, err)
	}
	for _, d := range dirs {
		name := strings.TrimSuffix(strings.TrimPrefix(d, prefix), "/")
		if !names.ValidTag(name) {
			problems = append(problems, corrupt(d, "tag name %q is not a valid tag", name))
			continue
		}
		key := d + "current/link"
		dg, err := l.readLink(ctx, key)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			problems = append(problems, corrupt(key, "tag %s:%s has no current link (deleted, or written only in part)", repo, name))
		case errors.As(err, new(*CorruptError)):
			problems = append(problems, err)
		case err != nil:
			return nil, nil, fmt.Errorf("stock registry layout: tag %s:%s: %w", repo, name, err)
		default:
			tags = append(tags, Tag{Name: name, Digest: dg})
		}
	}
	return tags, problems, nil
}

// Manifests lists the digests of the manifest revisions linked into a
// repository (tagged or not), in lexical order of their keys. Each link
// is read: one whose content is not the digest its key names is a
// problem.
func (l *Layout) Manifests(ctx context.Context, repo string) (ds []digest.Digest, problems []error, err error) {
	links, problems, err := l.links(ctx, revisionsPrefix(repo))
	if err != nil {
		return nil, nil, err
	}
	for _, k := range links {
		got, err := l.readLink(ctx, k.key)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			// Deleted since the listing: the stock registry deleted it.
		case errors.As(err, new(*CorruptError)):
			problems = append(problems, err)
		case err != nil:
			return nil, nil, fmt.Errorf("stock registry layout: %s: %w", k.key, err)
		case got != k.digest:
			problems = append(problems, corrupt(k.key, "link holds %s, not the digest %s its key names", got, k.digest))
		default:
			ds = append(ds, k.digest)
		}
	}
	return ds, problems, nil
}

// Layers lists the digests of the blobs linked into a repository (layers
// and image configs), in lexical order of their keys. The stock
// registry's garbage collector deletes blobs but leaves their layer
// links, so a listed blob may have no data (Blob says so).
//
// The digests are the ones the link keys name; the links are not read.
// An import takes its blobs from the manifests it imports (and checks
// their data), never from these links: they only name what no imported
// manifest references (Plan.Unreferenced), and reading each would cost
// one request per blob of the repository.
func (l *Layout) Layers(ctx context.Context, repo string) (ds []digest.Digest, problems []error, err error) {
	links, problems, err := l.links(ctx, layersPrefix(repo))
	for _, k := range links {
		ds = append(ds, k.digest)
	}
	return ds, problems, err
}

// link is a listed "<alg>/<hex>/link" object and the digest its key names.
type link struct {
	key    string
	digest digest.Digest
}

// links lists every "<alg>/<hex>/link" object below prefix, without
// reading them; any other object there is a problem.
func (l *Layout) links(ctx context.Context, prefix string) (links []link, problems []error, err error) {
	err = pages(ctx, l.store, storage.ListOptions{Prefix: prefix}, func(p storage.ListPage) bool {
		for _, o := range p.Objects {
			if d, ok := linkDigest(strings.TrimPrefix(o.Key, prefix)); ok {
				links = append(links, link{o.Key, d})
			} else {
				problems = append(problems, corrupt(o.Key, "not a link of the form <alg>/<hex>/link"))
			}
		}
		return true
	})
	if err != nil {
		return nil, nil, fmt.Errorf("stock registry layout: list %s: %w", prefix, err)
	}
	return links, problems, nil
}

// linkDigest reads "<alg>/<hex>/link" as the digest <alg>:<hex>.
func linkDigest(rel string) (digest.Digest, bool) {
	parts := strings.Split(rel, "/")
	if len(parts) != 3 || parts[2] != "link" {
		return "", false
	}
	d, err := digest.Parse(parts[0] + ":" + parts[1])
	return d, err == nil
}

// Blob finds blob d's bytes: their key and size. A blob without data
// (deleted by the stock registry's garbage collector, or never complete)
// is an error wrapping storage.ErrNotFound that names the key.
func (l *Layout) Blob(ctx context.Context, d digest.Digest) (Blob, error) {
	if err := d.Validate(); err != nil {
		return Blob{}, fmt.Errorf("stock registry blob %q: %w", d, err)
	}
	key := BlobKey(d)
	info, err := l.store.Stat(ctx, key)
	if err != nil {
		return Blob{}, fmt.Errorf("stock registry blob %s: data %s: %w", d, key, err)
	}
	return Blob{Digest: d, Key: key, Size: info.Size}, nil
}

// ReadManifest reads manifest d's bytes (at most ManifestLimit) and checks
// that they hash to d: a manifest is imported by its exact bytes, so a
// mismatch is a *CorruptError, as is a manifest larger than the limit.
func (l *Layout) ReadManifest(ctx context.Context, d digest.Digest) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("stock registry manifest %q: %w", d, err)
	}
	key := BlobKey(d)
	b, err := readLimited(ctx, l.store, key, ManifestLimit)
	if err != nil {
		return nil, fmt.Errorf("stock registry manifest %s: data %s: %w", d, key, err)
	}
	if len(b) > ManifestLimit {
		return nil, corrupt(key, "manifest %s is larger than %d bytes", d, ManifestLimit)
	}
	if got := d.Algorithm().FromBytes(b); got != d {
		return nil, corrupt(key, "bytes hash to %s, not %s", got, d)
	}
	return b, nil
}
