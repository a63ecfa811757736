package registry

// Native fuzz targets for what a client controls on /v2/: the path (route,
// repository name, reference), a chunk's Content-Range and a manifest body.
// Each asserts properties beyond "does not panic"; integration/scripts/fuzz.sh
// runs them in CI, and crashers found are kept under testdata/fuzz/.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/reference"
	"github.com/gin-gonic/gin"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/internal/names"
	"github.com/slipway/slipway/storage/fs"
)

// anchored matches a whole string against one of reference's exported
// (unanchored) grammars.
func anchored(re *regexp.Regexp) *regexp.Regexp {
	return regexp.MustCompile(`^(?:` + re.String() + `)$`)
}

var (
	tagGrammar    = anchored(reference.TagRegexp)
	digestGrammar = anchored(reference.DigestRegexp)
)

// routePaths are the paths that spell rt; a parsed path must be one of them
// (a path that is not is parsed as a route it does not name).
func routePaths(rt Route) []string {
	switch rt.Kind {
	case KindBase:
		return []string{"/v2", "/v2/"}
	case KindCatalog:
		return []string{"/v2/_catalog"}
	case KindTags:
		return []string{"/v2/" + rt.Name + "/tags/list"}
	case KindUpload:
		if rt.Ref == "" {
			return []string{"/v2/" + rt.Name + "/blobs/uploads", "/v2/" + rt.Name + "/blobs/uploads/"}
		}
		return []string{"/v2/" + rt.Name + "/blobs/uploads/" + rt.Ref}
	case KindBlob:
		return []string{"/v2/" + rt.Name + "/blobs/" + rt.Ref}
	case KindManifest:
		return []string{"/v2/" + rt.Name + "/manifests/" + rt.Ref}
	case KindReferrers:
		return []string{"/v2/" + rt.Name + "/referrers/" + rt.Ref}
	}
	return nil
}

func FuzzParseRoute(f *testing.F) {
	d := digest.FromString("fuzz").String()
	for _, p := range []string{
		"/v2", "/v2/", "/v2/_catalog", "/v2/app/tags/list", "/v2/team/app/tags/list",
		"/v2/app/blobs/uploads", "/v2/app/blobs/uploads/", "/v2/app/blobs/uploads/0123abcd",
		"/v2/app/blobs/" + d, "/v2/staging/app/manifests/latest", "/v2/app/manifests/" + d,
		"/v2/app/referrers/" + d, "/v2/a/blobs/uploads/blobs/uploads/", "/v2/a/manifests/b/manifests/c",
		"/v2/a/tags/list/tags/list", "/v2/a/blobs/",
		"/v3/app/tags/list", "/v2/a/manifests/x/y", "/v2/blobs/x",
	} {
		f.Add(p)
	}
	kinds := []string{KindBase, KindCatalog, KindTags, KindBlob, KindUpload, KindManifest, KindReferrers}
	f.Fuzz(func(t *testing.T, path string) {
		rt, ok := parseRoute(path)
		checkRouteOf(t, path, rt, ok)
		if !ok {
			if rt != (Route{}) {
				t.Fatalf("refused %q but returned %+v", path, rt)
			}
			return
		}
		if !slices.Contains(kinds, rt.Kind) {
			t.Fatalf("%q: unknown kind %q", path, rt.Kind)
		}
		if !slices.Contains(routePaths(rt), path) {
			t.Fatalf("%q parsed as %+v, which is spelled %q", path, rt, routePaths(rt))
		}
		switch rt.Kind {
		case KindBase, KindCatalog:
			if rt.Name != "" || rt.Ref != "" {
				t.Fatalf("%q: %s route with name or reference: %+v", path, rt.Kind, rt)
			}
			return
		}
		// Every other route acts on a repository: authorization checks
		// the name, so an empty one must never get this far.
		if rt.Name == "" {
			t.Fatalf("%q: %s route without a repository name", path, rt.Kind)
		}
		if strings.Contains(rt.Ref, "/") || (rt.Kind != KindUpload && rt.Kind != KindTags && rt.Ref == "") {
			t.Fatalf("%q: bad reference in %+v", path, rt)
		}
		// Whatever spelling was parsed, the canonical one parses the same.
		for _, p := range routePaths(rt) {
			if again, ok := parseRoute(p); !ok || again != rt {
				t.Fatalf("%q -> %+v, but %q -> %+v %v", path, rt, p, again, ok)
			}
		}
	})
}

