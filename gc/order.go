package gc

import "context"

// commitAll resolves a batch of marked candidates in dependency order: a
// candidate another candidate needs (v.deps) is committed only once that
// one is deleted (not merely committed: each layer waits for the
// deletions of the layer before), and kept if that one was kept. A
// candidate needed by a link outside the batch (still there: another
// run's tombstone holds it, or it was no candidate) is kept. So a kill at any moment leaves no manifest link naming a missing link
// (docs/architecture.md 4.3, "Deletes go the other way"), and a manifest
// link a writer rescues (a tag written after the second look protects
// the link and the record only) keeps its children and blobs, so the
// rescue never leaves a manifest that cannot be served (nor, with
// follow_subject, one without its referrers). Candidates form a DAG
// (manifests are content-addressed).
func (r *run) commitAll(ctx context.Context, marked []candidate, v verdict) error {
	index := make(map[string]int, len(marked))
	for i, c := range marked {
		index[c.key] = i
	}
	deps := make([][]int, len(marked))
	waits := make([]int, len(marked)) // unresolved candidates that need it
	for i, c := range marked {
		for _, d := range v.deps[c.key] {
			if j, ok := index[d]; ok && j != i {
				deps[i] = append(deps[i], j)
				waits[j]++
			}
		}
	}
	keep := make([]bool, len(marked))
	for i, c := range marked {
		keep[i] = !v.garbage[c.key]
	}
	for key, needs := range v.deps {
		if _, ours := index[key]; ours {
			continue
		}
		for _, d := range needs {
			if j, ok := index[d]; ok {
				keep[j] = true
			}
		}
	}
	var ready []int
	for i := range marked {
		if waits[i] == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		layer := make([]candidate, len(ready))
		garbage := make([]bool, len(ready))
		for n, i := range ready {
			layer[n], garbage[n] = marked[i], !keep[i]
		}
		kept, err := r.commitLayer(ctx, layer, garbage)
		if err != nil {
			return err
		}
		var next []int
		for n, i := range ready {
			for _, j := range deps[i] {
				keep[j] = keep[j] || kept[n]
				if waits[j]--; waits[j] == 0 {
					next = append(next, j)
				}
			}
		}
		ready = next
	}
	// A cycle (impossible with content-addressed manifests) would leave
	// candidates unresolved: keep them.
	var left []candidate
	for i := range marked {
		if waits[i] > 0 {
			left = append(left, marked[i])
		}
	}
	_, err := r.commitLayer(ctx, left, make([]bool, len(left)))
	return err
}
