package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/integration/internal/harness"
)

// Issue 10, finding 5, black-box through the real binary.

var specsVersion2 = specs.Versioned{SchemaVersion: 2}

// firstOCIError is the first error of an OCI error body.
func firstOCIError(t *testing.T, r response) (code, message string) {
	t.Helper()
	var env struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil || len(env.Errors) == 0 {
		t.Fatalf("not an OCI error body: %q (%v)", r.body, err)
	}
	return env.Errors[0].Code, env.Errors[0].Message
}

// TestManifestDescriptorSize: a manifest whose descriptor declares another
// size than the stored blob (or child manifest) is refused with 400
// MANIFEST_INVALID naming the descriptor, and nothing is tagged.
func TestManifestDescriptorSize(t *testing.T) {
	eachBackend(t, []backend{fsBackend, s3Backend}, testManifestDescriptorSize)
}

func testManifestDescriptorSize(t *testing.T, b backend) {
	reg := b.start(t)
	client := harness.NewClient(reg.User())
	repo := reg.URL() + "/v2/it/sizes"
	push := func(data []byte) ocispec.Descriptor {
		d := digest.FromBytes(data)
		do(t, client, http.MethodPost, repo+"/blobs/uploads/?digest="+d.String(), data, nil, http.StatusCreated)
		return ocispec.Descriptor{Digest: d, Size: int64(len(data))}
	}
	cfg := push([]byte(`{"architecture":"amd64","os":"linux"}`))
	cfg.MediaType = ocispec.MediaTypeImageConfig
	layer := push([]byte("fourteen bytes"))
	layer.MediaType = ocispec.MediaTypeImageLayerGzip
	manifest := func(config ocispec.Descriptor, layers ...ocispec.Descriptor) []byte {
		b, _ := json.Marshal(ocispec.Manifest{Versioned: specsVersion2, MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: layers})
		return b
	}
	putManifest := func(ref, mediaType string, body []byte, want int) response {
		return do(t, client, http.MethodPut, repo+"/manifests/"+ref, body, map[string]string{"Content-Type": mediaType}, want)
	}

	bad := layer
	bad.Size = 999
	r := putManifest("bad", ocispec.MediaTypeImageManifest, manifest(cfg, layer, bad), http.StatusBadRequest)
	code, msg := firstOCIError(t, r)
	if want := fmt.Sprintf("layers[1] %s declares 999 bytes, the blob has 14", layer.Digest); code != "MANIFEST_INVALID" || msg != want {
		t.Errorf("wrong layer size: %s %q, want MANIFEST_INVALID %q", code, msg, want)
	}
	do(t, client, http.MethodGet, repo+"/manifests/bad", nil, nil, http.StatusNotFound)

	good := manifest(cfg, layer)
	putManifest("good", ocispec.MediaTypeImageManifest, good, http.StatusCreated)
	child := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(good), Size: int64(len(good)) + 1}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specsVersion2, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{child}})
	r = putManifest("badindex", ocispec.MediaTypeImageIndex, idx, http.StatusBadRequest)
	code, msg = firstOCIError(t, r)
	if want := fmt.Sprintf("manifests[0] %s declares %d bytes, the manifest has %d", child.Digest, child.Size, len(good)); code != "MANIFEST_INVALID" || msg != want {
		t.Errorf("wrong child size: %s %q, want MANIFEST_INVALID %q", code, msg, want)
	}
}