// checkRouteOf: what middlewares and handlers read (RouteOf) is
// parseRoute's answer, whether the outermost middleware stored it
// (WithRoute) or the first reader parses it; and once stored, no reader
// parses or stores it again.
func checkRouteOf(t *testing.T, path string, rt Route, ok bool) {
	t.Helper()
	stored := (&http.Request{URL: &url.URL{Path: path}}).WithContext(WithRoute(context.Background(), path))
	for _, r := range []*http.Request{stored, {URL: &url.URL{Path: path}}} {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = r
		var first *http.Request
		for i := range 2 {
			got, gotOK := RouteOf(c)
			if got != rt || gotOK != ok {
				t.Fatalf("RouteOf(%q) = %+v %v, parseRoute = %+v %v", path, got, gotOK, rt, ok)
			}
			switch {
			case i == 0 && r == stored && c.Request != r, i == 1 && c.Request != first:
				t.Fatalf("RouteOf(%q) parsed again a route the context carries", path)
			case i == 0 && r != stored && c.Request == r:
				t.Fatalf("RouteOf(%q) did not store the route it parsed", path)
			}
			first = c.Request
		}
	}
}

func FuzzRepositoryName(f *testing.F) {
	for _, n := range []string{
		"app", "team/app", "staging/team/app", "a.b_c__d--e/f", "localhost:5000/app", "Upper/app",
		"staging/../production/app", "*", "café", "a//b", "a/", "-a", strings.Repeat("a", 255),
		"a/blobs/uploads", "a/manifests/b", "a/tags/list", "_catalog",
	} {
		f.Add(n)
	}
	d := digest.FromString("fuzz")
	f.Fuzz(func(t *testing.T, name string) {
		valid := names.ValidRepository(name)
		// The distribution specification's grammar (no host part: a
		// repository inside this registry has none), with the length
		// bounded for the whole name: a name is a storage key prefix, and
		// 255 characters is the limit clients assume.
		want := ociName.MatchString(name) && len(name) <= reference.RepositoryNameTotalLengthMax
		if valid != want {
			t.Fatalf("names.ValidRepository(%q) = %v, the grammar says %v", name, valid, want)
		}
		if !valid {
			return
		}
		if _, err := reference.WithName(name); err != nil {
			t.Fatalf("names.ValidRepository(%q) accepts what reference.WithName refuses: %v", name, err)
		}
		if strings.ContainsAny(name, "*?[]\\ \t\n%") || strings.Contains(name, "..") || strings.Contains(name, "//") ||
			strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") {
			t.Fatalf("valid name %q holds a character or sequence no repository name may", name)
		}
		// Every valid name is routable, on every route, as itself.
		for _, rt := range []Route{
			{Kind: KindTags, Name: name},
			{Kind: KindUpload, Name: name},
			{Kind: KindUpload, Name: name, Ref: "0123abcd"},
			{Kind: KindBlob, Name: name, Ref: d.String()},
			{Kind: KindManifest, Name: name, Ref: "latest"},
			{Kind: KindManifest, Name: name, Ref: d.String()},
			{Kind: KindReferrers, Name: name, Ref: d.String()},
		} {
			for _, p := range routePaths(rt) {
				if got, ok := parseRoute(p); !ok || got != rt {
					t.Fatalf("%q parses as %+v %v, want %+v", p, got, ok, rt)
				}
			}
		}
	})
}

