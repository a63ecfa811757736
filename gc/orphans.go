package gc

import (
	"context"
	"errors"
	"sync"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// named is every data object a descriptor or an upload session names.
type named struct {
	mu   sync.Mutex
	data hashSet // hashes of named data keys
	seen hashSet // hashes of descriptor key + ETag already read: immutable, not read again
}

// orphans is stage 3: data objects no descriptor and no session names,
// older than purge_after + grace + orphanMargin (an upload id is refused
// after purge_after, and a commit in flight ends well within the margin).
func (r *run) orphans(ctx context.Context) error {
	nm := &named{}
	if err := r.readNames(ctx, nm); err != nil {
		return err
	}
	minAge := r.c.opts.UploadsPurgeAfter + r.c.opts.Grace + orphanMargin
	b := &batcher{r: r, look: func(ctx context.Context, cands []candidate) (verdict, error) {
		return r.lookOrphans(ctx, nm, cands)
	}}
	err := storage.Walk(ctx, r.c.store, registry.DataPrefix, func(o storage.Info) error {
		r.examined(1, o.Size)
		if r.age(o) < minAge || nm.data.has(keyHash(o.Key)) {
			return nil
		}
		return b.add(ctx, candidate{key: o.Key, size: o.Size})
	})
	if err != nil {
		return err
	}
	return b.flush(ctx)
}

// readNames adds to nm what every descriptor not read before and every
// upload session name.
func (r *run) readNames(ctx context.Context, nm *named) error {
	var descs, sessions []string
	var added []hash // seen is sealed while it is searched: added after
	err := storage.Walk(ctx, r.c.store, registry.BlobsPrefix, func(o storage.Info) error {
		if h := keyHash(o.Key + "\x00" + o.ETag); !nm.seen.has(h) {
			descs = append(descs, o.Key)
			added = append(added, h)
		}
		if len(descs) < r.c.opts.BatchSize {
			return nil
		}
		err := r.readEach(ctx, nm, descs, func(_ string, b []byte) ([]string, error) {
			keys, _, err := registry.DescriptorData(b)
			return keys, err
		})
		descs = descs[:0]
		return err
	})
	if err == nil {
		err = r.readEach(ctx, nm, descs, func(_ string, b []byte) ([]string, error) {
			keys, _, err := registry.DescriptorData(b)
			return keys, err
		})
	}
	if err == nil {
		err = storage.Walk(ctx, r.c.store, registry.UploadsPrefix, func(o storage.Info) error {
			sessions = append(sessions, o.Key)
			return nil
		})
	}
	if err == nil {
		err = r.readEach(ctx, nm, sessions, registry.SessionData)
	}
	if err != nil {
		return err
	}
	for _, h := range added {
		nm.seen.add(h)
	}
	nm.seen.seal()
	nm.data.seal()
	return nil
}

// readEach reads keys and adds the data each names to nm. An object
// deleted meanwhile names nothing; one that does not parse is an error
// (what it names is unknown: nothing may be collected).
func (r *run) readEach(ctx context.Context, nm *named, keys []string, names func(key string, b []byte) ([]string, error)) error {
	return r.each(ctx, len(keys), func(ctx context.Context, i int) error {
		b, err := readSmall(ctx, r.c.store, keys[i], 4<<20)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		data, err := names(keys[i], b)
		if err != nil {
			return err
		}
		nm.mu.Lock()
		for _, d := range data {
			nm.data.add(keyHash(d))
		}
		nm.mu.Unlock()
		return nil
	})
}

// lookOrphans is stage 3's second look: descriptors written since (new
// keys or ETags) and every session, read again.
func (r *run) lookOrphans(ctx context.Context, nm *named, cands []candidate) (verdict, error) {
	if err := r.readNames(ctx, nm); err != nil {
		return verdict{}, err
	}
	still := map[string]bool{}
	for _, c := range cands {
		if !nm.data.has(keyHash(c.key)) {
			still[c.key] = true
		}
	}
	return verdict{garbage: still}, nil
}
