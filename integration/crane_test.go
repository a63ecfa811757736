package integration

import (
	"bytes"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/integration/internal/harness"
)

// TestCraneCopyMount copies an image between two repositories of the same
// registry with `crane copy`, which must take the cross-repository mount
// path (POST .../blobs/uploads/?mount=<digest>&from=<repo> answered 201 for
// every blob, no upload), then checks `crane digest` and the manifest bytes
// are the same in both repositories.
func TestCraneCopyMount(t *testing.T) {
	eachBackend(t, allBackends, testCraneCopyMount)
}

func testCraneCopyMount(t *testing.T, b backend) {
	// No public_url: the token realm names the host a request came to, so
	// crane, talking to the proxy, gets its tokens through the proxy too
	// (go-containerregistry refuses a loopback realm on another port).
	reg := b.startOpts(t, harness.Options{NoPublicURL: true})
	tools := harness.NewTools(t)

	img := ociImage(t, 3, 512<<10, v1.Platform{OS: "linux", Architecture: "amd64"})
	want := mustDigest(t, img)
	if err := remote.Write(parseRef(t, reg.Ref("it/crane-src:1")), img, as(reg.User())); err != nil {
		t.Fatalf("pushing the source image: %v", err)
	}

	// crane talks to the registry through a recording proxy.
	proxy := harness.NewRecordingProxy(t, reg)
	tools.CraneLogin(proxy.Host, reg.User())
	tools.CraneLogin(reg.Host, reg.User())
	tools.Run("crane", "copy", "--insecure", proxy.Ref("it/crane-src:1"), proxy.Ref("it/crane-dst:1"))

	// Which blobs were mounted, and did anything get uploaded?
	mounted := map[string]int{}
	var uploads, posts []string
	for _, e := range proxy.Exchanges() {
		if !strings.HasPrefix(e.Path, "/v2/it/crane-dst/blobs/uploads/") {
			continue
		}
		if e.Method == "POST" {
			posts = append(posts, e.String())
			if e.Query.Get("from") == "it/crane-src" && e.Query.Get("mount") != "" {
				mounted[e.Query.Get("mount")] = e.Status
			}
		} else {
			uploads = append(uploads, e.String())
		}
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d := mustDigest(t, l).String()
		switch st, ok := mounted[d]; {
		case !ok:
			t.Errorf("layer %s: crane sent no mount request; POSTs seen:\n%s", d, strings.Join(posts, "\n"))
		case st != 201:
			t.Errorf("layer %s: mount from it/crane-src answered %d, want 201 Created", d, st)
		}
	}
	if len(uploads) > 0 {
		t.Errorf("blob data was uploaded instead of mounted:\n%s", strings.Join(uploads, "\n"))
	}
	t.Logf("mount requests: %v", posts)

	src := strings.TrimSpace(tools.Run("crane", "digest", "--insecure", reg.Ref("it/crane-src:1")))
	dst := strings.TrimSpace(tools.Run("crane", "digest", "--insecure", reg.Ref("it/crane-dst:1")))
	if src != want.String() || dst != want.String() {
		t.Errorf("crane digest: src %s, dst %s, want both %s", src, dst, want)
	}
	srcRaw := tools.Run("crane", "manifest", "--insecure", reg.Ref("it/crane-src:1"))
	dstRaw := tools.Run("crane", "manifest", "--insecure", reg.Ref("it/crane-dst:1"))
	if srcRaw != dstRaw || !bytes.Equal([]byte(dstRaw), mustRaw(t, img)) {
		t.Errorf("manifest bytes differ:\nsrc: %s\ndst: %s\nwant: %s", srcRaw, dstRaw, mustRaw(t, img))
	}
	// The destination's blobs really are readable there.
	tools.Run("crane", "validate", "--insecure", "--remote", reg.Ref("it/crane-dst:1"))
	checkBlobReads(t, reg, b, "crane/")
}