func FuzzParseRef(f *testing.F) {
	for _, r := range []string{
		"latest", "1.4.2", "v1.0.0-rc.1_build", "sha256:" + strings.Repeat("a", 64),
		digest.SHA512.FromString("x").String(), digest.SHA384.FromString("x").String(),
		"sha256:" + strings.Repeat("A", 64), "sha256:abc", "a:b", ".bad", "-bad", strings.Repeat("t", 129),
		"md5:d41d8cd98f00b204e9800998ecf8427e", "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
	} {
		f.Add(r)
	}
	named, err := reference.WithName("fuzz/app")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		tag, d, err := parseRef(ref)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusBadRequest ||
				(ae.err.Code.String() != "TAG_INVALID" && ae.err.Code.String() != "DIGEST_INVALID") {
				t.Fatalf("parseRef(%q): %v is not a 400 TAG_INVALID or DIGEST_INVALID", ref, err)
			}
			if tag != "" || d != "" {
				t.Fatalf("parseRef(%q) failed but returned %q %q", ref, tag, d)
			}
		}
		// A tag is exactly what reference's tag grammar accepts.
		if isTag := err == nil && tag != ""; isTag != tagGrammar.MatchString(ref) {
			t.Fatalf("parseRef(%q) tag %q err %v; the tag grammar says %v", ref, tag, err, tagGrammar.MatchString(ref))
		}
		if tag != "" {
			if tag != ref || d != "" {
				t.Fatalf("parseRef(%q) = %q %q", ref, tag, d)
			}
			if _, err := reference.WithTag(named, tag); err != nil {
				t.Fatalf("accepted tag %q refused by reference.WithTag: %v", tag, err)
			}
			return
		}
		if err != nil {
			return
		}
		// A digest is one of the algorithms kept, well formed, spelled as
		// given (it names storage keys), and a valid canonical reference.
		if d.String() != ref || d.Validate() != nil || (d.Algorithm() != digest.SHA256 && d.Algorithm() != digest.SHA512) {
			t.Fatalf("parseRef(%q) accepted digest %q", ref, d)
		}
		if !digestGrammar.MatchString(ref) {
			t.Fatalf("accepted digest %q does not match reference's digest grammar", ref)
		}
		if _, err := reference.WithDigest(named, d); err != nil {
			t.Fatalf("accepted digest %q refused by reference.WithDigest: %v", ref, err)
		}
	})
}

func FuzzContentRange(f *testing.F) {
	for _, s := range []struct {
		hdr            string
		length, offset int64
	}{
		{"0-1023", 1024, 0}, {"1024-2047", 1024, 1024}, {"bytes 0-99/*", 100, 0}, {"bytes 0-99/100", -1, 0},
		{"5-4", 0, 5}, {"-1-5", 7, 0}, {"+1-+5", 5, 1},
		{"", 10, 0}, {"", -1, 7}, {"0-9", 5, 0}, {"3", 1, 3}, {" 0-0 ", 1, 0},
	} {
		f.Add(s.hdr, s.length, s.offset)
	}
	gin.SetMode(gin.TestMode)
	f.Fuzz(func(t *testing.T, hdr string, length, offset int64) {
		if offset < 0 || length < -1 {
			return // neither a stored offset nor a request's Content-Length
		}
		if start, end, ok := parseContentRange(hdr); ok {
			// A range is a non-empty span whose size is representable.
			if start < 0 || end < start || end-start+1 <= 0 {
				t.Fatalf("parseContentRange(%q) = %d-%d", hdr, start, end)
			}
			for _, s := range []string{fmt.Sprintf("%d-%d", start, end), fmt.Sprintf("bytes %d-%d/*", start, end)} {
				if s2, e2, ok := parseContentRange(s); !ok || s2 != start || e2 != end {
					t.Fatalf("%q -> %d-%d, but %q -> %d-%d %v", hdr, start, end, s, s2, e2, ok)
				}
			}
		}
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequest(http.MethodPatch, "/v2/a/blobs/uploads/x", nil)
		c.Request.ContentLength = length
		if hdr != "" {
			c.Request.Header.Set("Content-Range", hdr)
		}
		at, ok := requestChunk(c).place(offset)
		start, size := at.start, at.size
		if !ok {
			if c.Request.Header.Get("Content-Range") == "" {
				t.Fatalf("chunk without Content-Range refused")
			}
			return
		}
		if c.Request.Header.Get("Content-Range") == "" {
			if start != -1 || size != length {
				t.Fatalf("no Content-Range: start %d size %d, want -1 %d", start, size, length)
			}
			return
		}
		// A chunk with a range continues the session exactly, has a size
		// (never "unknown": the range says how much to read), agrees with
		// Content-Length when there is one, and ends where it says.
		_, end, _ := parseContentRange(c.Request.Header.Get("Content-Range"))
		if start != offset || size <= 0 || (length >= 0 && size != length) || start > math.MaxInt64-size || start+size-1 != end {
			t.Fatalf("Content-Range %q, length %d, offset %d: start %d size %d", hdr, length, offset, start, size)
		}
	})
}

