package s3test_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/s3/s3test"
)

// The store works and its conditional writes are honoured.
func TestStore(t *testing.T) {
	ctx := context.Background()
	s := s3test.Store(t)
	if _, err := s.PutIfAbsent(ctx, "a/b", bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutIfAbsent(ctx, "a/b", bytes.NewReader([]byte("y")), 1); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("second PutIfAbsent: %v", err)
	}
}
