package registry

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/storage"
)

// DELETE by tag through /v2/ and Metadata.DeleteTag remove one tag: the
// digest's other tag, the manifest link and the blobs stay, and a replica
// that already read the tag index sees the tag gone at once (the delete
// is journaled).
func TestDeleteTagKeepsTheRest(t *testing.T) {
	ctx := context.Background()
	a := newEnv(t)
	b := newEnvOn(t, a.dir)
	man := a.image("app", "shared")
	d := digest.FromBytes(man)
	for _, tag := range []string{"1", "2", "3"} {
		wantStatus(t, a.putManifest("app", tag, v1.MediaTypeImageManifest, man), http.StatusCreated)
	}
	wantTagStates(t, b.reg.Metadata(), "app", map[string]digest.Digest{"1": d, "2": d, "3": d})

	wantStatus(t, a.do("DELETE", "/v2/app/manifests/1", nil), http.StatusAccepted)
	wantError(t, a.do("DELETE", "/v2/app/manifests/1", nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	wantError(t, a.do("DELETE", "/v2/app/manifests/never", nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	wantTagStates(t, b.reg.Metadata(), "app", map[string]digest.Digest{"2": d, "3": d})

	md := b.reg.Metadata()
	st, err := md.Tag(ctx, "app", "2")
	if err != nil {
		t.Fatal(err)
	}
	if err := md.DeleteTag(ctx, "app", "2", "not-"+st.ETag); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("DeleteTag with a stale ETag = %v, want ErrPreconditionFailed", err)
	}
	if err := md.DeleteTag(ctx, "app", "2", st.ETag); err != nil {
		t.Fatalf("DeleteTag: %v", err)
	}
	if err := md.DeleteTag(ctx, "app", "2", ""); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("DeleteTag of a deleted tag = %v, want ErrNotFound", err)
	}
	wantTagStates(t, a.reg.Metadata(), "app", map[string]digest.Digest{"3": d})

	wantStatus(t, a.do("GET", "/v2/app/manifests/3", nil), http.StatusOK)
	wantStatus(t, a.do("GET", "/v2/app/manifests/"+d.String(), nil), http.StatusOK)
	if _, err := md.ManifestInRepo(ctx, "app", d); err != nil {
		t.Fatalf("the manifest link went with the tags: %v", err)
	}
	if problems, err := Verify(ctx, a.store); err != nil || len(problems) > 0 {
		t.Fatalf("Verify after tag deletes: %v %v", problems, err)
	}
}