// manifestFixture is a repository holding the blobs and child manifests the
// seed manifests reference, so that their valid forms are accepted and the
// fuzzer explores from there.
type manifestFixture struct {
	reg   *Registry
	h     http.Handler
	seeds [][2]string // Content-Type, body
}

const fuzzRepo = "fuzz/app"

func (m *manifestFixture) serve(method, path, contentType string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, req)
	return rec
}

func (m *manifestFixture) status(method, path string) int { return m.serve(method, path, "", nil).Code }

func (m *manifestFixture) do(tb testing.TB, method, path, contentType string, body []byte, want int) {
	tb.Helper()
	if rec := m.serve(method, path, contentType, body); rec.Code != want {
		tb.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
	}
}

func (m *manifestFixture) blob(tb testing.TB, data string) (digest.Digest, int) {
	d := digest.FromString(data)
	m.do(tb, http.MethodPost, "/v2/"+fuzzRepo+"/blobs/uploads/?digest="+d.String(), "", []byte(data), http.StatusCreated)
	return d, len(data)
}

// seed adds a manifest as a seed and, if push, stores it in the repository
// (an index's children must be there).
func (m *manifestFixture) seed(tb testing.TB, push bool, contentType, body string) (digest.Digest, int) {
	tb.Helper()
	m.seeds = append(m.seeds, [2]string{contentType, body})
	d := digest.FromString(body)
	if push {
		m.do(tb, http.MethodPut, "/v2/"+fuzzRepo+"/manifests/"+d.String(), contentType, []byte(body), http.StatusCreated)
	}
	return d, len(body)
}

