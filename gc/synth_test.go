package gc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/slipway/slipway/storage"
)

// synthStore is a store of a synthetic registry generated on the fly, for
// measuring the collector on a million objects without holding them: each
// repository r%06d has manifestsPer image manifests of layersPer blobs
// (config included), the first tagged of them tagged; the others are
// garbage. Every registry key is a pure function of its indices and sorts
// in index order, so a listing is a binary search and a walk. Deletes of
// registry keys go to a bitmap; gc/ keys (tombstones, sweeps, reports)
// live in a small map.
type synthStore struct {
	repos    int
	families []family
	old      time.Time
	mu       sync.Mutex
	gone     map[string][]bool // family prefix -> deleted indices
	small    map[string][]byte
	smallMod map[string]time.Time
}

const (
	manifestsPer = 4
	tagged       = 2
	layersPer    = 4
	layerSize    = 1 << 20
)

// family is one ordered kind of key: key(i) increases with i.
type family struct {
	prefix string
	n      int
	key    func(i int) string
	get    func(i int) []byte
}

func hexOf(kind byte, repo, man, layer int) string {
	return fmt.Sprintf("%c%c%08x%04x%04x", kind, kind, repo, man, layer) + strings.Repeat("0", 46)
}

func manifestBody(repo, man int) []byte {
	var layers []string
	for l := 1; l < layersPer; l++ {
		layers = append(layers, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}`, hexOf('b', repo, man, l), layerSize))
	}
	return []byte(fmt.Sprintf("application/vnd.oci.image.manifest.v1+json\n"+
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[%s]}`,
		hexOf('b', repo, man, 0), layerSize, strings.Join(layers, ",")))
}

func newSynthStore(repos int) *synthStore {
	s := &synthStore{repos: repos, old: time.Now().Add(-48 * time.Hour), gone: map[string][]bool{},
		small: map[string][]byte{}, smallMod: map[string]time.Time{}}
	perRepo := manifestsPer*layersPer + manifestsPer + tagged
	blobs := manifestsPer * layersPer
	repoKey := func(i int) string {
		r, slot := i/perRepo, i%perRepo
		base := fmt.Sprintf("repositories/r%06d/", r)
		switch {
		case slot < blobs:
			return base + "_blobs/sha256/" + hexOf('b', r, slot/layersPer, slot%layersPer)
		case slot < blobs+manifestsPer:
			return base + "_manifests/sha256/" + hexOf('a', r, slot-blobs, 0)
		}
		return base + fmt.Sprintf("_tags/t%d", slot-blobs-manifestsPer)
	}
	repoGet := func(i int) []byte {
		r, slot := i/perRepo, i%perRepo
		if slot >= blobs+manifestsPer {
			return []byte("sha256:" + hexOf('a', r, slot-blobs-manifestsPer, 0))
		}
		return nil
	}
	blobHex := func(i int) string { return hexOf('b', i/blobs, i%blobs/layersPer, i%layersPer) }
	dataHex := func(i int) string { return "dd" + blobHex(i)[2:] }
	s.families = []family{
		{prefix: "blobs/", n: repos * blobs, key: func(i int) string { return "blobs/sha256/bb/" + blobHex(i) },
			get: func(i int) []byte {
				return []byte(fmt.Sprintf(`{"data":"data/dd/%s","size":%d}`, dataHex(i), layerSize))
			}},
		{prefix: "data/", n: repos * blobs, key: func(i int) string { return "data/dd/" + dataHex(i) },
			get: func(int) []byte { return nil }},
		{prefix: "manifests/", n: repos * manifestsPer, key: func(i int) string {
			return "manifests/sha256/aa/" + hexOf('a', i/manifestsPer, i%manifestsPer, 0)
		}, get: func(i int) []byte { return manifestBody(i/manifestsPer, i%manifestsPer) }},
		{prefix: "repositories/", n: repos * perRepo, key: repoKey, get: repoGet},
	}
	for _, f := range s.families {
		s.gone[f.prefix] = make([]bool, f.n)
	}
	return s
}

// objects is how many registry objects the store holds at the start.
func (s *synthStore) objects() int {
	n := 0
	for _, f := range s.families {
		n += f.n
	}
	return n
}

// find locates a registry key: its family and index.
func (s *synthStore) find(key string) (*family, int, bool) {
	for fi := range s.families {
		f := &s.families[fi]
		if !strings.HasPrefix(key, f.prefix) {
			continue
		}
		i := sort.Search(f.n, func(i int) bool { return f.key(i) >= key })
		if i < f.n && f.key(i) == key {
			return f, i, true
		}
		return nil, 0, false
	}
	return nil, 0, false
}

