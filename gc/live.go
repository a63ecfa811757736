package gc

import (
	"context"
	"errors"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// repoState is one repository as listed: its manifest and blob links and
// referrer entries. It lives only while its repository is judged.
type repoState struct {
	repo      string
	manifests map[digest.Digest]storage.Info
	blobs     map[digest.Digest]storage.Info
	referrers []referrerEntry
	objects   int64
	bytes     int64
}

type referrerEntry struct {
	info              storage.Info
	subject, manifest digest.Digest
}

func newRepoState(repo string, objs []storage.Info) *repoState {
	st := &repoState{repo: repo, manifests: map[digest.Digest]storage.Info{}, blobs: map[digest.Digest]storage.Info{}}
	for _, o := range objs {
		k, ok := registry.ParseRepoKey(o.Key)
		if !ok || k.Repo != repo {
			continue
		}
		st.objects++
		st.bytes += o.Size
		switch k.Kind {
		case registry.KeyManifests:
			st.manifests[k.Digest] = o
		case registry.KeyBlobs:
			st.blobs[k.Digest] = o
		case registry.KeyReferrers:
			st.referrers = append(st.referrers, referrerEntry{info: o, subject: k.Subject, manifest: k.Digest})
		}
	}
	return st
}

// manifestRefs is what a linked manifest keeps alive in its repository.
type manifestRefs struct {
	readable bool // its record was read and parsed
	children []digest.Digest
	blobs    []digest.Digest // config and layers
	subject  digest.Digest
}

// readRefs reads the references of every manifest linked in st. A
// missing or unparseable record gives readable false.
func (r *run) readRefs(ctx context.Context, st *repoState) (map[digest.Digest]*manifestRefs, error) {
	ds := make([]digest.Digest, 0, len(st.manifests))
	for d := range st.manifests {
		ds = append(ds, d)
	}
	out := make(map[digest.Digest]*manifestRefs, len(ds))
	var mu sync.Mutex
	err := r.each(ctx, len(ds), func(ctx context.Context, i int) error {
		mr := &manifestRefs{}
		man, err := r.c.meta.ManifestRecord(ctx, ds[i])
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return err
		default:
			if refs, perr := man.References(); perr == nil {
				mr.readable = true
				for _, c := range refs.Children {
					mr.children = append(mr.children, c.Digest)
				}
				for _, b := range refs.Blobs {
					mr.blobs = append(mr.blobs, b.Digest)
				}
				if refs.Config != nil {
					mr.blobs = append(mr.blobs, refs.Config.Digest)
				}
				if refs.Subject != nil {
					mr.subject = refs.Subject.Digest
				}
			}
		}
		mu.Lock()
		out[ds[i]] = mr
		mu.Unlock()
		return nil
	})
	return out, err
}

// garbageLinks judges one repository: the manifest links no root reaches,
// the referrer entries of manifests no longer linked, and the blob links
// no live manifest needs, all older than grace.
//
// Live manifests: the closure, over index children and (follow_subject)
// referrers of live subjects, of the roots: tags, ledger digests, links
// younger than grace, and (referrers: keep) every manifest with a subject.
// It also returns the references read, by manifest.
func (r *run) garbageLinks(ctx context.Context, st *repoState, ledger []digest.Digest) ([]candidate, map[digest.Digest]*manifestRefs, error) {
	tags, err := r.c.meta.TagStates(ctx, st.repo)
	if err != nil {
		return nil, nil, err
	}
	refs, err := r.readRefs(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	young := func(info storage.Info) bool { return r.now.Sub(info.ModTime) < r.c.opts.Grace }

	bySubject := map[digest.Digest][]digest.Digest{}
	for d, mr := range refs {
		if mr.subject != "" {
			bySubject[mr.subject] = append(bySubject[mr.subject], d)
		}
	}
	for _, e := range st.referrers {
		bySubject[e.subject] = append(bySubject[e.subject], e.manifest)
	}

	live := map[digest.Digest]bool{}
	var work []digest.Digest
	visit := func(d digest.Digest) {
		if _, linked := st.manifests[d]; linked && !live[d] {
			live[d] = true
			work = append(work, d)
		}
	}
	for _, t := range tags {
		visit(t.Digest)
	}
	for _, d := range ledger {
		visit(d)
	}
	for d, info := range st.manifests {
		if young(info) || (r.c.opts.KeepReferrers && refs[d].subject != "") {
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
	needed := map[digest.Digest]bool{}
	keepAllBlobs := false
	for d, info := range st.manifests {
		if !live[d] {
			out = append(out, candidate{key: info.Key, size: info.Size})
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
		for d, info := range st.blobs {
			if !needed[d] && !young(info) {
				out = append(out, candidate{key: info.Key, size: info.Size})
			}
		}
	}
	return out, refs, nil
}
