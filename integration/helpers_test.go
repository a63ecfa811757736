package integration

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway/slipway/integration/internal/harness"
)

// as makes go-containerregistry log in as c (Basic credentials, exchanged
// for tokens at the registry's token endpoint).
func as(c harness.Credentials) remote.Option {
	return remote.WithAuth(&authn.Basic{Username: c.Username, Password: c.Password})
}

// ociImage is an image with OCI media types throughout (manifest, config,
// layers): `layers` random gzip layers of about layerSize bytes each, and
// a config naming the platform.
func ociImage(t *testing.T, layers int, layerSize int64, plat v1.Platform) v1.Image {
	t.Helper()
	return buildImage(t, layers, layerSize, plat, types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer)
}

// dockerImage is ociImage with Docker schema 2 media types.
func dockerImage(t *testing.T, layers int, layerSize int64, plat v1.Platform) v1.Image {
	t.Helper()
	return buildImage(t, layers, layerSize, plat, types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer)
}

func buildImage(t *testing.T, layers int, layerSize int64, plat v1.Platform, mt, cmt, lmt types.MediaType) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, mt)
	img = mutate.ConfigMediaType(img, cmt)
	for i := 0; i < layers; i++ {
		l, err := random.Layer(layerSize, lmt)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// parseRef parses a reference to the plain-HTTP test registry.
func parseRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func mustDigest(t *testing.T, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustRaw(t *testing.T, d interface{ RawManifest() ([]byte, error) }) []byte {
	t.Helper()
	b, err := d.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var digestRE = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

// firstMatch returns the first submatch of re in s, or fails the test.
func firstMatch(t *testing.T, re *regexp.Regexp, s, what string) string {
	t.Helper()
	m := re.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %s (%s) in output:\n%s", what, re, s)
	}
	if len(m) > 1 {
		return m[1]
	}
	return m[0]
}

// decodeJSON parses out (a command's JSON output, possibly with log lines
// before it) into v.
func decodeJSON(t *testing.T, out string, v any) {
	t.Helper()
	i := strings.IndexAny(out, "{[")
	if i < 0 {
		t.Fatalf("no JSON in output:\n%s", out)
	}
	if err := json.NewDecoder(strings.NewReader(out[i:])).Decode(v); err != nil {
		t.Fatalf("decoding JSON output: %v\n%s", err, out)
	}
}
