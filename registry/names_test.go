package registry

import (
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/storage/storagetest"
)

func TestInvalidRepositoryNames(t *testing.T) {
	e := newEnv(t)
	blob := []byte("hello")
	d := digest.FromBytes(blob)
	man := ociManifest(v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: d, Size: 5})
	before := storagetest.Keys(t, e.store, "")
	for _, name := range []string{"Upper", "a/Upper", "a//b", "-lead", "a/-lead", "trail-", strings.Repeat("a", 256), strings.Repeat("ab/", 86) + "c"} {
		t.Run(name[:min(len(name), 20)], func(t *testing.T) {
			e := e.in(t)
			wantError(t, e.do("POST", "/v2/"+name+"/blobs/uploads/?digest="+d.String(), blob), http.StatusBadRequest, "NAME_INVALID")
			wantError(t, e.do("POST", "/v2/"+name+"/blobs/uploads/", nil), http.StatusBadRequest, "NAME_INVALID")
			wantError(t, e.putManifest(name, "latest", v1.MediaTypeImageManifest, man), http.StatusBadRequest, "NAME_INVALID")
			wantError(t, e.do("GET", "/v2/"+name+"/tags/list", nil), http.StatusBadRequest, "NAME_INVALID")
			wantError(t, e.do("GET", "/v2/"+name+"/blobs/"+d.String(), nil), http.StatusBadRequest, "NAME_INVALID")
			wantError(t, e.do("GET", "/v2/"+name+"/manifests/latest", nil), http.StatusBadRequest, "NAME_INVALID")
		})
	}
	wantNoNewKeys(t, e.store, before)
}

// The longest valid name (255 characters) must be usable end to end.
func TestLongestValidRepositoryName(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{strings.Repeat("a", 255), strings.Repeat("abcdefg/", 31) + "abcdefg"} {
		if len(name) != 255 {
			t.Fatalf("name length %d", len(name))
		}
		t.Run(name[:10], func(t *testing.T) {
			e := e.in(t)
			before := storagetest.Keys(t, e.store, "")
			data := []byte("long name blob")
			d := digest.FromBytes(data)
			r := e.do("POST", "/v2/"+name+"/blobs/uploads/?digest="+d.String(), data)
			if r.StatusCode != http.StatusCreated {
				t.Errorf("want 201, got %s", r)
				// A failed push must not leave the blob visible either.
				wantError(t, e.do("GET", "/v2/"+name+"/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
				wantNoNewKeys(t, e.store, before)
				return
			}
			r = e.do("GET", "/v2/_catalog", nil)
			if !strings.Contains(string(r.body), name) {
				t.Errorf("catalog lacks %s: %s", name, r.body)
			}
		})
	}
}

func TestInvalidTags(t *testing.T) {
	e := newEnv(t)
	man := e.image("repo", "layer")
	before := storagetest.Keys(t, e.store, "")
	for _, tc := range []struct{ tag, code string }{
		{".bad", "TAG_INVALID"},
		{"-bad", "TAG_INVALID"},
		{strings.Repeat("t", 129), "TAG_INVALID"},
		{"a:b", "DIGEST_INVALID"}, // a ':' makes it a digest attempt
		{"sha256:abc", "DIGEST_INVALID"},
	} {
		t.Run(tc.tag[:min(len(tc.tag), 20)], func(t *testing.T) {
			e := e.in(t)
			wantError(t, e.putManifest("repo", tc.tag, v1.MediaTypeImageManifest, man), http.StatusBadRequest, tc.code)
			wantError(t, e.do("GET", "/v2/repo/manifests/"+tc.tag, nil), http.StatusBadRequest, tc.code)
			wantError(t, e.do("DELETE", "/v2/repo/manifests/"+tc.tag, nil), http.StatusBadRequest, tc.code)
		})
	}
	// Extra tags of a push by digest (?tag=) are checked too.
	d := digest.FromBytes(man)
	wantError(t, e.do("PUT", "/v2/repo/manifests/"+d.String()+"?tag=ok&tag=.bad", man, "Content-Type", v1.MediaTypeImageManifest),
		http.StatusBadRequest, "TAG_INVALID")
	wantNoNewKeys(t, e.store, before)

	// The longest valid tag works.
	tag := strings.Repeat("t", 128)
	wantStatus(t, e.putManifest("repo", tag, v1.MediaTypeImageManifest, man), http.StatusCreated)
	wantStatus(t, e.do("GET", "/v2/repo/manifests/"+tag, nil), http.StatusOK)
}
