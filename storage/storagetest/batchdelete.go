package storagetest

import (
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/storage"
)

// testDeleteAll: storage.DeleteAll (the store's BatchDeleter when it has
// one) deletes every key it is given, more than one S3 request's worth
// (1,000), missing keys included, and nothing else; an invalid key is
// refused.
func testDeleteAll(t *testing.T, s storage.Store) {
	ctx := t.Context()
	const n = 1003
	var g errgroup.Group
	g.SetLimit(16)
	var keys []string
	for i := range n {
		k := fmt.Sprintf("del/%04d", i)
		keys = append(keys, k)
		g.Go(func() error {
			_, err := s.Put(ctx, k, nil, 0)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	put(t, s, "del/keep", "k")
	if err := storage.DeleteAll(ctx, s, append(keys, "del/missing"), 8); err != nil {
		t.Fatalf("DeleteAll: %v", err)
	}
	page, err := s.List(ctx, storage.ListOptions{Prefix: "del/"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Objects) != 1 || page.Objects[0].Key != "del/keep" {
		var left []string
		for _, o := range page.Objects {
			left = append(left, o.Key)
		}
		t.Fatalf("left after DeleteAll: %d objects %.5q, want only del/keep", len(left), left)
	}
	if err := storage.DeleteAll(ctx, s, []string{"del/keep", "a//b"}, 8); !errors.Is(err, storage.ErrInvalidKey) {
		t.Fatalf("DeleteAll with an invalid key = %v, want ErrInvalidKey", err)
	}
}