func (s *synthStore) info(key string, size int64, mod time.Time) storage.Info {
	return storage.Info{Key: key, Size: size, ETag: fmt.Sprintf("%x", len(key)+int(size)), ModTime: mod}
}

func (s *synthStore) Get(ctx context.Context, key string, _ storage.GetOptions) (io.ReadCloser, storage.Info, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, info, err
	}
	if f, i, ok := s.find(key); ok {
		return io.NopCloser(bytes.NewReader(f.get(i))), info, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return io.NopCloser(bytes.NewReader(s.small[key])), info, nil
}

func (s *synthStore) Stat(_ context.Context, key string) (storage.Info, error) {
	if f, i, ok := s.find(key); ok {
		s.mu.Lock()
		gone := s.gone[f.prefix][i]
		s.mu.Unlock()
		if gone {
			return storage.Info{}, storage.ErrNotFound
		}
		size := int64(len(f.get(i)))
		if f.prefix == "data/" {
			size = layerSize
		}
		return s.info(key, size, s.old), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.small[key]
	if !ok {
		return storage.Info{}, storage.ErrNotFound
	}
	return storage.Info{Key: key, Size: int64(len(b)), ETag: fmt.Sprintf("%x-%d", len(b), s.smallMod[key].UnixNano()), ModTime: s.smallMod[key]}, nil
}

// put writes a gc/ key; registry keys other than the tag index (which
// the registry may fail to write) are never written by the collector.
func (s *synthStore) put(key string, r io.Reader, cond func(exists bool, etag string) bool) (storage.Info, error) {
	if !strings.HasPrefix(key, "gc/") {
		return storage.Info{}, storage.ErrUnavailable
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return storage.Info{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, exists := s.small[key]
	etag := fmt.Sprintf("%x-%d", len(old), s.smallMod[key].UnixNano())
	if !cond(exists, etag) {
		return storage.Info{}, storage.ErrPreconditionFailed
	}
	now := time.Now()
	if !now.After(s.smallMod[key]) {
		now = s.smallMod[key].Add(time.Nanosecond)
	}
	s.small[key], s.smallMod[key] = b, now
	return storage.Info{Key: key, Size: int64(len(b)), ETag: fmt.Sprintf("%x-%d", len(b), now.UnixNano()), ModTime: now}, nil
}

func (s *synthStore) Put(_ context.Context, key string, r io.Reader, _ int64) (storage.Info, error) {
	return s.put(key, r, func(bool, string) bool { return true })
}

func (s *synthStore) PutIfAbsent(_ context.Context, key string, r io.Reader, _ int64) (storage.Info, error) {
	return s.put(key, r, func(exists bool, _ string) bool { return !exists })
}

func (s *synthStore) PutIfMatch(_ context.Context, key string, r io.Reader, _ int64, etag string) (storage.Info, error) {
	return s.put(key, r, func(exists bool, cur string) bool { return exists && cur == etag })
}

func (s *synthStore) Delete(_ context.Context, key string) error {
	f, i, ok := s.find(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		s.gone[f.prefix][i] = true
		return nil
	}
	delete(s.small, key)
	delete(s.smallMod, key)
	return nil
}

func (s *synthStore) List(_ context.Context, o storage.ListOptions) (storage.ListPage, error) {
	max := o.MaxKeys
	if max <= 0 {
		max = 1000
	}
	from := o.Prefix
	var page storage.ListPage
	for fi := range s.families {
		f := &s.families[fi]
		if !strings.HasPrefix(o.Prefix, f.prefix) {
			continue
		}
		i := sort.Search(f.n, func(i int) bool { k := f.key(i); return k >= from && k > o.StartAfter })
		s.mu.Lock()
		defer s.mu.Unlock()
		for ; i < f.n; i++ {
			k := f.key(i)
			if !strings.HasPrefix(k, o.Prefix) {
				return page, nil
			}
			if s.gone[f.prefix][i] {
				continue
			}
			if len(page.Objects) == max {
				page.Truncated = true
				return page, nil
			}
			size := int64(len(f.get(i)))
			if f.prefix == "data/" {
				size = layerSize
			}
			page.Objects = append(page.Objects, s.info(k, size, s.old))
		}
		return page, nil
	}
	s.mu.Lock()
	var keys []string
	for k := range s.small {
		if strings.HasPrefix(k, o.Prefix) && k > o.StartAfter {
			keys = append(keys, k)
		}
	}
	s.mu.Unlock()
	sort.Strings(keys)
	for _, k := range keys {
		if len(page.Objects) == max {
			page.Truncated = true
			break
		}
		info, err := s.Stat(context.Background(), k)
		if err == nil {
			page.Objects = append(page.Objects, info)
		}
	}
	return page, nil
}

func (s *synthStore) Ping(context.Context) error { return nil }
