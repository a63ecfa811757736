package delay_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/storage"
	"github.com/slipway/slipway/storage/delay"
	"github.com/slipway/slipway/storage/fs"
)

// presigning is a store with both optional capabilities.
type presigning struct {
	storage.Store
	aborted int
}

func (presigning) PresignGet(_ context.Context, key string, _ time.Duration) (*url.URL, error) {
	return url.Parse("http://s3.example/get/" + key)
}

func (presigning) PresignHead(_ context.Context, key string, _ time.Duration) (*url.URL, error) {
	return url.Parse("http://s3.example/head/" + key)
}

func (p *presigning) AbortStaleMultipart(context.Context, string, time.Time) (int, error) {
	p.aborted++
	return 7, nil
}

func newFS(t *testing.T) storage.Store {
	s, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The wrapper presigns and aborts through the store it wraps, and only
// when that store can.
func TestWrapKeepsCapabilities(t *testing.T) {
	inner := &presigning{Store: newFS(t)}
	s := delay.Wrap(inner, time.Millisecond)
	p, ok := s.(storage.Presigner)
	if !ok {
		t.Fatal("Wrap of a Presigner is not a Presigner")
	}
	if u, err := p.PresignGet(t.Context(), "k", time.Minute); err != nil || u.String() != "http://s3.example/get/k" {
		t.Fatalf("PresignGet = %v, %v", u, err)
	}
	if u, err := p.PresignHead(t.Context(), "k", time.Minute); err != nil || u.String() != "http://s3.example/head/k" {
		t.Fatalf("PresignHead = %v, %v", u, err)
	}
	a, ok := s.(storage.StaleMultipartAborter)
	if !ok {
		t.Fatal("Wrap of a StaleMultipartAborter is not one")
	}
	if n, err := a.AbortStaleMultipart(t.Context(), "data/", time.Now()); err != nil || n != 7 || inner.aborted != 1 {
		t.Fatalf("AbortStaleMultipart = %d, %v (inner called %d times)", n, err, inner.aborted)
	}

	plain := delay.Wrap(newFS(t), time.Millisecond)
	if _, ok := plain.(storage.Presigner); ok {
		t.Error("Wrap of a filesystem store claims to presign")
	}
	if _, ok := plain.(storage.StaleMultipartAborter); ok {
		t.Error("Wrap of a filesystem store claims to abort multipart uploads")
	}
}

// Writes wait for the delay; a cancelled context ends the wait with
// nothing written.
func TestWritesWait(t *testing.T) {
	s := delay.Wrap(newFS(t), 50*time.Millisecond)
	start := time.Now()
	if _, err := s.Put(t.Context(), "k", strings.NewReader("v"), 1); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("Put took %v, want at least the delay", d)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.PutIfAbsent(ctx, "n", strings.NewReader("v"), 1); err == nil {
		t.Fatal("PutIfAbsent with a cancelled context succeeded")
	}
	if _, err := s.Stat(t.Context(), "n"); err == nil {
		t.Fatal("cancelled PutIfAbsent wrote its object")
	}
}
