package fs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/slipway/slipway/storage"
)

var _ storage.StaleMultipartAborter = (*Store)(nil)

// AbortStaleMultipart aborts the uploads for keys under prefix whose
// directory was made before cutoff. Processes sharing the root may run it
// at once: AbortMultipart claims an upload with a rename, so each upload is
// removed by one of them and the others find nothing.
func (s *Store) AbortStaleMultipart(ctx context.Context, prefix string, cutoff time.Time) (int, error) {
	ents, err := os.ReadDir(s.uploads)
	if err != nil {
		return 0, wrap("list multipart uploads", prefix, err)
	}
	n := 0
	for _, e := range ents {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		fi, err := e.Info()
		if err != nil || !e.IsDir() || !fi.ModTime().Before(cutoff) {
			continue
		}
		key, err := os.ReadFile(filepath.Join(s.uploads, e.Name(), keyFile))
		if err != nil || !strings.HasPrefix(string(key), prefix) {
			continue
		}
		if err := s.AbortMultipart(ctx, string(key), e.Name()); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
