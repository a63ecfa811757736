// Package importer imports a stock registry's storage into Slipway
// (`slipway import`, docs/architecture.md §7). This file is the plan of
// one repository: what its import writes, in the order it must write it
// (blobs, then manifests children before parents and subjects before
// their referrers, then tags), and which stock objects it skips and why.
// Planning only reads the stock registry's storage.
package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/importer/stocklayout"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// Plan is what importing one repository writes, in order.
type Plan struct {
	Repo string
	// Blobs: every blob an imported manifest references (configs and
	// layers), each once, by digest.
	Blobs []stocklayout.Blob
	// Manifests: the repository's revisions that can be imported,
	// children before parents, a subject before its referrers.
	Manifests []registry.Manifest
	// Tags naming an imported manifest.
	Tags []stocklayout.Tag
	// Unreferenced: layer links no imported manifest references; not
	// imported (Slipway's collector would free them).
	Unreferenced []digest.Digest
	// Problems: what is not imported, and why (*stocklayout.CorruptError
	// for a corrupt object, *SkippedError for what depends on one).
	Problems []error
}

// SkippedError says that an object of the stock registry is not imported
// and why: Cause is a corrupt or missing object, or the skipping of
// something it needs.
type SkippedError struct {
	What  string // "manifest app@sha256:…", "tag app:latest"
	Cause error
}

func (e *SkippedError) Error() string { return e.What + " is not imported: " + e.Cause.Error() }

// Unwrap returns the cause.
func (e *SkippedError) Unwrap() error { return e.Cause }

// MediaType is the media type the stock registry serves a manifest
// with, decided as distribution v3's manifest store does: the manifest's
// mediaType; without one (OCI allows it), an OCI index when it has a
// "manifests" field, else an OCI image manifest. Only schemaVersion 2
// manifests of the four known types are served.
func MediaType(raw []byte) (string, error) {
	var m struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", fmt.Errorf("not a JSON manifest: %w", err)
	}
	if m.SchemaVersion != 2 {
		return "", fmt.Errorf("schema version %d is not supported (only 2; schema 1 manifests cannot be imported)", m.SchemaVersion)
	}
	switch m.MediaType {
	case schema2.MediaTypeManifest, v1.MediaTypeImageManifest, manifestlist.MediaTypeManifestList, v1.MediaTypeImageIndex:
		return m.MediaType, nil
	case "":
		if m.Manifests != nil && string(m.Manifests) != "null" {
			return v1.MediaTypeImageIndex, nil
		}
		return v1.MediaTypeImageManifest, nil
	}
	return "", fmt.Errorf("unrecognized manifest media type %q", m.MediaType)
}

// node is one manifest revision while planning.
type node struct {
	man  registry.Manifest
	refs registry.References
	bad  error // why it is not imported; nil if it is
	done bool  // placed in the plan, or judged bad
}

// planner plans one repository.
type planner struct {
	ctx    context.Context
	l      *stocklayout.Layout
	repo   string
	nodes  map[digest.Digest]*node
	blobs  map[digest.Digest]stocklayout.Blob
	missed map[digest.Digest]error // blobs without usable data
	plan   Plan
}

// PlanRepository reads repository repo of the stock layout and plans its
// import. A problem with one object skips it and what needs it; the
// error is the store failing.
func PlanRepository(ctx context.Context, l *stocklayout.Layout, repo string) (Plan, error) {
	p := &planner{ctx: ctx, l: l, repo: repo, nodes: map[digest.Digest]*node{},
		blobs: map[digest.Digest]stocklayout.Blob{}, missed: map[digest.Digest]error{}}
	p.plan.Repo = repo
	revs, problems, err := l.Manifests(ctx, repo)
	if err != nil {
		return Plan{}, err
	}
	p.plan.Problems = append(p.plan.Problems, problems...)
	for _, d := range revs {
		if err := p.read(d); err != nil {
			return Plan{}, err
		}
	}
	for _, d := range revs {
		if err := p.place(d, 0); err != nil {
			return Plan{}, err
		}
	}
	if err := p.tags(); err != nil {
		return Plan{}, err
	}
	if err := p.unreferenced(); err != nil {
		return Plan{}, err
	}
	for _, b := range p.blobs {
		p.plan.Blobs = append(p.plan.Blobs, b)
	}
	slices.SortFunc(p.plan.Blobs, func(a, b stocklayout.Blob) int { return cmpDigest(a.Digest, b.Digest) })
	return p.plan, nil
}

func cmpDigest(a, b digest.Digest) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// read reads and parses revision d; a corrupt one is a node with bad set.
func (p *planner) read(d digest.Digest) error {
	n := &node{man: registry.Manifest{Digest: d}}
	p.nodes[d] = n
	raw, err := p.l.ReadManifest(p.ctx, d)
	switch {
	case errors.Is(err, stocklayout.ErrCorrupt) || errors.Is(err, storage.ErrNotFound):
		n.bad = err
		return nil
	case err != nil:
		return err
	}
	n.man.Raw = raw
	if n.man.MediaType, err = MediaType(raw); err != nil {
		n.bad = fmt.Errorf("manifest %s: %w", d, err)
		return nil
	}
	if n.refs, err = n.man.References(); err != nil {
		n.bad = err
	}
	return nil
}

