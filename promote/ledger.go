package promote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/storage"
)

// maxRecord bounds a stored record (a reason is at most 1 KiB).
const maxRecord = 16 << 10

func (s *Service) readRecord(ctx context.Context, key string) (Record, error) {
	rc, _, err := s.store.Get(ctx, key, storage.GetOptions{})
	if err != nil {
		return Record{}, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxRecord+1))
	if err != nil {
		return Record{}, err
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, fmt.Errorf("ledger record %s is corrupt: %w", key, err)
	}
	return rec, nil
}

// head returns the newest record of a tag's chain; ok is false for a tag
// never promoted.
func (s *Service) head(ctx context.Context, repo, tag string) (rec Record, ok bool, err error) {
	page, err := s.store.List(ctx, storage.ListOptions{Prefix: chainPrefix(repo, tag), MaxKeys: 1})
	if err != nil || len(page.Objects) == 0 {
		return Record{}, false, err
	}
	rec, err = s.readRecord(ctx, page.Objects[0].Key)
	if err != nil {
		return Record{}, false, err
	}
	return rec, true, nil
}

// claim writes rec as position rec.Seq of its tag's chain. Losing the race
// for that position is storage.ErrPreconditionFailed.
func (s *Service) claim(ctx context.Context, rec Record) error {
	b, _ := json.Marshal(rec)
	_, err := s.store.PutIfAbsent(ctx, chainKey(rec.Repository, rec.Tag, rec.Seq), bytes.NewReader(b), int64(len(b)))
	return err
}

// index writes the record's copies read by id and by app; existing copies
// (a roll forward repeating them) are fine.
func (s *Service) index(ctx context.Context, rec Record) error {
	b, _ := json.Marshal(rec)
	g, gctx := errgroup.WithContext(ctx)
	for _, key := range []string{recordKey(rec.ID), appRecordKey(rec.App, rec.ID)} {
		g.Go(func() error {
			_, err := s.store.PutIfAbsent(gctx, key, bytes.NewReader(b), int64(len(b)))
			if err != nil && !errors.Is(err, storage.ErrPreconditionFailed) {
				return err
			}
			return nil
		})
	}
	return g.Wait()
}

// Get returns one record by id.
func (s *Service) Get(ctx context.Context, id string) (Record, error) {
	if err := s.requireCaller(ctx); err != nil {
		return Record{}, err
	}
	if !validID(id) {
		return Record{}, errorf(http.StatusNotFound, CodeNotFound, "no promotion with id %q", id)
	}
	rec, err := s.readRecord(ctx, recordKey(id))
	if errors.Is(err, storage.ErrNotFound) {
		return Record{}, errorf(http.StatusNotFound, CodeNotFound, "no promotion with id %q", id)
	}
	if err != nil {
		return Record{}, storeError(err)
	}
	if !s.may(ctx, rec.Repository, actionPull) {
		return Record{}, errorf(http.StatusNotFound, CodeNotFound, "no promotion with id %q", id)
	}
	return rec, nil
}

// Limits of History.
const (
	defaultHistory = 50
	maxHistory     = 500
	// maxScan bounds the keys one History call reads while filtering.
	maxScan = 5000
)

// History lists ledger records newest first. Records of repositories the
// caller may not pull are left out.
func (s *Service) History(ctx context.Context, q Query) (Page, error) {
	if err := s.requireCaller(ctx); err != nil {
		return Page{}, err
	}
	limit := q.Limit
	switch {
	case limit < 0 || limit > maxHistory:
		return Page{}, invalid("limit must be between 1 and %d", maxHistory)
	case limit == 0:
		limit = defaultHistory
	}
	if q.Cursor != "" && !validID(q.Cursor) {
		return Page{}, invalid("invalid cursor %q", q.Cursor)
	}
	if q.Stage != "" {
		if _, ok := s.stage(q.Stage); !ok {
			return Page{}, invalid("unknown stage %q", q.Stage)
		}
	}
	prefix, repo := allPrefix, ""
	if q.Repository != "" {
		if !names.ValidRepository(q.Repository) {
			return Page{}, invalid("invalid repository name %q", q.Repository)
		}
		app := q.Repository
		if st, ok := config.StageOf(s.opts.Stages, q.Repository); ok {
			app, repo = strings.TrimPrefix(q.Repository, st.Prefix), q.Repository
		}
		prefix = appPrefix(app)
	}
	after := ""
	if q.Cursor != "" {
		after = prefix + q.Cursor
	}
	may, err := s.permissions(ctx)
	if err != nil {
		return Page{}, err
	}
	var page Page
	page.Records = []Record{}
	scanned := 0
	for len(page.Records) < limit && scanned < maxScan {
		lp, err := s.store.List(ctx, storage.ListOptions{Prefix: prefix, StartAfter: after, MaxKeys: min(limit-len(page.Records), 100)})
		if err != nil {
			return Page{}, storeError(err)
		}
		keys := make([]string, len(lp.Objects))
		for i, o := range lp.Objects {
			keys[i] = o.Key
		}
		recs, err := s.fetchRecords(ctx, keys)
		if err != nil {
			return Page{}, storeError(err)
		}
		for i, rec := range recs {
			after = keys[i]
			scanned++
			if (repo != "" && rec.Repository != repo) || (q.Repository != "" && repo == "" && rec.App != q.Repository) ||
				(q.Tag != "" && rec.Tag != q.Tag) || (q.Stage != "" && rec.Stage != q.Stage) ||
				!may(rec.Repository, actionPull) {
				continue
			}
			page.Records = append(page.Records, rec)
			if len(page.Records) == limit {
				break
			}
		}
		if !lp.Truncated || len(lp.Objects) == 0 {
			return page, nil
		}
	}
	page.NextCursor = strings.TrimPrefix(after, prefix)
	return page, nil
}

// fetchRecords reads records in parallel (a few at a time: on S3 each is a
// round trip).
func (s *Service) fetchRecords(ctx context.Context, keys []string) ([]Record, error) {
	out := make([]Record, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, k := range keys {
		g.Go(func() error {
			rec, err := s.readRecord(gctx, k)
			out[i] = rec
			return err
		})
	}
	return out, g.Wait()
}
