// Package stocklayout reads what the stock Docker registry (distribution
// v2/v3: the registry:2 and registry:3 images) keeps in its storage, so
// that Slipway can import it: repositories, tags, manifest revisions,
// layer links and where each blob's bytes are. It reads through a
// storage.Store rooted where the stock registry's storage driver is
// rooted (its filesystem rootdirectory, or its S3 bucket plus
// rootdirectory), and calls only Get, Stat and List: it never writes to
// the stock registry's storage.
//
// The layout, below the store's root (distribution's
// registry/storage/paths.go):
//
//	docker/registry/v2/blobs/<alg>/<hh>/<hex>/data                           blob bytes (manifests too)
//	docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link          blob is in the repository
//	docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link
//	                                                                         manifest is in the repository
//	docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link
//	                                                                         the digest the tag names
//	docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
//	                                                                         digests the tag has named
//	docker/registry/v2/repositories/<name>/_uploads/<id>/…                   uploads in progress (not read)
//
// A link object holds exactly a digest ("sha256:<64 hex>", no newline).
// A repository is a directory holding "_manifests"; names contain '/', and
// directories whose name starts with '_' are never part of a name.
//
// Every stock key fits storage.ValidKey: repository names are lowercase
// letters, digits and '.', '_', '-', tags are [A-Za-z0-9_.-] not starting
// with '.' or '-', digests are "<alg>/<hex>", and no stock object's key is
// a directory of another one.
//
// Errors come in two kinds: a *CorruptError names one object that is not
// what the stock registry writes (a link that is not a digest, a blob whose
// bytes do not hash to its digest); listings return those as problems next
// to what they could read, so an import can report them and go on. Any
// other error is the store failing, and the listing stops.
package stocklayout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

// Root is the prefix of every key of the stock registry's layout, below
// the storage driver's root directory.
const Root = "docker/registry/v2/"

const (
	blobsPrefix = Root + "blobs/"
	reposPrefix = Root + "repositories/"
	// linkLimit bounds a link object's read: a digest is at most
	// "sha512:" + 128 hex digits.
	linkLimit = 256
	// ManifestLimit is the largest manifest ReadManifest reads (the stock
	// registry's own limit for a manifest PUT is 4 MiB).
	ManifestLimit = 4 << 20
)

// ErrNotLayout: the store holds no stock registry layout at its root.
var ErrNotLayout = errors.New("not a stock registry storage layout")

// ErrCorrupt is what every *CorruptError unwraps to.
var ErrCorrupt = errors.New("corrupt stock registry object")

// CorruptError says that one object of the layout is not what the stock
// registry writes there. Key is the object's key in the store.
type CorruptError struct {
	Key     string
	Problem string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("stock registry object %s: %s", e.Key, e.Problem)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

func corrupt(key, format string, args ...any) *CorruptError {
	return &CorruptError{Key: key, Problem: fmt.Sprintf(format, args...)}
}

// Layout reads one stock registry's storage. It holds no state but the
// store, so one Layout may be used by many goroutines.
type Layout struct {
	store storage.Store
}

// Open checks that the store holds a stock registry layout (Root with a
// "blobs/" or "repositories/" directory below it) and returns its reader.
// A store rooted one level off (at "docker/", or above the driver's root
// directory) gets an error that says where the layout is.
func Open(ctx context.Context, store storage.Store) (*Layout, error) {
	dirs, err := subdirs(ctx, store, Root, 0)
	if err != nil {
		return nil, fmt.Errorf("stock registry layout: list %s: %w", Root, err)
	}
	for _, d := range dirs {
		if d == blobsPrefix || d == reposPrefix {
			return &Layout{store: store}, nil
		}
	}
	return nil, fmt.Errorf("%w: no %s or %s in the store%s", ErrNotLayout, blobsPrefix, reposPrefix, hint(ctx, store))
}

// hint looks for the layout somewhere near the store's root, to say where
// the storage root should have been.
func hint(ctx context.Context, store storage.Store) string {
	for _, below := range []string{"registry/v2/", "v2/"} {
		if dirs, err := subdirs(ctx, store, below, 2); err == nil && len(dirs) > 0 {
			return fmt.Sprintf(" (it holds %s: point the import at the directory above docker/, the stock registry's rootdirectory)", below)
		}
	}
	top, err := subdirs(ctx, store, "", 5)
	if err != nil || len(top) == 0 {
		return " (it is empty)"
	}
	return fmt.Sprintf(" (its top level holds %s)", strings.Join(top, ", "))
}

// BlobKey is the key of the object holding blob d's bytes.
func BlobKey(d digest.Digest) string {
	hex := d.Encoded()
	return blobsPrefix + string(d.Algorithm()) + "/" + hex[:2] + "/" + hex + "/data"
}

// repoKey is the prefix of repository name's keys.
func repoKey(name string) string { return reposPrefix + name + "/" }

func tagsPrefix(name string) string { return repoKey(name) + "_manifests/tags/" }

func revisionsPrefix(name string) string { return repoKey(name) + "_manifests/revisions/" }

func layersPrefix(name string) string { return repoKey(name) + "_layers/" }

// readLink reads a link object: exactly a valid digest.
func (l *Layout) readLink(ctx context.Context, key string) (digest.Digest, error) {
	b, err := readLimited(ctx, l.store, key, linkLimit)
	if err != nil {
		return "", err
	}
	if len(b) > linkLimit {
		return "", corrupt(key, "link is %d+ bytes, not a digest", len(b))
	}
	d, err := digest.Parse(string(b))
	if err != nil {
		return "", corrupt(key, "link holds %q, not a digest like sha256:<64 hex> (%v)", b, err)
	}
	return d, nil
}

// readLimited reads at most limit+1 bytes of an object, so the caller can
// tell an object larger than limit.
func readLimited(ctx context.Context, s storage.Store, key string, limit int64) ([]byte, error) {
	rc, _, err := s.Get(ctx, key, storage.GetOptions{})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return b, nil
}

// subdirs lists the "directories" right below prefix (keys ending in '/'),
// at most max of them (0: all), in lexical order.
func subdirs(ctx context.Context, s storage.Store, prefix string, max int) ([]string, error) {
	var out []string
	err := pages(ctx, s, storage.ListOptions{Prefix: prefix, Delimiter: "/"}, func(p storage.ListPage) bool {
		out = append(out, p.CommonPrefixes...)
		return max == 0 || len(out) < max
	})
	if max > 0 && len(out) > max {
		out = out[:max]
	}
	return out, err
}

// pages calls f with every page of a listing until f returns false or the
// listing ends.
func pages(ctx context.Context, s storage.Store, opts storage.ListOptions, f func(storage.ListPage) bool) error {
	for {
		page, err := s.List(ctx, opts)
		if err != nil {
			return err
		}
		if !f(page) || !page.Truncated {
			return nil
		}
		last := ""
		if n := len(page.Objects); n > 0 {
			last = page.Objects[n-1].Key
		}
		if n := len(page.CommonPrefixes); n > 0 && page.CommonPrefixes[n-1] > last {
			last = page.CommonPrefixes[n-1]
		}
		if last == "" {
			return nil
		}
		opts.StartAfter = last
	}
}
