package promote

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
)

// DeleteTag removes one tag for a caller with delete, never in an
// immutable stage, and only the digest the caller confirmed.
func TestDeleteTag(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	img := e.pushImage("staging/app:1", 512, 1)
	if err := remote.Write(e.ref("staging/app:2"), img); err != nil {
		t.Fatal(err)
	}
	d := digest.Digest(e.digestOf("staging/app:1"))
	e.promote(Request{Source: "staging/app:1", To: "production"})

	if !e.svc.CanDeleteTag(ctx, "staging/app") || e.svc.CanDeleteTag(ctx, "production/app") {
		t.Fatal("CanDeleteTag: want staging yes, production no")
	}
	refusal(t, e.svc.DeleteTag(ctx, "production/app", "1", d), http.StatusForbidden, CodeDenied, `immutable stage "production"`)
	refusal(t, e.svc.DeleteTag(ctx, "staging/app", "1", digest.FromString("other")), http.StatusConflict, CodeGuardFailed, "changed since you looked")
	refusal(t, e.svc.DeleteTag(ctx, "staging/app", "9", ""), http.StatusNotFound, CodeNotFound, "does not exist")
	e.grants = func(string) []string { return []string{"pull", "push", "promote"} }
	if e.svc.CanDeleteTag(ctx, "staging/app") {
		t.Fatal("CanDeleteTag without delete")
	}
	refusal(t, e.svc.DeleteTag(ctx, "staging/app", "1", d), http.StatusForbidden, CodeDenied, "needs delete on staging/app")
	e.grants = nil

	if err := e.svc.DeleteTag(ctx, "staging/app", "1", d); err != nil {
		t.Fatalf("DeleteTag: %v", err)
	}
	if _, ok, _ := e.svc.TagDigest(ctx, "staging/app", "1"); ok {
		t.Fatal("staging/app:1 still exists")
	}
	for _, ref := range []string{"staging/app:2", "production/app:1", "staging/app@" + d.String()} {
		if got := e.digestOf(ref); got != d.String() {
			t.Fatalf("%s = %s after deleting staging/app:1, want %s", ref, got, d)
		}
	}
}