func newManifestFixture(f *testing.F) *manifestFixture {
	store, err := fs.New(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	gin.SetMode(gin.TestMode)
	e := gin.New()
	reg := New(store, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	reg.Register(e)
	m := &manifestFixture{reg: reg, h: e}

	cfg, cfgSize := m.blob(f, `{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:`+strings.Repeat("1", 64)+`"]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"ADD rootfs.tar.gz /"}]}`)
	layer, layerSize := m.blob(f, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03layer bytes")
	empty, emptySize := m.blob(f, "{}")
	sig, sigSize := m.blob(f, `{"critical":{"identity":{"docker-reference":"fuzz/app"},"type":"cosign container image signature"}}`)

	img, imgSize := m.seed(f, true, v1.MediaTypeImageManifest, fmt.Sprintf(`{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": %q, "size": %d},
  "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": %q, "size": %d}],
  "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
}`, cfg, cfgSize, layer, layerSize))
	dock, dockSize := m.seed(f, true, schema2.MediaTypeManifest, fmt.Sprintf(`{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": %d, "digest": %q},
   "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": %d, "digest": %q}]
}`, cfgSize, cfg, layerSize, layer))
	// A Windows image: its foreign layer lives elsewhere.
	m.seed(f, false, schema2.MediaTypeManifest, fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%d,"digest":%q},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":1,"digest":"sha256:%s","urls":["https://example.com/layer"]},{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%d,"digest":%q}]}`,
		cfgSize, cfg, strings.Repeat("2", 64), layerSize, layer))
	// Without a Content-Type: the body's mediaType decides.
	m.seed(f, false, "", fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[]}`, cfg, cfgSize))
	m.seed(f, false, v1.MediaTypeImageIndex, fmt.Sprintf(`{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": %q, "size": %d, "platform": {"architecture": "amd64", "os": "linux"}},
    {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": %q, "size": %d, "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}
  ]
}`, img, imgSize, dock, dockSize))
	m.seed(f, false, manifestlist.MediaTypeManifestList, fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":%d,"digest":%q,"platform":{"architecture":"amd64","os":"linux"}}]}`, dockSize, dock))
	// An artifact (a signature) referring to the image: OCI 1.1 subject.
	m.seed(f, false, v1.MediaTypeImageManifest+"; charset=utf-8", fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":%d,"data":"e30="},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":%q,"size":%d,"annotations":{"dev.cosignproject.cosign/signature":"MEUCIQ"}}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d}}`,
		empty, emptySize, sig, sigSize, img, imgSize))
	// Refused: an unknown blob, a bad digest, schema 1, a type mismatch,
	// not JSON.
	m.seed(f, false, v1.MediaTypeImageManifest, fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":2},"layers":[]}`, strings.Repeat("3", 64)))
	m.seed(f, false, v1.MediaTypeImageIndex, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:XYZ","size":2}]}`)
	m.seed(f, false, "application/vnd.docker.distribution.manifest.v1+prettyjws", `{"schemaVersion":1,"name":"fuzz/app","tag":"latest","architecture":"amd64","fsLayers":[],"history":[]}`)
	m.seed(f, false, schema2.MediaTypeManifest, fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[]}`, cfg, cfgSize))
	m.seed(f, false, "text/plain;;", `not json`)
	return m
}

// manifestTypes are the media types distribution's schema packages parse
// (the only ones validateManifest may accept).
var manifestTypes = []string{v1.MediaTypeImageManifest, v1.MediaTypeImageIndex, schema2.MediaTypeManifest, manifestlist.MediaTypeManifestList}

func FuzzValidateManifest(f *testing.F) {
	m := newManifestFixture(f)
	for _, s := range m.seeds {
		f.Add(s[0], []byte(s[1]))
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, contentType string, raw []byte) {
		d := digest.FromBytes(raw)
		rec, fields, err := m.reg.validateManifest(ctx, fuzzRepo, contentType, raw, d)
		if err != nil {
			// Bad input is the client's error (4xx), never an internal
			// one (500) and never a storage lookup gone wrong.
			var ae *apiError
			if !errors.As(err, &ae) || ae.status < 400 || ae.status >= 500 {
				t.Fatalf("refused with a non-client error: %v", err)
			}
			return
		}
		if rec.Digest != d || !bytes.Equal(rec.Raw, raw) || !slices.Contains(manifestTypes, rec.MediaType) {
			t.Fatalf("accepted as %s %q (%d bytes of %d)", rec.Digest, rec.MediaType, len(rec.Raw), len(raw))
		}
		if fields.SchemaVersion != 2 || (fields.MediaType != "" && fields.MediaType != rec.MediaType) {
			t.Fatalf("accepted schemaVersion %d mediaType %q as %q", fields.SchemaVersion, fields.MediaType, rec.MediaType)
		}
		if mt, _, err := mime.ParseMediaType(contentType); contentType != "" && (err != nil || mt != rec.MediaType) {
			t.Fatalf("Content-Type %q stored as %q", contentType, rec.MediaType)
		}
		if !json.Valid(raw) {
			t.Fatalf("accepted a body that is not JSON")
		}
		man, _, err := distribution.UnmarshalManifest(rec.MediaType, raw)
		if err != nil {
			t.Fatalf("accepted %q, which distribution cannot read back: %v", rec.MediaType, err)
		}
		// Nothing dangles: what an accepted manifest references is there
		// to pull (an index's children as manifests), foreign layers aside.
		for _, ref := range man.References() {
			if ref.Digest.Validate() != nil {
				t.Fatalf("accepted a reference to %q", ref.Digest)
			}
			path := "/v2/" + fuzzRepo + "/blobs/" + ref.Digest.String()
			if indexTypes[rec.MediaType] {
				path = "/v2/" + fuzzRepo + "/manifests/" + ref.Digest.String()
			} else if nonDistributable[ref.MediaType] {
				continue
			}
			if code := m.status(http.MethodHead, path); code != http.StatusOK {
				t.Fatalf("accepted %q referencing %s, which HEAD %s answers %d", rec.MediaType, ref.Digest, path, code)
			}
		}
		if fields.Subject != nil && fields.Subject.Digest.Validate() != nil {
			t.Fatalf("accepted subject %q", fields.Subject.Digest)
		}
		// What is served back (Content-Type: the stored type) is accepted
		// again, identically: a client copying it elsewhere can push it.
		again, _, err := m.reg.validateManifest(ctx, fuzzRepo, rec.MediaType, raw, d)
		if err != nil || again.MediaType != rec.MediaType {
			t.Fatalf("accepted as %q, but not when pushed back with that type: %v", rec.MediaType, err)
		}
	})
}
