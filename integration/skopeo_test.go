package integration

import (
	"bytes"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/slipway/slipway/integration/internal/harness"
)

const refNameAnnotation = "org.opencontainers.image.ref.name"

// writeLayout writes img into a new OCI image layout at dir, named tag
// (the ref.name annotation), and returns dir.
func writeLayout(t *testing.T, dir string, img v1.Image, tag string) string {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refNameAnnotation: tag})); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSkopeo copies an OCI image layout (written with go-containerregistry)
// to the registry with skopeo, and back into a fresh layout; the manifest
// digest must be the same at all three places, and the copy back complete.
func TestSkopeo(t *testing.T) {
	eachBackend(t, allBackends, testSkopeo)
}

func testSkopeo(t *testing.T, b backend) {
	reg := b.start(t)
	tools := harness.NewTools(t)

	img := ociImage(t, 2, 1<<20, v1.Platform{OS: "linux", Architecture: "amd64"})
	want := mustDigest(t, img)
	srcDir := writeLayout(t, filepath.Join(tools.Dir, "src-layout"), img, "v1")

	dest := reg.Ref("it/skopeo:1")
	tools.Run("skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false", "--dest-creds", reg.User().String(), "oci:"+srcDir+":v1", "docker://"+dest)

	desc, err := remote.Get(parseRef(t, dest), as(reg.User()))
	if err != nil {
		t.Fatalf("remote.Get %s: %v", dest, err)
	}
	if desc.Digest != want {
		t.Errorf("registry has %s at %s, layout had %s", desc.Digest, dest, want)
	}
	if !bytes.Equal(desc.Manifest, mustRaw(t, img)) {
		t.Errorf("registry manifest bytes differ from the layout's\n got: %s\nwant: %s", desc.Manifest, mustRaw(t, img))
	}

	dstDir := filepath.Join(tools.Dir, "dst-layout")
	tools.Run("skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--src-creds", reg.User().String(), "docker://"+dest, "oci:"+dstDir+":v1")

	ii, err := layout.ImageIndexFromPath(dstDir)
	if err != nil {
		t.Fatalf("reading the copied layout: %v", err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got v1.Hash
	for _, m := range im.Manifests {
		if m.Annotations[refNameAnnotation] == "v1" {
			got = m.Digest
		}
	}
	if got != want {
		t.Fatalf("copied layout names %v for v1, want %s (index: %+v)", got, want, im.Manifests)
	}
	back, err := ii.Image(got)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(back); err != nil {
		t.Errorf("image copied back is not intact: %v", err)
	}
	if !bytes.Equal(mustRaw(t, back), mustRaw(t, img)) {
		t.Errorf("manifest copied back differs from the original")
	}
	checkBlobReads(t, reg, b, "skopeo/")
}
