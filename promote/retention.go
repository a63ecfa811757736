package promote

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// What retention (package retention, its Ledger interface) reads of the
// ledger. These are system reads for a pass the server runs, not a
// caller's request: no permission is checked.

// Promoted reports whether a promotion wrote the tag as it is: its stamp
// carries a ledger seq. An unreadable stamp counts as promoted, so that
// retention leaves the tag alone.
func (s *Service) Promoted(st registry.TagState) bool {
	seq, err := seqOf(st)
	return err != nil || seq > 0
}

// RecentDigests returns, for every promoted tag, the digests its newest n
// ledger records named (by seq), keyed by the repositories they apply to:
// the record's target repository and the repository of its source. It
// reads every record once (ledger/all/).
func (s *Service) RecentDigests(ctx context.Context, n int) (map[string]map[digest.Digest]bool, error) {
	chains := map[string][]Record{}
	after := ""
	for {
		page, err := s.store.List(ctx, storage.ListOptions{Prefix: allPrefix, StartAfter: after})
		if err != nil {
			return nil, err
		}
		keys := make([]string, len(page.Objects))
		for i, o := range page.Objects {
			keys[i] = o.Key
		}
		recs, err := s.fetchRecords(ctx, keys)
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			k := rec.Repository + ":" + rec.Tag
			chains[k] = append(chains[k], rec)
		}
		if !page.Truncated || len(keys) == 0 {
			break
		}
		after = keys[len(keys)-1]
	}
	out := map[string]map[digest.Digest]bool{}
	add := func(repo string, d digest.Digest) {
		if out[repo] == nil {
			out[repo] = map[digest.Digest]bool{}
		}
		out[repo][d] = true
	}
	for _, recs := range chains {
		slices.SortFunc(recs, func(a, b Record) int { return cmp.Compare(b.Seq, a.Seq) })
		for _, rec := range recs[:min(n, len(recs))] {
			add(rec.Repository, rec.Digest)
			if i := strings.IndexAny(rec.Source, "@:"); i > 0 {
				add(rec.Source[:i], rec.Digest)
			}
		}
	}
	return out, nil
}
