package registry

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

var linkNext = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// pages follows Link headers from path and returns each page's field.
func pages(t *testing.T, e *env, path, field string) [][]string {
	t.Helper()
	var out [][]string
	for path != "" && len(out) < 20 {
		r := e.do("GET", path, nil)
		wantStatus(t, r, http.StatusOK)
		var body map[string]json.RawMessage
		var list []string
		if err := json.Unmarshal(r.body, &body); err != nil || json.Unmarshal(body[field], &list) != nil {
			t.Fatalf("bad list: %s", r)
		}
		out = append(out, list)
		path = ""
		if link := r.Header.Get("Link"); link != "" {
			m := linkNext.FindStringSubmatch(link)
			if m == nil {
				t.Fatalf("bad Link %q", link)
			}
			path = m[1]
		}
	}
	return out
}

func TestTagsList(t *testing.T) {
	e := newEnv(t)
	man := e.image("repo", "layer")
	tags := []string{"1.0", "2.0", "latest", "v1", "zeta"}
	for _, tag := range tags {
		wantStatus(t, e.putManifest("repo", tag, v1.MediaTypeImageManifest, man), http.StatusCreated)
	}
	if got := pages(t, e, "/v2/repo/tags/list", "tags"); len(got) != 1 || !slices.Equal(got[0], tags) {
		t.Errorf("all tags: %v", got)
	}
	got := pages(t, e, "/v2/repo/tags/list?n=2", "tags")
	want := [][]string{{"1.0", "2.0"}, {"latest", "v1"}, {"zeta"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("pages of 2: %v, want %v", got, want)
	}
	r := e.do("GET", "/v2/repo/tags/list?n=2&last=2.0", nil)
	wantHeader(t, r, "Link", `</v2/repo/tags/list?last=v1&n=2>; rel="next"`)
	if string(r.body) != `{"name":"repo","tags":["latest","v1"]}` {
		t.Errorf("n=2&last=2.0: %s", r.body)
	}
	r = e.do("GET", "/v2/repo/tags/list?n=5", nil)
	wantHeader(t, r, "Link", "")
	r = e.do("GET", "/v2/repo/tags/list?n=0", nil)
	wantStatus(t, r, http.StatusOK)
	if string(r.body) != `{"name":"repo","tags":[]}` {
		t.Errorf("n=0: %s", r.body)
	}
	wantError(t, e.do("GET", "/v2/repo/tags/list?n=-1", nil), http.StatusBadRequest, "PAGINATION_NUMBER_INVALID")
	wantError(t, e.do("GET", "/v2/repo/tags/list?n=x", nil), http.StatusBadRequest, "PAGINATION_NUMBER_INVALID")
	wantError(t, e.do("GET", "/v2/unknown/tags/list", nil), http.StatusNotFound, "NAME_UNKNOWN")
}

func TestCatalog(t *testing.T) {
	e := newEnv(t)
	repos := []string{"a", "a/b", "ab", "b/c/d", "z"}
	for _, name := range repos {
		e.pushBlob(name, []byte("x"))
	}
	// An upload session alone does not create a repository.
	e.startUpload("pending")
	if got := pages(t, e, "/v2/_catalog", "repositories"); len(got) != 1 || !slices.Equal(got[0], repos) {
		t.Errorf("catalog: %v", got)
	}
	got := pages(t, e, "/v2/_catalog?n=2", "repositories")
	want := [][]string{{"a", "a/b"}, {"ab", "b/c/d"}, {"z"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("catalog pages of 2: %v, want %v", got, want)
	}
	r := e.do("GET", "/v2/_catalog?n=2&last=a/b", nil)
	if string(r.body) != `{"repositories":["ab","b/c/d"]}` {
		t.Errorf("n=2&last=a/b: %s", r.body)
	}
	wantError(t, e.do("GET", "/v2/_catalog?n=-3", nil), http.StatusBadRequest, "PAGINATION_NUMBER_INVALID")
}

func TestReferrers(t *testing.T) {
	e := newEnv(t)
	subject := e.image("repo", "layer")
	sd := digest.FromBytes(subject)
	wantStatus(t, e.putManifest("repo", "v1", v1.MediaTypeImageManifest, subject), http.StatusCreated)
	subjectDesc := &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: sd, Size: int64(len(subject))}

	empty := e.pushBlob("repo", []byte("{}"))
	emptyDesc := v1.Descriptor{MediaType: v1.MediaTypeEmptyJSON, Digest: empty, Size: 2}
	sig := e.pushBlob("repo", []byte("signature"))
	artifact := func(artifactType string, layer v1.Descriptor) []byte {
		return mustMarshal(t, v1.Manifest{Versioned: specsVersioned, MediaType: v1.MediaTypeImageManifest,
			ArtifactType: artifactType, Config: emptyDesc, Layers: []v1.Descriptor{layer}, Subject: subjectDesc,
			Annotations: map[string]string{"k": artifactType}})
	}
	sigMan := artifact("application/vnd.example.sig", v1.Descriptor{MediaType: "application/octet-stream", Digest: sig, Size: 9})
	sbomMan := artifact("application/vnd.example.sbom", v1.Descriptor{MediaType: "application/octet-stream", Digest: sig, Size: 9})
	for _, m := range [][]byte{sigMan, sbomMan} {
		r := e.putManifest("repo", digest.FromBytes(m).String(), v1.MediaTypeImageManifest, m)
		wantStatus(t, r, http.StatusCreated)
		wantHeader(t, r, "OCI-Subject", sd.String())
	}

	list := func(query string) ([]v1.Descriptor, resp) {
		r := e.do("GET", "/v2/repo/referrers/"+sd.String()+query, nil)
		wantStatus(t, r, http.StatusOK)
		wantHeader(t, r, "Content-Type", v1.MediaTypeImageIndex)
		var idx v1.Index
		mustUnmarshal(t, r.body, &idx)
		return idx.Manifests, r
	}
	got, r := list("")
	wantHeader(t, r, "OCI-Filters-Applied", "")
	if len(got) != 2 {
		t.Fatalf("referrers: %s", r.body)
	}
	for _, desc := range got {
		if desc.ArtifactType == "" || desc.MediaType != v1.MediaTypeImageManifest || desc.Annotations["k"] != desc.ArtifactType {
			t.Errorf("referrer descriptor %+v", desc)
		}
	}
	got, r = list("?artifactType=application/vnd.example.sig")
	wantHeader(t, r, "OCI-Filters-Applied", "artifactType")
	if len(got) != 1 || got[0].Digest != digest.FromBytes(sigMan) || got[0].Size != int64(len(sigMan)) {
		t.Errorf("filtered referrers: %s", r.body)
	}

	wantStatus(t, e.do("DELETE", "/v2/repo/manifests/"+digest.FromBytes(sigMan).String(), nil), http.StatusAccepted)
	got, r = list("")
	if len(got) != 1 || got[0].Digest != digest.FromBytes(sbomMan) {
		t.Errorf("referrers after delete: %s", r.body)
	}
	// A subject nobody refers to has an empty list.
	r = e.do("GET", "/v2/repo/referrers/"+digest.FromString("x").String(), nil)
	wantStatus(t, r, http.StatusOK)
	var idx v1.Index
	mustUnmarshal(t, r.body, &idx)
	if idx.Manifests == nil || len(idx.Manifests) != 0 {
		t.Errorf("empty referrers: %s", r.body)
	}
	wantError(t, e.do("GET", "/v2/repo/referrers/sha256:zz", nil), http.StatusBadRequest, "DIGEST_INVALID")
}

func TestBaseAndUnknownRoutes(t *testing.T) {
	e := newEnv(t)
	for _, m := range []string{"GET", "HEAD"} {
		r := e.do(m, "/v2/", nil)
		wantStatus(t, r, http.StatusOK)
		wantHeader(t, r, "Docker-Distribution-API-Version", "registry/2.0")
	}
	wantError(t, e.do("GET", "/v2/repo/unknown/thing", nil), http.StatusNotFound, "UNSUPPORTED")
	wantError(t, e.do("POST", "/v2/repo/manifests/latest", nil), http.StatusMethodNotAllowed, "UNSUPPORTED")
}

// Repository names may contain the route markers as components.
func TestNamesContainingRouteWords(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"x/blobs", "x/blobs/uploads", "x/manifests", "tags/list", "x/referrers"} {
		man := e.image(name, "layer of "+name)
		wantStatus(t, e.putManifest(name, "v1", v1.MediaTypeImageManifest, man), http.StatusCreated)
		if got := pages(t, e, "/v2/"+name+"/tags/list", "tags"); len(got) != 1 || !slices.Equal(got[0], []string{"v1"}) {
			t.Errorf("%s tags: %v", name, got)
		}
		loc := e.startUpload(name)
		wantStatus(t, e.do("PATCH", loc, []byte("x")), http.StatusAccepted)
		wantStatus(t, e.do("PUT", withQuery(loc, "digest="+digest.FromString("x").String()), nil), http.StatusCreated)
		wantStatus(t, e.do("GET", "/v2/"+name+"/manifests/"+digest.FromBytes(man).String(), nil), http.StatusOK)
	}
}
