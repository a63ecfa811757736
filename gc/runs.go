package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/slipway/slipway/storage"
)

// maxReport bounds a stored report (MaxListed keys of at most ~200 bytes).
const maxReport = 4 << 20

// WriteReport stores rep under its run's key (replacing an earlier
// version of the same run's report).
func WriteReport(ctx context.Context, s storage.Store, rep Report) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = s.Put(ctx, runKey(rep.Started, rep.Run), bytes.NewReader(b), int64(len(b)))
	return err
}

// ListReports returns the newest n reports (n <= 0: all), newest first. A
// report deleted while it is listed is left out.
func ListReports(ctx context.Context, s storage.Store, n int) ([]Report, error) {
	var out []Report
	after := ""
	for {
		page, err := s.List(ctx, storage.ListOptions{Prefix: runsPrefix, StartAfter: after})
		if err != nil {
			return nil, err
		}
		for _, o := range page.Objects {
			if n > 0 && len(out) == n {
				return out, nil
			}
			rep, err := readReport(ctx, s, o.Key)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, rep)
		}
		if !page.Truncated || len(page.Objects) == 0 {
			return out, nil
		}
		after = page.Objects[len(page.Objects)-1].Key
	}
}

func readReport(ctx context.Context, s storage.Store, key string) (Report, error) {
	b, err := readSmall(ctx, s, key, maxReport)
	if err != nil {
		return Report{}, err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return Report{}, fmt.Errorf("gc report %s: %w", key, err)
	}
	return rep, nil
}
