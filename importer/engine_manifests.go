package importer

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/tombstone"
)

// manifests imports a repository's manifests in the plan's order,
// children before parents and subjects before referrers (§7.5 step 4): a
// linked one is protected, another one checked as a /v2/ PUT checks it
// and linked. It returns the manifests not in repo afterwards (what
// needs them is skipped); err stops the run.
func (e *engine) manifests(ctx context.Context, repo string, ms []registry.Manifest, failedBlobs map[digest.Digest]error) (map[digest.Digest]bool, error) {
	notImported := map[digest.Digest]bool{}
	for _, m := range ms {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		refs, err := m.References() // parsed once by the plan: cannot fail
		if err != nil {
			return nil, err
		}
		kind := func(s *Summary) *Counts { return &s.Manifests }
		if refs.Subject != nil {
			kind = func(s *Summary) *Counts { return &s.Referrers }
		}
		bad, err := e.manifest(ctx, repo, m, refs, kind, failedBlobs, notImported)
		e.prog.done(1, 0)
		if err != nil {
			return nil, err
		}
		if bad != nil {
			notImported[m.Digest] = true
			e.t.count(kind, skipped)
			if err := e.fail(ctx, "", &SkippedError{What: fmt.Sprintf("manifest %s@%s", repo, m.Digest), Cause: bad}); err != nil {
				return nil, err
			}
		}
	}
	return notImported, nil
}

// manifest imports one manifest; bad says why it is not in repo.
func (e *engine) manifest(ctx context.Context, repo string, m registry.Manifest, refs registry.References, kind func(*Summary) *Counts, failedBlobs map[digest.Digest]error, notImported map[digest.Digest]bool) (bad, err error) {
	for _, b := range refs.Blobs {
		if cause, ok := failedBlobs[b.Digest]; ok {
			return fmt.Errorf("its blob %s is not imported: %w", b.Digest, cause), nil
		}
	}
	for _, c := range refs.Children {
		if notImported[c.Digest] {
			return fmt.Errorf("its child %s is not imported", c.Digest), nil
		}
	}
	linked, err := e.linked(ctx, repo, m.Digest, refs)
	if err != nil {
		return err, nil
	}
	if linked {
		// Part of its tree being collected: link it again.
		again, bad := e.keep(kind, func() error { return e.meta.ProtectManifest(ctx, repo, m.Digest) },
			func(err error) bool { return errors.Is(err, tombstone.ErrCollected) })
		if !again {
			return bad, nil
		}
	}
	if e.opts.DryRun {
		e.t.count(kind, imported)
		return nil, nil
	}
	if _, err := e.opts.Registry.ValidateManifest(ctx, repo, m.MediaType, m.Raw, m.Digest); err != nil {
		return err, nil
	}
	if err := e.meta.LinkManifest(ctx, repo, m); err != nil {
		return err, nil
	}
	e.t.count(kind, imported)
	return nil, nil
}

// linked reports whether manifest d is in repo whole: its link, and for a
// referrer its entry in the subject's referrer index too (LinkManifest
// writes the entry after the link, so a run killed in between left a
// link without it, and only linking again writes it).
func (e *engine) linked(ctx context.Context, repo string, d digest.Digest, refs registry.References) (bool, error) {
	linked, err := e.meta.HasManifest(ctx, repo, d)
	if err != nil || !linked || refs.Subject == nil {
		return linked, err
	}
	descs, err := e.meta.Referrers(ctx, repo, refs.Subject.Digest)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(descs, func(desc v1.Descriptor) bool { return desc.Digest == d }), nil
}
