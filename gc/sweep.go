package gc

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/tombstone"
)

// candidate is an object a stage decided is garbage.
type candidate struct {
	key     string
	size    int64  // its size as listed
	version string // its tombstone's version, once marked
}

// secondLook re-reads, from the store, exactly what could have made the
// candidates live since they were chosen (after their tombstones were
// written), and says which are still garbage.
type secondLook func(ctx context.Context, cands []candidate) (verdict, error)

// verdict is a second look's answer: the keys still garbage, and what
// each key needs (deps: a manifest link needs its children's links and
// its blobs' links), so that a candidate a writer rescues keeps what it
// needs (commitAll).
type verdict struct {
	garbage map[string]bool
	deps    map[string][]string
}

// each runs f(i) for i in [0, n) with at most Options.Concurrency at once;
// the first error cancels the rest.
func (r *run) each(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.c.opts.Concurrency)
	for i := 0; i < n; i++ {
		g.Go(func() error { return f(gctx, i) })
	}
	return g.Wait()
}

// batcher gathers candidates and sweeps them BatchSize at a time.
type batcher struct {
	r     *run
	look  secondLook
	cands []candidate
}

// add adds c, and sweeps the batch once it is full.
func (b *batcher) add(ctx context.Context, c candidate) error {
	b.cands = append(b.cands, c)
	if len(b.cands) < b.r.c.opts.BatchSize {
		return nil
	}
	return b.flush(ctx)
}

// flush sweeps what is gathered.
func (b *batcher) flush(ctx context.Context) error {
	cands := b.cands
	b.cands = nil
	return b.r.sweep(ctx, cands, b.look)
}

// sweep frees one batch of candidates with the tombstone protocol: sweep
// entry and fence (once per run), tombstones, second look, commit, delete.
// A dry run only reports them.
func (r *run) sweep(ctx context.Context, cands []candidate, look secondLook) error {
	if len(cands) == 0 {
		return nil
	}
	if r.c.opts.DryRun {
		return r.each(ctx, len(cands), func(ctx context.Context, i int) error {
			return r.reportDry(ctx, cands[i])
		})
	}
	if err := r.announce(ctx); err != nil {
		return err
	}
	marked, err := r.mark(ctx, cands)
	if err != nil {
		return err
	}
	r.count(&r.rep.Pending, int64(len(marked)))
	v, err := look(ctx, marked)
	if err == nil {
		err = r.heartbeat(ctx) // a zombie stops before it commits
	}
	if err != nil {
		r.release(ctx, marked)
		return err
	}
	return r.commitAll(ctx, marked, v)
}

// announce writes the sweep entry and waits the fence, once per run:
// writers that did not see the entry finished their writes before the
// first tombstone, so every second look sees them. From then on the entry
// is refreshed in the background (heartbeat.go).
func (r *run) announce(ctx context.Context) error {
	if r.swept {
		return r.heartbeat(ctx)
	}
	sent := time.Now()
	if err := tombstone.BeginSweep(ctx, r.c.store, r.id); err != nil {
		return err
	}
	r.swept = true
	r.startBeating(ctx, sent)
	if r.c.opts.Fence > 0 {
		t := time.NewTimer(r.c.opts.Fence)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// mark writes the candidates' tombstones (tombstone.MarkAll: one write
// per shard) and returns those it wrote. An object that already has one
// is another run's: a deleting one is finished here, any other is left
// alone this run.
func (r *run) mark(ctx context.Context, cands []candidate) ([]candidate, error) {
	byKey := make(map[string]candidate, len(cands)) // a key twice in a batch is one candidate
	keys := make([]string, 0, len(cands))
	for _, c := range cands {
		if _, dup := byKey[c.key]; !dup {
			byKey[c.key] = c
			keys = append(keys, c.key)
		}
	}
	versions, existing, err := tombstone.MarkAll(ctx, r.c.store, keys, r.id, r.c.opts.Concurrency)
	var marked []candidate
	for _, k := range keys {
		if v, ok := versions[k]; ok {
			c := byKey[k]
			c.version = v
			marked = append(marked, c)
		}
	}
	if err == nil {
		err = r.each(ctx, len(existing), func(ctx context.Context, i int) error {
			return r.existing(ctx, byKey[existing[i]])
		})
	}
	if err != nil {
		r.release(ctx, marked)
		return nil, err
	}
	return marked, nil
}

// existing handles an object that already has a tombstone.
func (r *run) existing(ctx context.Context, c candidate) error {
	t, version, err := tombstone.Read(ctx, r.c.store, c.key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // resolved meanwhile: the next run looks again
	}
	if err != nil {
		return err
	}
	if t.State == tombstone.Deleting {
		c.version = version
		return r.finishDeletion(ctx, c)
	}
	return nil
}

// finishDeletion deletes an object whose tombstone is deleting (at
// version c.version), then the tombstone if it is still at that version.
// Every step is idempotent: anyone may repeat it.
func (r *run) finishDeletion(ctx context.Context, c candidate) error {
	data, size, err := r.deleteObject(ctx, c.key)
	if err != nil {
		return err
	}
	if err := tombstone.RemoveAll(ctx, r.c.store, map[string]string{c.key: c.version}, 1); err != nil {
		return err
	}
	r.freed(c.key, c.size)
	r.freedData(data, size)
	return nil
}

// reportDry reports what deleting c would free.
func (r *run) reportDry(ctx context.Context, c candidate) error {
	r.freed(c.key, c.size)
	if !strings.HasPrefix(c.key, registry.BlobsPrefix) {
		return nil
	}
	data, size, err := r.descriptorData(ctx, c.key)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	r.freedData(data, size)
	return nil
}

// deleteObject deletes one object the way its kind needs, as a commit
// chunk does (deleteDoomed), and returns the data objects deleted with a
// descriptor and their bytes.
func (r *run) deleteObject(ctx context.Context, key string) (data []string, size int64, err error) {
	d, err := r.doom(ctx, key)
	if err == nil {
		err = r.deleteDoomed(ctx, []string{key}, []doomed{d})
	}
	if err != nil {
		return nil, 0, err
	}
	return d.data, d.size, nil
}

// descriptorData reads what a descriptor names.
func (r *run) descriptorData(ctx context.Context, key string) ([]string, int64, error) {
	b, err := readSmall(ctx, r.c.store, key, 4<<20)
	if err != nil {
		return nil, 0, err
	}
	return registry.DescriptorData(b)
}

func readSmall(ctx context.Context, s storage.Store, key string, limit int64) ([]byte, error) {
	rc, _, err := s.Get(ctx, key, storage.GetOptions{})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit))
}

// freedData counts data objects freed with a descriptor.
func (r *run) freedData(keys []string, size int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.Freed.Objects += int64(len(keys))
	r.rep.Freed.Bytes += size
	for _, k := range keys {
		if len(r.rep.Deleted) < MaxListed {
			r.rep.Deleted = append(r.rep.Deleted, k)
		}
	}
}
