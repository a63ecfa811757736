package gc

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// repoState is one repository as listed: its manifest and blob links (by
// digest hash) and referrer entries. It lives only while its repository
// is judged.
type repoState struct {
	repo      string
	manifests map[hash]link
	blobs     map[hash]link
	referrers []referrerEntry
	// tagObjs: the listed keys under _tags/, _tagjournal/ and _tagindex/,
	// from which the tags are read (registry.Metadata.TagStatesListed).
	tagObjs []storage.Info
	objects int64
	bytes   int64
}

// link is a listed link and the digest it names.
type link struct {
	info   storage.Info
	digest digest.Digest
}

type referrerEntry struct {
	info              storage.Info
	subject, manifest hash
}

func newRepoState(repo string, objs []storage.Info) *repoState {
	st := &repoState{repo: repo, manifests: map[hash]link{}, blobs: map[hash]link{}}
	tagPrefix := registry.RepoPrefix(repo) + "_tag"
	for _, o := range objs {
		if strings.HasPrefix(o.Key, tagPrefix) {
			st.tagObjs = append(st.tagObjs, o)
		}
		k, ok := registry.ParseRepoKey(o.Key)
		if !ok || k.Repo != repo {
			continue
		}
		st.objects++
		st.bytes += o.Size
		switch k.Kind {
		case registry.KeyManifests:
			st.manifests[digestHash(k.Digest)] = link{o, k.Digest}
		case registry.KeyBlobs:
			st.blobs[digestHash(k.Digest)] = link{o, k.Digest}
		case registry.KeyReferrers:
			st.referrers = append(st.referrers, referrerEntry{info: o, subject: digestHash(k.Subject), manifest: digestHash(k.Digest)})
		}
	}
	return st
}

// manifestRefs is what a manifest keeps alive in its repository, as
// digest hashes (compact: Collector.refs holds many).
type manifestRefs struct {
	readable   bool // its record was read and parsed
	hasSubject bool
	subject    hash
	children   []hash
	blobs      []hash // config and layers
}

// readRefs reads the references of every manifest linked in st (from
// Collector.refs when it can). A missing or unparseable record gives
// readable false.
func (r *run) readRefs(ctx context.Context, st *repoState) (map[hash]*manifestRefs, error) {
	hs := make([]hash, 0, len(st.manifests))
	for h := range st.manifests {
		hs = append(hs, h)
	}
	out := make(map[hash]*manifestRefs, len(hs))
	var mu sync.Mutex
	err := r.each(ctx, len(hs), func(ctx context.Context, i int) error {
		mr, ok := r.c.refs.Get(hs[i])
		if !ok {
			var err error
			if mr, err = r.readManifestRefs(ctx, st.manifests[hs[i]].digest); err != nil {
				return err
			}
			if mr.readable {
				r.c.refs.Add(hs[i], mr) // records are immutable: valid for good
			}
		}
		mu.Lock()
		out[hs[i]] = mr
		mu.Unlock()
		return nil
	})
	return out, err
}

func (r *run) readManifestRefs(ctx context.Context, d digest.Digest) (*manifestRefs, error) {
	mr := &manifestRefs{}
	man, err := r.c.meta.ManifestRecord(ctx, d)
	if errors.Is(err, storage.ErrNotFound) {
		return mr, nil
	}
	if err != nil {
		return nil, err
	}
	refs, err := man.References()
	if err != nil {
		return mr, nil
	}
	mr.readable = true
	for _, c := range refs.Children {
		mr.children = append(mr.children, digestHash(c.Digest))
	}
	for _, b := range refs.Blobs {
		mr.blobs = append(mr.blobs, digestHash(b.Digest))
	}
	if refs.Config != nil {
		mr.blobs = append(mr.blobs, digestHash(refs.Config.Digest))
	}
	if refs.Subject != nil {
		mr.hasSubject, mr.subject = true, digestHash(refs.Subject.Digest)
	}
	return mr, nil
}

// garbageLinks judges one repository: the manifest links no root reaches,
// the referrer entries of manifests no longer linked, and the blob links
// no live manifest needs, all older than grace.
//
// Live manifests: the closure, over index children and (follow_subject)
// referrers of live subjects, of the roots: tags, ledger digests, links
// younger than grace, and (referrers: keep) every manifest with a subject.
// It also returns the references read, by manifest.
func (r *run) garbageLinks(ctx context.Context, st *repoState, ledger []digest.Digest) ([]candidate, map[hash]*manifestRefs, error) {
	// The tags as the repository's listing shows them: no list or Stat of
	// its own (the second look lists the repository again, after the
	// tombstones).
	tags, err := r.c.meta.TagStatesListed(ctx, st.repo, st.tagObjs)
	if err != nil {
		return nil, nil, err
	}
	refs, err := r.readRefs(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	young := func(info storage.Info) bool { return r.now.Sub(info.ModTime) < r.c.opts.Grace }
	manifestGrace := r.c.opts.Grace
	if f := r.c.opts.GraceFor; f != nil {
		manifestGrace = max(manifestGrace, f(st.repo))
	}

	bySubject := map[hash][]hash{}
	for d, mr := range refs {
		if mr.hasSubject {
			bySubject[mr.subject] = append(bySubject[mr.subject], d)
		}
	}
	for _, e := range st.referrers {
		bySubject[e.subject] = append(bySubject[e.subject], e.manifest)
	}

	live := map[hash]bool{}
	var work []hash
	visit := func(d hash) {
		if _, linked := st.manifests[d]; linked && !live[d] {
			live[d] = true
			work = append(work, d)
		}
	}
	for _, t := range tags {
		visit(digestHash(t.Digest))
	}
	for _, d := range ledger {
		visit(digestHash(d))
	}
	for d, l := range st.manifests {
		if r.now.Sub(l.info.ModTime) < manifestGrace || (r.c.opts.KeepReferrers && refs[d].hasSubject) {
			visit(d)
		}
	}
	for len(work) > 0 {
		d := work[len(work)-1]
		work = work[:len(work)-1]
		for _, c := range refs[d].children {
			visit(c)
		}
		for _, ref := range bySubject[d] {
			visit(ref)
		}
	}

	var out []candidate
	needed := map[hash]bool{}
	keepAllBlobs := false
	for d, l := range st.manifests {
		if !live[d] {
			out = append(out, candidate{key: l.info.Key, size: l.info.Size})
			continue
		}
		if !refs[d].readable {
			keepAllBlobs = true // a live manifest we cannot read: keep what it may need
		}
		for _, b := range refs[d].blobs {
			needed[b] = true
		}
	}
	for _, e := range st.referrers {
		if _, linked := st.manifests[e.manifest]; !linked && !young(e.info) {
			out = append(out, candidate{key: e.info.Key, size: e.info.Size})
		}
	}
	if !keepAllBlobs {
		for d, l := range st.blobs {
			if !needed[d] && !young(l.info) {
				out = append(out, candidate{key: l.info.Key, size: l.info.Size})
			}
		}
	}
	return out, refs, nil
}
