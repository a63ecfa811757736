package storage_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/fs"
)

func TestKeepNewest(t *testing.T) {
	ctx := context.Background()
	s, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// 1,203 reports: more than one listing page. r/0000 sorts first, as
	// the newest report does under an inverted-time name.
	const n, keep = 1203, 100
	for i := 0; i < n; i++ {
		if _, err := s.Put(ctx, fmt.Sprintf("r/%04d", i), strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Put(ctx, "other/a", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	deleted, err := storage.KeepNewest(ctx, s, "r/", keep)
	if err != nil || deleted != n-keep {
		t.Fatalf("KeepNewest = %d, %v; want %d, nil", deleted, err, n-keep)
	}
	page, err := s.List(ctx, storage.ListOptions{Prefix: "r/"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Objects) != keep || page.Objects[0].Key != "r/0000" || page.Objects[keep-1].Key != fmt.Sprintf("r/%04d", keep-1) {
		t.Fatalf("left %d keys, first %q last %q", len(page.Objects), page.Objects[0].Key, page.Objects[len(page.Objects)-1].Key)
	}
	if _, err := s.Stat(ctx, "other/a"); err != nil {
		t.Fatalf("a key outside the prefix: %v", err)
	}
	// Nothing beyond keep: nothing to do.
	if deleted, err := storage.KeepNewest(ctx, s, "r/", keep); err != nil || deleted != 0 {
		t.Fatalf("second call = %d, %v", deleted, err)
	}
}
