package storage

import "context"

// KeepNewest deletes every object under prefix but the first keep in
// listing order, and returns how many it deleted. Report prefixes name
// their objects by inverted time (gc/runs/, gc/retention/), so the first
// in listing order are the newest: this bounds a history that would
// otherwise grow by one object per run forever. A key deleted by someone
// else meanwhile is not an error (Delete of a missing key is not one).
func KeepNewest(ctx context.Context, s Store, prefix string, keep int) (int, error) {
	seen, deleted := 0, 0
	after := ""
	for {
		page, err := s.List(ctx, ListOptions{Prefix: prefix, StartAfter: after})
		if err != nil {
			return deleted, err
		}
		for _, o := range page.Objects {
			seen++
			if seen <= keep {
				continue
			}
			if err := s.Delete(ctx, o.Key); err != nil {
				return deleted, err
			}
			deleted++
		}
		if !page.Truncated || len(page.Objects) == 0 {
			return deleted, nil
		}
		after = page.Objects[len(page.Objects)-1].Key
	}
}
