package storage

import "context"

// Walk lists every object under prefix, a page at a time (one paged,
// recursive listing), calling f for each in key order; f's first error
// stops the walk and is returned.
func Walk(ctx context.Context, s Store, prefix string, f func(Info) error) error {
	after := ""
	for {
		page, err := s.List(ctx, ListOptions{Prefix: prefix, StartAfter: after})
		if err != nil {
			return err
		}
		for _, o := range page.Objects {
			if err := f(o); err != nil {
				return err
			}
		}
		if !page.Truncated || len(page.Objects) == 0 {
			return nil
		}
		after = page.Objects[len(page.Objects)-1].Key
	}
}
