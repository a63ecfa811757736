package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/integration/internal/harness"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// TestGCRetention: `slipway gc` applies retention before collecting. With
// keep_last: 2 (dry_run: false) on every repository, staging/ret-app keeps
// its 2 newest of 6 tags, the 4 others answer 404 and their manifests are
// freed in the same run; production/ret-app (an immutable stage, tags a
// promotion wrote, of digests whose staging tags were deleted) pulls whole.
func TestGCRetention(t *testing.T) {
	harness.SlipwayBinary(t)
	reg := harness.StartOpts(t, harness.Options{S3: &harness.S3{}, ExtraConfig: "gc:\n  grace: 0s\n" +
		"retention:\n  rules:\n    - repositories: \"*\"\n      keep_last: 2\n      dry_run: false\n"})
	auth := as(reg.User())
	base := static.NewLayer(randomBytes(t, 64<<10), types.OCILayer)
	var staged []v1.Hash
	for i := range 6 {
		img, err := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON),
			base, static.NewLayer(randomBytes(t, 4<<10+i), types.OCILayer))
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(parseRef(t, reg.Ref(fmt.Sprintf("staging/ret-app:t%d", i))), img, auth); err != nil {
			t.Fatalf("push t%d: %v", i, err)
		}
		staged = append(staged, mustDigest(t, img))
		// Distinct push times: a tag's time is its object's Last-Modified,
		// which S3 gives to the second; tags pushed within one second tie
		// and keep_last then keeps the first names.
		time.Sleep(1100 * time.Millisecond)
	}
	admin := reg.Admin()
	c := &promote.Client{BaseURL: reg.URL(), User: admin.Username, Password: admin.Password, HTTP: &http.Client{Timeout: time.Minute}}
	for i := range 3 {
		req := promote.Request{Source: fmt.Sprintf("staging/ret-app:t%d", i), To: "production", Tag: fmt.Sprintf("p%d", i), Reason: "retention test"}
		if _, _, err := c.Promote(context.Background(), req); err != nil {
			t.Fatalf("promote %s: %v", req.Source, err)
		}
	}

	out, err := runGC(t, reg)
	if err != nil || !strings.Contains(out, "retention: 4 tags deleted, 0 would be (dry run)") {
		t.Fatalf("slipway gc: %v\n%s", err, out)
	}
	st := reg.Store(t)
	for i, d := range staged {
		_, headErr := remote.Head(parseRef(t, reg.Ref(fmt.Sprintf("staging/ret-app:t%d", i))), auth)
		_, linkErr := st.Stat(context.Background(), registry.ManifestLinkKey("staging/ret-app", digest.Digest(d.String())))
		if i < 4 && (headErr == nil || !strings.Contains(headErr.Error(), "404") || !errors.Is(linkErr, storage.ErrNotFound)) {
			t.Errorf("staging t%d: HEAD %v, link %v: want 404 and the manifest freed", i, headErr, linkErr)
		}
		if i >= 4 && (headErr != nil || linkErr != nil) {
			t.Errorf("staging t%d (among the 2 newest): HEAD %v, link %v: want kept", i, headErr, linkErr)
		}
	}
	for i := range 3 {
		ref := parseRef(t, reg.Ref(fmt.Sprintf("production/ret-app:p%d", i)))
		if _, err := pullWhole(ref, staged[i], nil, []remote.Option{auth}); err != nil {
			t.Errorf("production p%d after retention and gc: %v", i, err)
		}
	}
	verifyStore(t, reg)
	checkNoGarbage(t, st)
}