// maxDepth bounds index nesting (content addressing rules out cycles;
// this bounds the recursion whatever the input).
const maxDepth = 16

// place puts manifest d in the plan after what it needs (its blobs, its
// children, its subject when the repository has it), or records why it
// cannot be imported.
func (p *planner) place(d digest.Digest, depth int) error {
	n := p.nodes[d]
	if n.done {
		return nil
	}
	n.done = true
	what := fmt.Sprintf("manifest %s@%s", p.repo, d)
	if n.bad == nil && depth > maxDepth {
		n.bad = fmt.Errorf("indexes nested deeper than %d", maxDepth)
	}
	if n.bad == nil {
		var err error
		n.bad, err = p.needs(n, depth)
		if err != nil {
			return err
		}
	}
	if n.bad != nil {
		p.plan.Problems = append(p.plan.Problems, &SkippedError{What: what, Cause: n.bad})
		return nil
	}
	for _, b := range n.refs.Blobs {
		p.blobs[b.Digest] = stocklayout.Blob{Digest: b.Digest, Key: stocklayout.BlobKey(b.Digest), Size: b.Size}
	}
	p.plan.Manifests = append(p.plan.Manifests, n.man)
	return nil
}

// needs places what n needs first and returns why n cannot be imported
// (nil if it can); the error is the store failing.
func (p *planner) needs(n *node, depth int) (bad error, err error) {
	for _, b := range n.refs.Blobs {
		if bad, err := p.blob(b); bad != nil || err != nil {
			return bad, err
		}
	}
	for _, c := range n.refs.Children {
		child, ok := p.nodes[c.Digest]
		if !ok {
			return fmt.Errorf("its child %s is not a manifest of the repository", c.Digest), nil
		}
		if err := p.place(c.Digest, depth+1); err != nil {
			return nil, err
		}
		if child.bad != nil {
			return fmt.Errorf("its child %s is not imported", c.Digest), nil
		}
		if c.Size != int64(len(child.man.Raw)) {
			return fmt.Errorf("it declares child %s of %d bytes, the manifest has %d", c.Digest, c.Size, len(child.man.Raw)), nil
		}
	}
	// A referrer's subject need not exist; when the repository has it,
	// it goes first, whatever becomes of it.
	if s := n.refs.Subject; s != nil {
		if _, ok := p.nodes[s.Digest]; ok {
			if err := p.place(s.Digest, depth+1); err != nil {
				return nil, err
			}
		}
	}
	return nil, nil
}

// blob checks that blob b has data of its declared size.
func (p *planner) blob(b v1.Descriptor) (bad error, err error) {
	if bad, ok := p.missed[b.Digest]; ok {
		return bad, nil
	}
	info, err := p.l.Blob(p.ctx, b.Digest)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		bad = fmt.Errorf("blob %s has no data (%w)", b.Digest, err)
	case err != nil:
		return nil, err
	case info.Size != b.Size:
		bad = fmt.Errorf("it declares blob %s of %d bytes, the data %s has %d", b.Digest, b.Size, info.Key, info.Size)
	}
	if bad != nil {
		p.missed[b.Digest] = bad
	}
	return bad, nil
}

// tags keeps the tags naming an imported manifest.
func (p *planner) tags() error {
	tags, problems, err := p.l.Tags(p.ctx, p.repo)
	if err != nil {
		return err
	}
	p.plan.Problems = append(p.plan.Problems, problems...)
	for _, t := range tags {
		what := fmt.Sprintf("tag %s:%s", p.repo, t.Name)
		n, ok := p.nodes[t.Digest]
		switch {
		case !ok:
			p.plan.Problems = append(p.plan.Problems, &SkippedError{What: what, Cause: fmt.Errorf("it names %s, not a manifest of the repository", t.Digest)})
		case n.bad != nil:
			p.plan.Problems = append(p.plan.Problems, &SkippedError{What: what, Cause: fmt.Errorf("it names %s, which is not imported", t.Digest)})
		default:
			p.plan.Tags = append(p.plan.Tags, t)
		}
	}
	return nil
}

// unreferenced lists the layer links no imported manifest references.
func (p *planner) unreferenced() error {
	layers, problems, err := p.l.Layers(p.ctx, p.repo)
	if err != nil {
		return err
	}
	p.plan.Problems = append(p.plan.Problems, problems...)
	for _, d := range layers {
		if _, ok := p.blobs[d]; !ok {
			p.plan.Unreferenced = append(p.plan.Unreferenced, d)
		}
	}
	return nil
}
