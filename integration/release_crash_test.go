package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/integration/internal/harness"
	"github.com/slipway/slipway/promote"
	"github.com/slipway/slipway/storage"
)

// TestReleaseCrash kills -9 the server at spread-out moments of a release
// of three images (each storage write delayed, so a kill lands between
// the release's writes: tree links, the pending marker, the release
// record, each member's chain record, index copies and tag, the
// completion). After the restart one touching request (the release list)
// is made; then the three target tags must all name the new digests
// (and the list shows the release complete with its three members) or
// all still name the old ones (and no listed release names the new
// digests). Never a mix.
func TestReleaseCrash(t *testing.T) {
	eachBackend(t, crashBackends, testReleaseCrash)
}

func testReleaseCrash(t *testing.T, b backend) {
	reg := b.start(t)
	auth := as(reg.Admin())
	api := client(reg, reg.Admin())
	ctx := context.Background()
	apps := []string{"rc-api", "rc-worker", "rc-web"}
	plat := v1.Platform{OS: "linux", Architecture: "amd64"}

	// push writes a new image per app under tag and returns their digests.
	push := func(tag string) []v1.Hash {
		var ds []v1.Hash
		for _, app := range apps {
			img := ociImage(t, 2, 32<<10, plat)
			if err := remote.Write(parseRef(t, reg.Ref("staging/"+app+":"+tag)), img, auth); err != nil {
				t.Fatal(err)
			}
			ds = append(ds, mustDigest(t, img))
		}
		return ds
	}
	request := func(tag string) promote.ReleaseRequest {
		req := promote.ReleaseRequest{To: "production", Reason: "crash test " + tag}
		for _, app := range apps {
			req.Images = append(req.Images, promote.ReleaseImage{Source: "staging/" + app + ":" + tag, Tag: "stable"})
		}
		return req
	}
	// targets reads production/<app>:stable for every app.
	targets := func() []string {
		var out []string
		for _, app := range apps {
			d, err := remote.Head(parseRef(t, reg.Ref("production/"+app+":stable")), auth)
			if err != nil {
				t.Fatalf("production/%s:stable: %v", app, err)
			}
			out = append(out, d.Digest.String())
		}
		return out
	}
	strs := func(hs []v1.Hash) []string {
		var out []string
		for _, h := range hs {
			out = append(out, h.String())
		}
		return out
	}

	current := strs(push("r0"))
	if _, err := api.CreateRelease(ctx, request("r0")); err != nil {
		t.Fatal(err)
	}
	if got := targets(); !slices.Equal(got, current) {
		t.Fatalf("first release: targets %v, want %v", got, current)
	}

	interrupted, applied, pending := 0, 0, 0
	for round := 1; round <= 8; round++ {
		tag := fmt.Sprintf("r%d", round)
		next := strs(push(tag))
		reg.SetWriteDelay(crashWriteDelay)
		reg.Restart()
		wait := time.Duration(60+round*90) * time.Millisecond
		cut := killDuring(reg, wait, func() error {
			_, err := api.CreateRelease(ctx, request(tag))
			return err
		})
		if cut {
			interrupted++
		}
		verifyStore(t, reg)
		// What the kill left: a pending release (killed after its commit
		// point) is the case recovery exists for.
		left := releaseLeft(t, reg)
		if left == "pending" {
			pending++
		}
		reg.SetWriteDelay(0)
		reg.Restart()

		// The touching request: the list finishes what is pending.
		page, err := api.Releases(ctx, 5, "")
		if err != nil {
			t.Fatal(err)
		}
		got := targets()
		listed := releaseNaming(page, next)
		switch {
		case slices.Equal(got, next):
			applied++
			current = next
			if listed == nil || listed.State != promote.ReleaseComplete || len(listed.Members) != 3 {
				t.Fatalf("round %d: all targets moved but the list shows %+v", round, listed)
			}
			// The release by id: the same complete set.
			rel, err := api.GetRelease(ctx, listed.ID)
			if err != nil || rel.State != promote.ReleaseComplete || len(rel.Members) != 3 {
				t.Fatalf("round %d: GetRelease = %+v, %v", round, rel, err)
			}
		case slices.Equal(got, current):
			if listed != nil {
				t.Fatalf("round %d: no target moved but release %s lists them (%s)", round, listed.ID, listed.State)
			}
		default:
			t.Fatalf("round %d (killed after %s): half a release is visible: targets %v, old %v, new %v", round, wait, got, current, next)
		}
		t.Logf("round %d: killed after %s (request cut short: %v), left %s, release applied: %v", round, wait, cut, left, slices.Equal(got, next))
	}
	if interrupted == 0 {
		t.Fatal("no kill landed inside a release: the test exercised nothing")
	}
	if pending == 0 {
		t.Fatal("no kill landed between a release's commit point and its completion: recovery was not exercised")
	}
	// Once the markers are older than recovery's grace (5 s), one touching
	// request clears every one: of releases finished, and of writers that
	// died before their commit point.
	time.Sleep(6 * time.Second)
	if _, err := api.Releases(ctx, 1, ""); err != nil {
		t.Fatal(err)
	}
	if left := releaseLeft(t, reg); left != "none" {
		t.Fatalf("after recovery the store still holds a %s", left)
	}
	reg.Kill()
	verifyStore(t, reg)
}

// releaseLeft says what a kill left in the store: "pending" when a
// release record is still pending (killed after the commit point),
// "marker" when only a pending marker is (killed before it), else "none".
func releaseLeft(t *testing.T, reg *harness.Registry) string {
	t.Helper()
	st := reg.Store(t)
	ctx := context.Background()
	page, err := st.List(ctx, storage.ListOptions{Prefix: "ledger/releases-pending/"})
	if err != nil {
		t.Fatal(err)
	}
	left := "none"
	for _, o := range page.Objects {
		left = "marker"
		id := strings.TrimPrefix(o.Key, "ledger/releases-pending/")
		rc, _, err := st.Get(ctx, "ledger/releases/"+id, storage.GetOptions{})
		if err != nil {
			continue
		}
		var d struct{ State string }
		err = json.NewDecoder(rc).Decode(&d)
		rc.Close()
		if err == nil && d.State == promote.ReleasePending {
			return "pending"
		}
	}
	return left
}

// releaseNaming is the listed release whose members name digests, if any.
func releaseNaming(page promote.ReleasePage, digests []string) *promote.Release {
	for i, r := range page.Releases {
		var ds []string
		for _, m := range r.Members {
			ds = append(ds, m.Digest.String())
		}
		if slices.Equal(ds, digests) {
			return &page.Releases[i]
		}
	}
	return nil
}
