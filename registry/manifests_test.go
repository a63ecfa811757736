package registry

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/storage/storagetest"
)

const (
	dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	dockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

func TestManifestPutGetByTagAndDigest(t *testing.T) {
	e := newEnv(t)
	man := e.image("repo", "layer")
	d := digest.FromBytes(man)

	r := e.putManifest("repo", "v1", v1.MediaTypeImageManifest, man)
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	wantHeader(t, r, "Location", "/v2/repo/manifests/"+d.String())

	r = e.putManifest("repo", d.String(), v1.MediaTypeImageManifest, man)
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "Docker-Content-Digest", d.String())

	for _, ref := range []string{"v1", d.String()} {
		for _, m := range []string{"GET", "HEAD"} {
			r := e.do(m, "/v2/repo/manifests/"+ref, nil)
			wantStatus(t, r, http.StatusOK)
			wantHeader(t, r, "Content-Type", v1.MediaTypeImageManifest)
			wantHeader(t, r, "Content-Length", strconv.Itoa(len(man)))
			wantHeader(t, r, "Docker-Content-Digest", d.String())
			if m == "GET" && !bytes.Equal(r.body, man) {
				t.Errorf("GET %s: body differs", ref)
			}
		}
	}
	wantError(t, e.do("GET", "/v2/repo/manifests/nope", nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	wantError(t, e.do("GET", "/v2/repo/manifests/"+digest.FromString("x").String(), nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	wantError(t, e.do("HEAD", "/v2/repo/manifests/nope", nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	wantError(t, e.do("GET", "/v2/other/manifests/"+d.String(), nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
}

func TestManifestSHA512(t *testing.T) {
	e := newEnv(t)
	man := e.image("repo", "layer")
	d := digest.SHA512.FromBytes(man)
	r := e.putManifest("repo", d.String(), v1.MediaTypeImageManifest, man)
	wantStatus(t, r, http.StatusCreated)
	wantHeader(t, r, "Docker-Content-Digest", d.String())
	r = e.do("GET", "/v2/repo/manifests/"+d.String(), nil)
	if r.StatusCode != http.StatusOK || !bytes.Equal(r.body, man) {
		t.Errorf("GET sha512: %s", r)
	}
}

func TestManifestAcceptNegotiation(t *testing.T) {
	e := newEnv(t)
	man := e.image("repo", "layer")
	wantStatus(t, e.putManifest("repo", "v1", v1.MediaTypeImageManifest, man), http.StatusCreated)
	path := "/v2/repo/manifests/v1"
	for _, accept := range []string{v1.MediaTypeImageManifest, dockerManifest + ", " + v1.MediaTypeImageManifest, "*/*", v1.MediaTypeImageManifest + ";q=0.5"} {
		wantStatus(t, e.do("GET", path, nil, "Accept", accept), http.StatusOK)
	}
	wantStatus(t, e.do("GET", path, nil, "Accept", dockerManifest, "Accept", v1.MediaTypeImageManifest), http.StatusOK)
	wantError(t, e.do("GET", path, nil, "Accept", dockerManifest+", "+dockerList), http.StatusNotFound, "MANIFEST_UNKNOWN")
	wantError(t, e.do("HEAD", path, nil, "Accept", dockerManifest), http.StatusNotFound, "MANIFEST_UNKNOWN")
}

func TestManifestRejected(t *testing.T) {
	e := newEnv(t)
	man := e.image("repo", "layer")
	child := e.image("repo", "child layer")
	wantStatus(t, e.putManifest("repo", "child", v1.MediaTypeImageManifest, child), http.StatusCreated)
	missingBlob := digest.FromString("missing blob")
	cfg := v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: missingBlob, Size: 12}
	childDesc := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(child), Size: int64(len(child))}
	missingChild := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromString("missing child"), Size: 10}
	var withMissingLayer v1.Manifest
	mustUnmarshal(t, man, &withMissingLayer)
	withMissingLayer.Layers = append(withMissingLayer.Layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: missingBlob, Size: 12})
	noMediaType := bytes.Replace(man, []byte(`"mediaType":"application/vnd.oci.image.manifest.v1+json",`), nil, 1)
	if bytes.Equal(noMediaType, man) {
		t.Fatal("could not strip mediaType")
	}
	before := storagetest.Keys(t, e.store, "")

	for _, tc := range []struct {
		name, ref, contentType string
		body                   []byte
		status                 int
		code                   string
	}{
		{"missing config", "t", v1.MediaTypeImageManifest, ociManifest(cfg), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"missing layer", "t", v1.MediaTypeImageManifest, mustMarshal(t, withMissingLayer), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"index missing child", "t", v1.MediaTypeImageIndex, ociIndex(childDesc, missingChild), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"index child is a blob", "t", v1.MediaTypeImageIndex, ociIndex(v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: withMissingLayer.Config.Digest, Size: withMissingLayer.Config.Size}), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"unknown media type", "t", "application/x-foo", noMediaType, 400, "MANIFEST_INVALID"},
		{"mediaType differs from Content-Type", "t", dockerManifest, man, 400, "MANIFEST_INVALID"},
		{"invalid JSON", "t", v1.MediaTypeImageManifest, []byte(`{"schemaVersion":2,`), 400, "MANIFEST_INVALID"},
		{"not an object", "t", v1.MediaTypeImageManifest, []byte(`[]`), 400, "MANIFEST_INVALID"},
		{"schemaVersion 1", "t", v1.MediaTypeImageManifest, bytes.Replace(man, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":1`), 1), 400, "MANIFEST_INVALID"},
		{"digest mismatch", digest.FromString("other").String(), v1.MediaTypeImageManifest, man, 400, "DIGEST_INVALID"},
		{"sha512 digest mismatch", digest.SHA512.FromString("other").String(), v1.MediaTypeImageManifest, man, 400, "DIGEST_INVALID"},
		{"unsupported digest", "md5:" + strings.Repeat("a", 32), v1.MediaTypeImageManifest, man, 400, "DIGEST_INVALID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			wantError(t, e.putManifest("repo", tc.ref, tc.contentType, tc.body), tc.status, tc.code)
			wantError(t, e.do("GET", "/v2/repo/manifests/"+digest.FromBytes(tc.body).String(), nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
		})
	}
	wantError(t, e.do("GET", "/v2/repo/manifests/t", nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	wantNoNewKeys(t, e.store, before)
}

func TestManifestTooLarge(t *testing.T) {
	e := newEnv(t)
	before := storagetest.Keys(t, e.store, "")
	big := append([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":"`),
		bytes.Repeat([]byte("a"), 4<<20)...)
	big = append(big, `"}}`...)
	// With a Content-Length and streamed without one.
	wantError(t, e.putManifest("repo", "big", v1.MediaTypeImageManifest, big), http.StatusRequestEntityTooLarge, "SIZE_INVALID")
	r := e.doReader("PUT", "/v2/repo/manifests/big", io.MultiReader(bytes.NewReader(big)), -1, "Content-Type", v1.MediaTypeImageManifest)
	wantError(t, r, http.StatusRequestEntityTooLarge, "SIZE_INVALID")
	wantNoNewKeys(t, e.store, before)
}

func TestManifestBodyShorterThanContentLength(t *testing.T) {
	e := newEnv(t)
	man := e.image("repo", "layer")
	before := storagetest.Keys(t, e.store, "")
	r := e.raw("PUT", "/v2/repo/manifests/t", len(man)+10, man, "Content-Type", v1.MediaTypeImageManifest)
	if r.StatusCode < 400 || r.StatusCode > 499 {
		t.Errorf("truncated manifest PUT: want 4xx, got %d %q", r.StatusCode, r.body)
	}
	wantNoNewKeys(t, e.store, before)
}

func TestManifestIndex(t *testing.T) {
	e := newEnv(t)
	child := e.image("repo", "child")
	wantStatus(t, e.putManifest("repo", digest.FromBytes(child).String(), v1.MediaTypeImageManifest, child), http.StatusCreated)
	idx := ociIndex(v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(child), Size: int64(len(child)),
		Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}})
	wantStatus(t, e.putManifest("repo", "multi", v1.MediaTypeImageIndex, idx), http.StatusCreated)
	r := e.do("GET", "/v2/repo/manifests/multi", nil)
	wantStatus(t, r, http.StatusOK)
	wantHeader(t, r, "Content-Type", v1.MediaTypeImageIndex)
}

func TestManifestDelete(t *testing.T) {
	e := newEnv(t)
	man := e.image("repo", "layer")
	d := digest.FromBytes(man)
	other := e.image("repo", "other layer")
	for _, tag := range []string{"a", "b"} {
		wantStatus(t, e.putManifest("repo", tag, v1.MediaTypeImageManifest, man), http.StatusCreated)
	}
	wantStatus(t, e.putManifest("repo", "c", v1.MediaTypeImageManifest, other), http.StatusCreated)

	// By tag: only the tag goes.
	wantStatus(t, e.do("DELETE", "/v2/repo/manifests/b", nil), http.StatusAccepted)
	wantError(t, e.do("GET", "/v2/repo/manifests/b", nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	wantStatus(t, e.do("GET", "/v2/repo/manifests/a", nil), http.StatusOK)
	wantStatus(t, e.do("GET", "/v2/repo/manifests/"+d.String(), nil), http.StatusOK)
	wantError(t, e.do("DELETE", "/v2/repo/manifests/b", nil), http.StatusNotFound, "MANIFEST_UNKNOWN")

	// By digest: the manifest and every tag naming it go.
	wantStatus(t, e.do("DELETE", "/v2/repo/manifests/"+d.String(), nil), http.StatusAccepted)
	wantError(t, e.do("GET", "/v2/repo/manifests/"+d.String(), nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	wantError(t, e.do("GET", "/v2/repo/manifests/a", nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	wantError(t, e.do("DELETE", "/v2/repo/manifests/"+d.String(), nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	r := e.do("GET", "/v2/repo/tags/list", nil)
	wantStatus(t, r, http.StatusOK)
	if got := string(r.body); got != `{"name":"repo","tags":["c"]}` {
		t.Errorf("tags after delete: %s", got)
	}
	wantStatus(t, e.do("GET", "/v2/repo/manifests/c", nil), http.StatusOK)
}
