package registry

import (
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/storage/storagetest"
)

// errorMessage is the message of an OCI error body's first error.
func errorMessage(t *testing.T, r resp) string {
	t.Helper()
	var env struct {
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	mustUnmarshal(t, r.body, &env)
	if len(env.Errors) == 0 {
		t.Fatalf("no error in %s", r)
	}
	return env.Errors[0].Message
}

// TestManifestDescriptorSizes: a descriptor that declares another size
// than the stored blob or manifest it names is refused, whatever kind of
// descriptor it is, with a message naming it; right sizes are accepted,
// and an absent subject is not checked.
func TestManifestDescriptorSizes(t *testing.T) {
	e := newEnv(t)
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := []byte("fourteen bytes")
	cfgDesc := v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: e.pushBlob("repo", cfg), Size: int64(len(cfg))}
	layerDesc := v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: e.pushBlob("repo", layer), Size: int64(len(layer))}
	child := ociManifest(cfgDesc, layerDesc, layerDesc)
	childDesc := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(child), Size: int64(len(child))}
	wantStatus(t, e.putManifest("repo", childDesc.Digest.String(), v1.MediaTypeImageManifest, child), http.StatusCreated)

	with := func(d v1.Descriptor, size int64) v1.Descriptor { d.Size = size; return d }
	referrer := func(subject v1.Descriptor) []byte {
		return mustMarshal(t, v1.Manifest{Versioned: specsVersioned, MediaType: v1.MediaTypeImageManifest,
			Config: cfgDesc, Layers: []v1.Descriptor{layerDesc}, Subject: &subject})
	}
	before := storagetest.Keys(t, e.store, "")
	for _, tc := range []struct {
		name, mediaType string
		body            []byte
		want            string // the message
	}{
		{"config", v1.MediaTypeImageManifest, ociManifest(with(cfgDesc, 999), layerDesc),
			"config " + cfgDesc.Digest.String() + " declares 999 bytes, the blob has 37"},
		{"layer", v1.MediaTypeImageManifest, ociManifest(cfgDesc, layerDesc, with(layerDesc, 999)),
			"layers[1] " + layerDesc.Digest.String() + " declares 999 bytes, the blob has 14"},
		{"layer declared smaller", v1.MediaTypeImageManifest, ociManifest(cfgDesc, with(layerDesc, 13)),
			"layers[0] " + layerDesc.Digest.String() + " declares 13 bytes, the blob has 14"},
		{"index child", v1.MediaTypeImageIndex, ociIndex(childDesc, with(childDesc, childDesc.Size+1)),
			"manifests[1] " + childDesc.Digest.String() + " declares " + itoa(int(childDesc.Size)+1) + " bytes, the manifest has " + itoa(int(childDesc.Size))},
		{"docker list child", dockerList, dockerListOf(t, with(childDesc, 0)),
			"manifests[0] " + childDesc.Digest.String() + " declares 0 bytes, the manifest has " + itoa(int(childDesc.Size))},
		{"stored subject", v1.MediaTypeImageManifest, referrer(with(childDesc, 5)),
			"subject " + childDesc.Digest.String() + " declares 5 bytes, the manifest has " + itoa(int(childDesc.Size))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			r := e.putManifest("repo", "bad", tc.mediaType, tc.body)
			wantError(t, r, http.StatusBadRequest, "MANIFEST_INVALID")
			if got := errorMessage(t, r); got != tc.want {
				t.Errorf("message %q, want %q", got, tc.want)
			}
		})
	}
	wantNoNewKeys(t, e.store, before)

	// Right sizes pass; a subject the repository lacks is not checked.
	for name, tc := range map[string]struct {
		mediaType string
		body      []byte
	}{
		"image":          {v1.MediaTypeImageManifest, ociManifest(cfgDesc, layerDesc)},
		"index":          {v1.MediaTypeImageIndex, ociIndex(childDesc)},
		"stored subject": {v1.MediaTypeImageManifest, referrer(childDesc)},
		"absent subject": {v1.MediaTypeImageManifest, referrer(v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromString("not pushed"), Size: 999})},
	} {
		wantStatus(t, e.putManifest("repo", strings.ReplaceAll(name, " ", "-"), tc.mediaType, tc.body), http.StatusCreated)
	}
}

// dockerListOf is a Docker manifest list of the children.
func dockerListOf(t *testing.T, children ...v1.Descriptor) []byte {
	return mustMarshal(t, map[string]any{"schemaVersion": 2, "mediaType": dockerList, "manifests": children})
}
