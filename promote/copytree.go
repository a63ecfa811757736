package promote

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// cosignSuffixes name the signature, attestation and SBOM tags cosign
// attaches to a digest.
var cosignSuffixes = []string{".sig", ".att", ".sbom"}

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
	if linked {
		// Relying on what is there: protect it from garbage collection.
		// Part of it being collected: link the whole tree again (LinkBlob
		// and LinkManifest write back what they can, or fail).
		err := s.meta.ProtectManifest(ctx, to, m.Digest)
		if errors.Is(err, tombstone.ErrCollected) {
			linked = false
		} else if err != nil {
			return storeError(err)
		}
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
			if errors.Is(err, tombstone.ErrCollected) {
				return errorf(http.StatusConflict, CodeConflict, "%s@%s: %v; promote again", from, m.Digest, err)
			}
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
		// Through the tag, as a pull by tag: a tag always names a manifest
		// linked in its repository, so the link needs no check of its own.
		sm, err := s.meta.Resolve(ctx, from, tag)
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted since it was listed
		}
		if err != nil {
			return storeError(err)
		}
		if err := s.copyManifest(ctx, from, to, sm, seen, depth+1); err != nil {
			return err
		}
		if err := s.setCarriedTag(ctx, to, tag, sm.Digest); err != nil {
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
		err = s.meta.SetTag(ctx, repo, tag, d, "", etag)
		if !errors.Is(err, storage.ErrPreconditionFailed) {
			return err
		}
	}
	return fmt.Errorf("tag %s:%s keeps changing", repo, tag)
}
