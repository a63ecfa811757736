package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/distribution/distribution/v3"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

// Verify walks every repository in a store and reports what a client could
// see that is wrong: a tag naming a manifest the repository lacks, a linked
// manifest whose record or references are missing, a linked blob without a
// descriptor or with data of the wrong size. A store written only by
// pushes, crashes included, verifies clean: unreferenced objects (orphans)
// are not problems, they are garbage collection's work. (A client may
// delete a blob that a manifest still uses — the API allows it — and Verify
// then reports that manifest.) A blob whose data lies outside Slipway's
// keys (an import's, docs/architecture.md §7.2) is checked through the
// store's bucket view (storage.BucketViewer): missing or of another size
// is a problem, and so is having no view to check it.
func Verify(ctx context.Context, store storage.Store) ([]string, error) {
	m := newMeta(store, -1)
	if v, ok := store.(storage.BucketViewer); ok {
		m.view = v.BucketView()
	}
	keys, _, err := m.listKeys(ctx, "repositories/", "", 0)
	if err != nil {
		return nil, err
	}
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, k := range keys {
		rest := strings.TrimPrefix(k, "repositories/")
		name, kind, id, ok := splitRepoKey(rest)
		if !ok {
			report("%s: unexpected key", k)
			continue
		}
		switch kind {
		case "_tags":
			d, err := m.tag(ctx, name, id)
			if err != nil {
				report("%s: tag unreadable: %v", k, err)
				continue
			}
			if _, err := m.ManifestInRepo(ctx, name, d); err != nil {
				report("%s: tag names %s, which %s cannot serve: %v", k, d, name, err)
			}
		case "_manifests":
			d := digest.Digest(strings.Replace(id, "/", ":", 1))
			if problem := verifyManifest(ctx, m, name, d); problem != "" {
				report("%s: %s", k, problem)
			}
		case "_blobs":
			d := digest.Digest(strings.Replace(id, "/", ":", 1))
			bd, err := m.blob(ctx, d)
			if err != nil {
				report("%s: blob descriptor: %v", k, err)
				continue
			}
			if bd.Outside != "" {
				if problem := m.verifyOutside(ctx, bd); problem != "" {
					report("%s: %s", k, problem)
				}
				continue
			}
			var total int64
			for _, seg := range bd.segments() {
				size, err := m.dataSize(ctx, seg)
				if err != nil || size != seg.Size {
					report("%s: blob data %s missing or wrong size (%v)", k, seg.Key, err)
				}
				total += seg.Size
			}
			if total != bd.Size {
				report("%s: segments hold %d bytes, descriptor says %d", k, total, bd.Size)
			}
		}
	}
	return problems, nil
}

func verifyManifest(ctx context.Context, m *Metadata, name string, d digest.Digest) string {
	rec, err := m.manifest(ctx, d)
	if err != nil {
		return fmt.Sprintf("manifest record: %v", err)
	}
	if got := d.Algorithm().FromBytes(rec.Raw); got != d {
		return fmt.Sprintf("manifest bytes hash to %s", got)
	}
	man, _, err := distribution.UnmarshalManifest(rec.MediaType, rec.Raw)
	if err != nil {
		return fmt.Sprintf("manifest unparseable: %v", err)
	}
	for _, ref := range man.References() {
		if nonDistributable[ref.MediaType] {
			continue
		}
		if indexTypes[rec.MediaType] {
			_, err = m.ManifestInRepo(ctx, name, ref.Digest)
		} else {
			_, err = m.blobInRepo(ctx, name, ref.Digest)
		}
		if err != nil {
			return fmt.Sprintf("reference %s unavailable: %v", ref.Digest, err)
		}
	}
	var f manifestFields
	if json.Unmarshal(rec.Raw, &f) != nil {
		return "manifest fields unparseable"
	}
	return ""
}

// splitRepoKey cuts "<name>/_kind/<id…>" at the first '_' component.
func splitRepoKey(rest string) (name, kind, id string, ok bool) {
	parts := strings.Split(rest, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, "_") && i > 0 && i+1 < len(parts) {
			return strings.Join(parts[:i], "/"), p, strings.Join(parts[i+1:], "/"), true
		}
	}
	return "", "", "", false
}
