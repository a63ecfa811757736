package integration

import (
	"bytes"
	"fmt"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// TestMultiArch pushes an index of three platform images with
// go-containerregistry and reads everything back: the index and each child
// manifest byte for byte, with their media types and digests, every blob
// (validate), and platform resolution. Once with OCI media types, once with
// Docker's manifest list.
func TestMultiArch(t *testing.T) {
	eachBackend(t, allBackends, testMultiArch)
}

func testMultiArch(t *testing.T, b backend) {
	reg := b.start(t)
	platforms := []v1.Platform{
		{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm64", Variant: "v8"},
		{OS: "linux", Architecture: "s390x"},
	}
	for _, tc := range []struct {
		name     string
		indexMT  types.MediaType
		image    func(*testing.T, int, int64, v1.Platform) v1.Image
		manifest types.MediaType
	}{
		{"oci", types.OCIImageIndex, ociImage, types.OCIManifestSchema1},
		{"docker", types.DockerManifestList, dockerImage, types.DockerManifestSchema2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var adds []mutate.IndexAddendum
			children := map[v1.Hash]v1.Image{}
			for _, p := range platforms {
				img := tc.image(t, 2, 64<<10, p)
				p := p
				adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
				children[mustDigest(t, img)] = img
			}
			idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, tc.indexMT), adds...)
			wantRaw := mustRaw(t, idx)
			wantDigest := mustDigest(t, idx)

			ref := parseRef(t, reg.Ref(fmt.Sprintf("it/multiarch-%s:1", tc.name)))
			if err := remote.WriteIndex(ref, idx, as(reg.User())); err != nil {
				t.Fatalf("remote.WriteIndex %s: %v", ref, err)
			}

			// The index, by tag and by digest.
			for _, r := range []string{ref.String(), ref.Context().Digest(wantDigest.String()).String()} {
				desc, err := remote.Get(parseRef(t, r), as(reg.User()))
				if err != nil {
					t.Fatalf("remote.Get %s: %v", r, err)
				}
				if !bytes.Equal(desc.Manifest, wantRaw) {
					t.Errorf("GET %s: manifest bytes differ from what was pushed\n got: %s\nwant: %s", r, desc.Manifest, wantRaw)
				}
				if desc.MediaType != tc.indexMT {
					t.Errorf("GET %s: media type %q, want %q", r, desc.MediaType, tc.indexMT)
				}
				if desc.Digest != wantDigest {
					t.Errorf("GET %s: digest %s, want %s", r, desc.Digest, wantDigest)
				}
				if desc.Size != int64(len(wantRaw)) {
					t.Errorf("GET %s: size %d, want %d", r, desc.Size, len(wantRaw))
				}
			}

			// Each child manifest, byte for byte.
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if len(im.Manifests) != len(platforms) {
				t.Fatalf("local index has %d manifests, want %d", len(im.Manifests), len(platforms))
			}
			for _, m := range im.Manifests {
				cref := ref.Context().Digest(m.Digest.String())
				desc, err := remote.Get(cref, as(reg.User()))
				if err != nil {
					t.Fatalf("remote.Get %s (%s): %v", cref, m.Platform, err)
				}
				want := mustRaw(t, children[m.Digest])
				if !bytes.Equal(desc.Manifest, want) {
					t.Errorf("child %s (%s): bytes differ\n got: %s\nwant: %s", m.Digest, m.Platform, desc.Manifest, want)
				}
				if desc.MediaType != tc.manifest {
					t.Errorf("child %s: media type %q, want %q", m.Digest, desc.MediaType, tc.manifest)
				}
			}

			// Every blob downloads and verifies (digests, diff IDs, sizes).
			ridx, err := remote.Index(ref, as(reg.User()))
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Index(ridx); err != nil {
				t.Errorf("validate.Index(remote %s): %v", ref, err)
			}

			// Platform resolution picks the right child.
			for _, m := range im.Manifests {
				img, err := remote.Image(ref, remote.WithPlatform(*m.Platform), as(reg.User()))
				if err != nil {
					t.Fatalf("remote.Image(%s, %s): %v", ref, m.Platform, err)
				}
				if got := mustDigest(t, img); got != m.Digest {
					t.Errorf("platform %s resolved to %s, want %s", m.Platform, got, m.Digest)
				}
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if cf.Architecture != m.Platform.Architecture {
					t.Errorf("platform %s: config says architecture %q", m.Platform, cf.Architecture)
				}
			}
		})
	}
	checkBlobReads(t, reg, b, "go-containerregistry")
}
