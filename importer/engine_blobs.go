package importer

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/importer/stocklayout"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// verifyBufferSize is the buffer each --verify rehash reads through, so
// a run verifies in repoParallel × Parallel × 1 MiB whatever the blobs'
// sizes.
const verifyBufferSize = 1 << 20

// blobs imports a repository's blobs, Parallel at a time (§7.5 step 3),
// and returns those that are not in the repository afterwards, with why
// (the manifests needing them are then skipped).
func (e *engine) blobs(ctx context.Context, repo string, bs []stocklayout.Blob) (map[digest.Digest]error, error) {
	var mu sync.Mutex
	failed := map[digest.Digest]error{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.opts.Parallel)
	for _, b := range bs {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			bad, err := e.blob(gctx, repo, b)
			e.prog.done(1, b.Size)
			if err != nil {
				return err
			}
			if bad != nil {
				mu.Lock()
				failed[b.Digest] = bad
				mu.Unlock()
				e.t.count(blobs, skipped)
				return e.fail(gctx, fmt.Sprintf("blob %s@%s (%s)", repo, b.Digest, b.Key), bad)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return failed, ctx.Err()
}

// blob imports one blob into repo: present (a push, another repository,
// an earlier run) → linked; absent → verified when asked, its data put
// in place, then the descriptor and the link. bad says why the blob is
// not in repo afterwards; err stops the run.
func (e *engine) blob(ctx context.Context, repo string, b stocklayout.Blob) (bad, err error) {
	has, err := e.meta.HasBlob(ctx, b.Digest)
	if err != nil {
		return err, nil
	}
	if has {
		again, bad := e.keep(blobs, func() error { return e.meta.LinkBlob(ctx, repo, b.Digest) },
			func(err error) bool { return errors.Is(err, storage.ErrNotFound) })
		if !again {
			return bad, nil
		}
	}
	if e.opts.Verify {
		buf := e.verifyBufs.Get().(*[]byte)
		err := VerifyData(ctx, e.src, b, *buf)
		e.verifyBufs.Put(buf)
		if err != nil {
			return err, nil
		}
	}
	if e.opts.DryRun {
		way := Copy
		if e.outside != nil {
			way = Referenced
		}
		e.t.count(blobs, imported)
		e.t.bytes(way, b.Size)
		return nil, nil
	}
	way, created, err := e.importData(ctx, repo, b)
	if err != nil {
		return err, nil
	}
	if created {
		e.t.count(blobs, imported)
		e.t.bytes(way, b.Size)
	} else {
		// Another writer committed the blob first; its descriptor won.
		e.t.count(blobs, present)
	}
	return nil, nil
}

// importData puts blob b's data where Slipway reads it (an outside
// descriptor in reference mode, else a copy under a fresh data key) and
// commits the blob into repo. A copy whose commit fails is left unnamed,
// for the collector's orphan stage (as a killed push's segment is).
func (e *engine) importData(ctx context.Context, repo string, b stocklayout.Blob) (way string, created bool, err error) {
	if e.outside != nil {
		created, err := e.outside.ImportOutsideBlob(ctx, repo, b.Digest, e.opts.Reference(b.Key), b.Size)
		return Referenced, created, err
	}
	key := registry.DataKey()
	way, err = CopyData(ctx, e.opts.Store, key, e.src, b)
	if err != nil {
		return "", false, err
	}
	created, err = e.meta.ImportBlob(ctx, repo, b.Digest, key, b.Size)
	return way, created, err
}

// keep handles an object Slipway already has: protect (a link of a blob,
// the protection of a linked manifest's tree) makes it the repository's
// for good, and it counts as present (in a dry run, without protect).
// again says protect found it being collected (collecting(err)): import
// it as if absent. bad is protect's other failures.
func (e *engine) keep(kind func(*Summary) *Counts, protect func() error, collecting func(error) bool) (again bool, bad error) {
	if e.opts.DryRun {
		e.t.count(kind, present)
		return false, nil
	}
	err := protect()
	switch {
	case err == nil:
		e.t.count(kind, present)
		return false, nil
	case collecting(err):
		return true, nil
	}
	return false, err
}
