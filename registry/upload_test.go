package registry

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// The upload sessions are driven without HTTP: ids, readers, ranges and
// digests in; progress and typed errors out.
func TestUploadsWithoutHTTP(t *testing.T) {
	e := newEnv(t)
	u, ctx := e.reg.sessions, context.Background()
	body := func(s string, first int64) chunk {
		return chunk{body: strings.NewReader(s), length: int64(len(s)), ranged: true, valid: true, first: first, last: first + int64(len(s)) - 1}
	}

	p := u.open("repo", digest.SHA256)
	if p.offset != 0 || !signedForm(p.id) {
		t.Fatalf("open: %+v", p)
	}
	if p, err := u.append(ctx, "", "repo", p.id, body("hello ", 0)); err != nil || p.offset != 6 {
		t.Fatalf("append: %+v, %v", p, err)
	}
	if got, err := u.append(ctx, "", "repo", p.id, body("late", 2)); !errors.Is(err, errRangeInvalid) || got.offset != 6 {
		t.Fatalf("append out of place: %+v, %v; want errRangeInvalid at 6", got, err)
	}
	if got, err := u.status(ctx, "repo", p.id, ""); err != nil || got.offset != 6 {
		t.Fatalf("status: %+v, %v", got, err)
	}
	var mismatch *digestMismatchError
	if _, err := u.commit(ctx, "repo", p.id, digest.FromString("other"), body("world", 6)); !errors.As(err, &mismatch) {
		t.Fatalf("commit with a wrong digest: %v", err)
	}
	// A wrong digest ends the session.
	if _, err := u.status(ctx, "repo", p.id, ""); !errors.Is(err, errUploadUnknown) {
		t.Fatalf("status after a wrong digest: %v", err)
	}

	p = u.open("repo", digest.SHA256)
	if _, err := u.append(ctx, "", "repo", p.id, body("hello ", 0)); err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("hello world")
	if _, err := u.commit(ctx, "repo", p.id, d, body("world", 6)); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if _, err := u.meta.blobInRepo(ctx, "repo", d); err != nil {
		t.Fatalf("committed blob: %v", err)
	}

	p = u.open("repo", digest.SHA256)
	if err := u.cancel(ctx, "repo", p.id); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if err := u.cancel(ctx, "repo", p.id); !errors.Is(err, errUploadUnknown) {
		t.Fatalf("second cancel: %v", err)
	}
	if _, err := u.status(ctx, "other", p.id, ""); !errors.Is(err, errUploadUnknown) {
		t.Fatalf("status in another repository: %v", err)
	}
}
